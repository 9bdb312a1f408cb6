import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { runKmsContract } from './contract';
import { GcpKmsEmulator } from '../emulators/gcp-kms';
import { startGrpcFront } from '../emulators/gcp-kms-grpc';
import { makeTestPki } from '../emulators/tls';
import { classifyGcpError, GcpKmsAdapter, sdkClient } from '../../kms-adapters/gcp-kms';
import { crc32c } from '../../kms-adapters/crc32c';
import { gcpStaticAuth } from '../emulators/credentials';
import { denyNonLoopback } from '../emulators/offline';
import { KmsConfigurationError, KmsUnavailableError, UnwrapRefusedError } from '../../server/errors';

const fast = { baseDelayMs: 5, maxDelayMs: 20, timeoutMs: 2000 };
const ctx = { purpose: 'password-key', user: 'alice' };
denyNonLoopback();
const RING = 'projects/acme/locations/europe-west1/keyRings/crypto-server';

function adapterFor(emu: GcpKmsEmulator, extra: Record<string, unknown> = {}, token?: string): GcpKmsAdapter {
  const settings = { endpoint: emu.endpoint, keyRing: RING, ...fast, ...extra };
  return new GcpKmsAdapter(settings, () => sdkClient(settings, { authClient: gcpStaticAuth(token) }));
}

test('CRC32C matches the Castagnoli check value', () => {
  expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  expect(crc32c(Buffer.alloc(0))).toBe(0);
});

runKmsContract('gcp-kms (AAD + CRC32C, REST transport)', async () => {
  const emu = await new GcpKmsEmulator().start();
  emu.addKey(`${RING}/cryptoKeys/kek-a`);
  emu.addKey(`${RING}/cryptoKeys/kek-b`);
  return {
    adapter: adapterFor(emu),
    keyUri: `gcp-kms://${RING}/cryptoKeys/kek-a`,
    otherKeyUri: `gcp-kms://${RING}/cryptoKeys/kek-b`,
    teardown: () => emu.close(),
  };
});

