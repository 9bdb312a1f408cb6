import { request as httpRequest, Agent } from 'node:http';
import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { KeyManagementServiceClient } from '@google-cloud/kms';
import { CryptographyClient } from '@azure/keyvault-keys';
import type { KmsAdapter } from '../../kms-adapters/types';
import { AwsKmsAdapter } from '../../kms-adapters/aws-kms';
import { GcpKmsAdapter, sdkClient as gcpSdkClient } from '../../kms-adapters/gcp-kms';
import { AzureKeyVaultAdapter, sdkClient as azureSdkClient } from '../../kms-adapters/azure-kv';
import { VaultTransitAdapter } from '../../kms-adapters/vault-transit';
import { canonicalContext } from '../../kms-adapters/associated-data';
import { crc32c } from '../../kms-adapters/crc32c';
import { AwsKmsEmulator, REGION } from '../emulators/aws-kms';
import { GcpKmsEmulator } from '../emulators/gcp-kms';
import { AzureKvEmulator } from '../emulators/azure-kv';
import { VaultEmulator } from '../emulators/vault';
import { makeTestPki } from '../emulators/tls';
import { azureStaticCredential, gcpStaticAuth, useFakeAwsCredentials } from '../emulators/credentials';
import { denyNonLoopback } from '../emulators/offline';

/**
 * Adapter unwrap vs. the bare SDK decrypt against each local emulator, ~1.5 s each, 8 calls in
 * flight. The difference is what the adapter adds (binding checks, resilience, metrics, CRC32C);
 * the absolute numbers measure the emulators and this machine, not the cloud services.
 */
export interface CloudKmsBenchRow {
  provider: string;
  adapterRps: number;
  p50ms: number;
  p99ms: number;
  directSdkRps: number;
}

const DURATION_MS = 1500;
const CONCURRENCY = 8;
const WARMUP_MS = 400;
const ctx = { purpose: 'password-key', user: 'bench' };

async function measure(fn: () => Promise<unknown>, durationMs = DURATION_MS): Promise<{ rps: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const end = performance.now() + durationMs;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const out = await fn();
        if (Buffer.isBuffer(out)) out.fill(0);
        lat.push(performance.now() - t);
      }
    }),
  );
  const secs = (performance.now() - start) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => Math.round((lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0) * 100) / 100;
  return { rps: Math.round(lat.length / secs), p50: q(0.5), p99: q(0.99) };
}

async function row(provider: string, adapter: KmsAdapter, keyUri: string, direct: (ct: Buffer) => Promise<unknown>): Promise<CloudKmsBenchRow> {
  const w = await adapter.wrap(keyUri, Buffer.alloc(32, 7), ctx);
  // Warm both paths (JIT, key caches, keep-alive connections) so neither pays for the other.
  await measure(() => adapter.unwrap(keyUri, w.ciphertext, ctx, w.keyVersion), WARMUP_MS);
  await measure(() => direct(w.ciphertext), WARMUP_MS);
  const a = await measure(() => adapter.unwrap(keyUri, w.ciphertext, ctx, w.keyVersion));
  const d = await measure(() => direct(w.ciphertext));
  return { provider, adapterRps: a.rps, p50ms: a.p50, p99ms: a.p99, directSdkRps: d.rps };
}

async function aws(): Promise<CloudKmsBenchRow> {
  const emu = await new AwsKmsEmulator().start();
  const key = emu.addKey();
  const adapter = new AwsKmsAdapter({ endpoint: emu.endpoint, region: REGION });
  const sdk = new KMSClient({ region: REGION, endpoint: emu.endpoint, maxAttempts: 1 });
  try {
    return await row('aws-kms', adapter, `aws-kms://${key.arn}`, (ct) =>
      sdk.send(new DecryptCommand({ KeyId: key.arn, CiphertextBlob: ct, EncryptionContext: { ...ctx } })),
    );
  } finally {
    sdk.destroy();
    await adapter.close();
    await emu.close();
  }
}

async function gcp(): Promise<CloudKmsBenchRow> {
  const emu = await new GcpKmsEmulator().start();
  const name = 'projects/bench/locations/global/keyRings/r/cryptoKeys/k';
  emu.addKey(name);
  const settings = { endpoint: emu.endpoint };
  const adapter = new GcpKmsAdapter(settings, () => gcpSdkClient(settings, { authClient: gcpStaticAuth() }));
  const u = new URL(emu.endpoint);
  const sdk = new KeyManagementServiceClient({ fallback: true, apiEndpoint: u.hostname, port: Number(u.port), protocol: 'http', authClient: gcpStaticAuth() } as never);
  const aad = canonicalContext(ctx);
  try {
    return await row('gcp-kms', adapter, `gcp-kms://${name}`, (ct) =>
      sdk.decrypt({ name, ciphertext: ct, additionalAuthenticatedData: aad, ciphertextCrc32c: { value: crc32c(ct) } }),
    );
  } finally {
    await sdk.close();
    await adapter.close();
    await emu.close();
  }
}

async function azure(): Promise<CloudKmsBenchRow> {
  const pki = makeTestPki();
  const emu = await new AzureKvEmulator(pki).start();
  const key = emu.addKey('bench', 'oct-HSM');
  const opts = { tlsOptions: { ca: pki.ca }, disableChallengeResourceVerification: true, retryOptions: { maxRetries: 0 } };
  const adapter = new AzureKeyVaultAdapter({}, () => azureSdkClient(emu.url, azureStaticCredential(), opts));
  const sdk = new CryptographyClient(`${emu.url}/keys/bench/${key.versions[0].id}`, azureStaticCredential(), opts);
  const aad = canonicalContext(ctx);
  try {
    return await row('azure-kv', adapter, 'azure-kv://bench.managedhsm.azure.net/keys/bench', (ct) => {
      const body = ct.subarray(2 + ct[1]); // skip the adapter's kind + version header
      return sdk.decrypt({ algorithm: 'A256GCM', iv: body.subarray(0, 12), authenticationTag: body.subarray(12, 28), ciphertext: body.subarray(28), additionalAuthenticatedData: aad });
    });
  } finally {
    await adapter.close();
    await emu.close();
    pki.cleanup();
  }
}

async function vault(): Promise<CloudKmsBenchRow> {
  const emu = await new VaultEmulator().start();
  emu.addKey('bench');
  const adapter = new VaultTransitAdapter({ scheme: 'http', token: 'root-test-token' });
  const agent = new Agent({ keepAlive: true });
  const [host, port] = emu.hostPort.split(':');
  const ad = canonicalContext(ctx).toString('base64');
  // Vault has no official Node SDK: "direct" is the raw HTTP call the adapter wraps.
  const direct = (ct: Buffer) =>
    new Promise<unknown>((resolve, reject) => {
      const body = JSON.stringify({ ciphertext: ct.toString('utf8'), associated_data: ad });
      const req = httpRequest({ host, port: Number(port), method: 'POST', path: '/v1/transit/decrypt/bench', agent, headers: { 'x-vault-token': 'root-test-token', 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(Buffer.concat(chunks).toString())) : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
  try {
    return await row('vault-transit', adapter, `vault-transit://${emu.hostPort}/transit/keys/bench`, direct);
  } finally {
    agent.destroy();
    await adapter.close();
    await emu.close();
  }
}

export async function benchCloudKms(): Promise<Array<{ provider: string; adapterRps: number; p50ms: number; p99ms: number; directSdkRps: number }>> {
  useFakeAwsCredentials(REGION);
  denyNonLoopback();
  const rows: CloudKmsBenchRow[] = [];
  for (const run of [aws, vault, gcp, azure]) rows.push(await run());
  return rows;
}