describe('gcp-kms adapter against the emulator', () => {
  let emu: GcpKmsEmulator;
  let adapter: GcpKmsAdapter;
  let n = 0;
  beforeAll(async () => {
    emu = await new GcpKmsEmulator().start();
  });
  beforeEach(() => {
    emu.faults.reset();
    adapter = adapterFor(emu, { breakerThreshold: 3, breakerCooldownMs: 60_000 });
  });
  afterEach(() => adapter.close());
  afterAll(() => emu.close());
  const fresh = () => {
    const key = emu.addKey(`${RING}/cryptoKeys/k${++n}`);
    return { key, uri: `gcp-kms://${key.name}` };
  };

  test('keyVersion is the cryptoKeyVersion name; old versions open after rotation', async () => {
    const { key, uri } = fresh();
    const pt = randomBytes(32);
    const v1 = await adapter.wrap(uri, pt, ctx);
    expect(v1.keyVersion).toBe(`${key.name}/cryptoKeyVersions/1`);
    emu.rotate(key);
    const v2 = await adapter.wrap(uri, pt, ctx);
    expect(v2.keyVersion).toBe(`${key.name}/cryptoKeyVersions/2`);
    expect((await adapter.unwrap(uri, v1.ciphertext, ctx)).equals(pt)).toBe(true);
    expect((await adapter.unwrap(uri, v2.ciphertext, ctx)).equals(pt)).toBe(true);
    // Disabling the old version is a configuration error for its blobs, not a refusal.
    key.versions[0].state = 'DISABLED';
    const e = await adapter.unwrap(uri, v1.ciphertext, ctx).catch((x) => x);
    expect(e).toBeInstanceOf(KmsConfigurationError);
    expect(e.internalDetail).toMatch(/not enabled/);
  });

  test('AAD mismatch is refused by the service → UnwrapRefusedError', async () => {
    const { uri } = fresh();
    const w = await adapter.wrap(uri, randomBytes(32), ctx);
    const e = await adapter.unwrap(uri, w.ciphertext, { ...ctx, user: 'mallory' }).catch((x) => x);
    expect(e).toBeInstanceOf(UnwrapRefusedError);
    expect(e.internalDetail).toMatch(/Decryption failed/);
  });

  test('a corrupted response checksum is detected and the call retried', async () => {
    const { uri } = fresh();
    emu.corruptNext = 1;
    const before = emu.faults.requests;
    const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
    expect(emu.faults.requests - before).toBe(2);
    expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
  });

  test('RESOURCE_EXHAUSTED and UNAVAILABLE are retried, then success', async () => {
    const { uri } = fresh();
    const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
    emu.faults.throttleNext = 1;
    emu.faults.errorNext = 1;
    const before = emu.faults.requests;
    expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
    expect(emu.faults.requests - before).toBe(3);
  });

  test('a dead service trips the breaker: fast KmsUnavailableError without reaching it', async () => {
    const { uri } = fresh();
    emu.faults.down = true;
    for (let i = 0; i < 3; i++) await expect(adapter.wrap(uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsUnavailableError);
    const seen = emu.faults.requests;
    const e = await adapter.wrap(uri, Buffer.from('k'), ctx).catch((x) => x);
    expect(e).toBeInstanceOf(KmsUnavailableError);
    expect(e.retryAfter).toBeGreaterThan(0);
    expect(emu.faults.requests).toBe(seen);
  });

  test('a slow answer past the timeout is retried', async () => {
    const { uri } = fresh();
    const quick = adapterFor(emu, { timeoutMs: 200, maxRetries: 2 });
    try {
      emu.faults.delayNext = 1;
      emu.faults.delayMs = 1000;
      const w = await quick.wrap(uri, Buffer.from('k'), ctx);
      expect((await quick.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
    } finally {
      await quick.close();
    }
  });

  test('permission denied, an unknown key and a bad token are configuration errors', async () => {
    const { key, uri } = fresh();
    key.denied = true;
    const e1 = await adapter.wrap(uri, Buffer.from('k'), ctx).catch((x) => x);
    expect(e1).toBeInstanceOf(KmsConfigurationError);
    expect(e1.internalDetail).toMatch(/Permission .* denied/);
    await expect(adapter.wrap(`gcp-kms://${RING}/cryptoKeys/missing`, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    const bad = adapterFor(emu, {}, 'ya29.wrong');
    await expect(bad.wrap(fresh().uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    await bad.close();
  });
});

test('gRPC-transport errors (numeric gRPC codes) classify like their REST counterparts', () => {
  const grpc = (code: number, message = '') => Object.assign(new Error(message), { code });
  expect(classifyGcpError(grpc(14), 'decrypt').kind).toBe('transient'); // UNAVAILABLE
  expect(classifyGcpError(grpc(8), 'encrypt').kind).toBe('transient'); // RESOURCE_EXHAUSTED
  expect(classifyGcpError(grpc(3, 'Decryption failed'), 'decrypt').kind).toBe('refused');
  expect(classifyGcpError(grpc(3), 'encrypt').kind).toBe('config');
  expect(classifyGcpError(grpc(7), 'decrypt').kind).toBe('config'); // PERMISSION_DENIED
  expect(classifyGcpError(grpc(9), 'decrypt').kind).toBe('config'); // FAILED_PRECONDITION (disabled)
});

/**
 * The production transport: gRPC over TLS, with the endpoint given as a bare HOST:PORT. The
 * channel trusts the throwaway CA and sends the static bearer token as call metadata.
 */
function grpcCredentials(ca: string, token = 'ya29.test-token'): grpc.ChannelCredentials {
  return grpc.credentials.combineChannelCredentials(
    grpc.credentials.createSsl(Buffer.from(ca)),
    grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      const md = new grpc.Metadata();
      md.add('authorization', `Bearer ${token}`);
      cb(null, md);
    }),
  );
}

runKmsContract('gcp-kms (gRPC transport over TLS)', async () => {
  const pki = makeTestPki();
  const emu = await new GcpKmsEmulator().start();
  const front = await startGrpcFront(emu, pki);
  emu.addKey(`${RING}/cryptoKeys/kek-a`);
  emu.addKey(`${RING}/cryptoKeys/kek-b`);
  const settings = { endpoint: `127.0.0.1:${front.port}`, keyRing: RING, ...fast };
  return {
    adapter: new GcpKmsAdapter(settings, () => sdkClient(settings, { authClient: gcpStaticAuth(), sslCreds: grpcCredentials(pki.ca) })),
    keyUri: `gcp-kms://${RING}/cryptoKeys/kek-a`,
    otherKeyUri: `gcp-kms://${RING}/cryptoKeys/kek-b`,
    teardown: async () => {
      await front.close();
      await emu.close();
      pki.cleanup();
    },
  };
});

test('gRPC transport: RESOURCE_EXHAUSTED is retried, PERMISSION_DENIED and a bad token are configuration errors', async () => {
  const pki = makeTestPki();
  const emu = await new GcpKmsEmulator().start();
  const front = await startGrpcFront(emu, pki);
  const settings = { endpoint: `127.0.0.1:${front.port}`, ...fast };
  const adapter = new GcpKmsAdapter(settings, () => sdkClient(settings, { authClient: gcpStaticAuth(), sslCreds: grpcCredentials(pki.ca) }));
  const bad = new GcpKmsAdapter(settings, () => sdkClient(settings, { authClient: gcpStaticAuth(), sslCreds: grpcCredentials(pki.ca, 'ya29.wrong') }));
  try {
    const key = emu.addKey(`${RING}/cryptoKeys/g1`);
    const uri = `gcp-kms://${key.name}`;
    emu.faults.throttleNext = 2;
    const w = await adapter.wrap(uri, Buffer.from('k'), ctx);
    expect((await adapter.unwrap(uri, w.ciphertext, ctx)).toString()).toBe('k');
    await expect(bad.wrap(uri, Buffer.from('k'), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    key.denied = true;
    const e = await adapter.wrap(uri, Buffer.from('k'), ctx).catch((x) => x);
    expect(e).toBeInstanceOf(KmsConfigurationError);
    expect(e.internalDetail).toMatch(/PERMISSION_DENIED/);
  } finally {
    await adapter.close();
    await bad.close();
    await front.close();
    await emu.close();
    pki.cleanup();
  }
});
