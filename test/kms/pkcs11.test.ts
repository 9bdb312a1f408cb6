import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { runKmsContract } from './contract';
import { createAdapter, Pkcs11Adapter } from '../../kms-adapters/pkcs11';
import { parsePkcs11Uri } from '../../kms-adapters/pkcs11-uri';
import { KmsRequestError, ConfigError, KmsConfigurationError, KmsUnavailableError, UnknownKekError, UnwrapRefusedError } from '../../server/errors';
import { createSoftHsm, findRawKey, withRawSession } from '../support/softhsm';

// A real SoftHSM2 token, set up before the adapter module touches the library. "cs-main" holds
// the keys; "cs-pinless" is never logged into with the right PIN (Cryptoki login state is per
// process, so a wrong-PIN test needs a token nobody else is logged into).
const hsm = createSoftHsm(['cs-main', 'cs-pinless']);
afterAll(() => hsm.cleanup());

const ctx = { purpose: 'password-key', user: 'u1' };
const open = async (extra: Record<string, unknown> = {}) =>
  (await createAdapter({ settings: { module: hsm.module, pin: hsm.pin, token: 'cs-main', ...extra } })) as Pkcs11Adapter;

runKmsContract('pkcs11 (SoftHSM2)', async () => {
  const adapter = await open();
  return { adapter, keyUri: await adapter.createKey('contract-primary'), otherKeyUri: await adapter.createKey('contract-secondary') };
});

describe('pkcs11 adapter specifics', () => {
  let adapter: Pkcs11Adapter;
  let keyUri: string;
  beforeAll(async () => {
    adapter = await open({ sessions: 3 });
    keyUri = await adapter.createKey('spec a/1');
  });
  afterAll(() => adapter?.close());

  test('createKey returns a canonical, percent-encoded URI that round-trips', async () => {
    expect(keyUri).toBe('pkcs11:token=cs-main;object=spec%20a%2F1;type=secret-key');
    expect(parsePkcs11Uri(keyUri)).toEqual({ token: 'cs-main', object: 'spec a/1' });
    const pt = randomBytes(32);
    const { ciphertext } = await adapter.wrap(keyUri, pt, ctx);
    expect(ciphertext.length).toBe(12 + 32 + 16); // iv || ciphertext || tag
    expect((await adapter.unwrap('pkcs11:object=spec%20a%2f1;token=cs%2Dmain', ciphertext, ctx)).equals(pt)).toBe(true);
  });

  test('the key cannot leave the token: sensitive, never extractable, value unreadable', async () => {
    await withRawSession(hsm, 'cs-main', (p11, api, session) => {
      const key = findRawKey(p11, api, session, 'spec a/1');
      const attrs = p11.C_GetAttributeValue(session, key, [
        { type: api.CKA_SENSITIVE },
        { type: api.CKA_EXTRACTABLE },
        { type: api.CKA_ALWAYS_SENSITIVE },
        { type: api.CKA_NEVER_EXTRACTABLE },
        { type: api.CKA_TOKEN },
      ]);
      expect(attrs.map((a) => a.value[0])).toEqual([1, 0, 1, 1, 1]);
      expect(() => p11.C_GetAttributeValue(session, key, [{ type: api.CKA_VALUE }])).toThrow(/CKR_ATTRIBUTE_SENSITIVE/);
    });
  });

  test('an extractable key is refused, not used', async () => {
    await withRawSession(hsm, 'cs-main', (p11, api, session) => {
      p11.C_GenerateKey(session, { mechanism: api.CKM_AES_KEY_GEN }, [
        { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
        { type: api.CKA_VALUE_LEN, value: 32 },
        { type: api.CKA_LABEL, value: 'exportable' },
        { type: api.CKA_TOKEN, value: true },
        { type: api.CKA_SENSITIVE, value: true },
        { type: api.CKA_EXTRACTABLE, value: true },
        { type: api.CKA_ENCRYPT, value: true },
        { type: api.CKA_DECRYPT, value: true },
      ]);
    });
    const err = await adapter.wrap('pkcs11:token=cs-main;object=exportable', randomBytes(32), ctx).catch((e) => e);
    expect(err).toBeInstanceOf(KmsConfigurationError);
    expect(err.internalDetail).toMatch(/CKA_EXTRACTABLE=false/);
  });

  test('sessions and key handles are reused across 100 calls, and the pool bounds concurrency', async () => {
    await adapter.check(keyUri);
    const before = adapter.stats;
    for (let i = 0; i < 50; i++) {
      const pt = randomBytes(32);
      const w = await adapter.wrap(keyUri, pt, ctx);
      expect((await adapter.unwrap(keyUri, w.ciphertext, ctx)).equals(pt)).toBe(true);
    }
    expect(adapter.stats).toMatchObject({ sessionsOpened: before.sessionsOpened, logins: before.logins, keyLookups: before.keyLookups });
    await Promise.all(Array.from({ length: 60 }, () => adapter.wrap(keyUri, randomBytes(32), ctx)));
    expect(adapter.stats.sessionsOpened - before.sessionsOpened).toBeLessThanOrEqual(3);
    expect(adapter.stats.sessionsOpen).toBeLessThanOrEqual(3);
    expect(adapter.stats.logins).toBe(before.logins);
  });

  test('a refused unwrap leaves the pool usable', async () => {
    const w = await adapter.wrap(keyUri, randomBytes(32), ctx);
    for (let i = 0; i < 10; i++) {
      await expect(adapter.unwrap(keyUri, w.ciphertext, { purpose: 'password-key', user: 'u2' })).rejects.toBeInstanceOf(UnwrapRefusedError);
    }
    await expect(adapter.unwrap(keyUri, randomBytes(12), ctx)).rejects.toBeInstanceOf(UnwrapRefusedError);
    await expect(adapter.check(keyUri)).resolves.toBeUndefined();
  });

  test('sessions killed under the adapter: one call is "unavailable", the next recovers', async () => {
    await adapter.check(keyUri);
    // Same process, so C_CloseAllSessions also closes the adapter's sessions (as a token reset would).
    await withRawSession(hsm, 'cs-main', (p11, _api, session) => p11.C_CloseAllSessions(p11.C_GetSessionInfo(session).slotID));
    const err = await adapter.wrap(keyUri, randomBytes(32), ctx).catch((e) => e);
    expect(err).toBeInstanceOf(KmsUnavailableError);
    expect(err.internalDetail).toMatch(/CKR_SESSION_HANDLE_INVALID/);
    const loginsBefore = adapter.stats.logins;
    await expect(adapter.check(keyUri)).resolves.toBeUndefined();
    expect(adapter.stats.logins).toBe(loginsBefore + 1);
  });

  test('an unknown key label or token is a configuration error that names it', async () => {
    const noKey = await adapter.wrap('pkcs11:token=cs-main;object=nope', randomBytes(32), ctx).catch((e) => e);
    expect(noKey).toBeInstanceOf(KmsConfigurationError);
    expect(noKey.internalDetail).toMatch(/no secret key labelled "nope" on token "cs-main"/);
    const noToken = await adapter.unwrap('pkcs11:token=elsewhere;object=k', randomBytes(40), ctx).catch((e) => e);
    expect(noToken).toBeInstanceOf(KmsConfigurationError);
    expect(noToken.internalDetail).toMatch(/no initialised token labelled "elsewhere"/);
  });

  test('slot-id narrows the token; a wrong slot-id finds nothing', async () => {
    const slotId = await withRawSession(hsm, 'cs-main', (p11, _api, session) => p11.C_GetSessionInfo(session).slotID.readBigUInt64LE().toString());
    const w = await adapter.wrap(`pkcs11:token=cs-main;object=spec%20a%2F1;slot-id=${slotId}`, randomBytes(32), ctx);
    await expect(adapter.unwrap(keyUri, w.ciphertext, ctx)).resolves.toHaveLength(32);
    await expect(adapter.wrap('pkcs11:token=cs-main;object=spec%20a%2F1;slot-id=9', randomBytes(32), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
  });

  test.each([
    ['no attributes', 'pkcs11:'],
    ['no object', 'pkcs11:token=cs-main'],
    ['no token', 'pkcs11:object=k'],
    ['another scheme', 'local://k'],
    ['a private key type', 'pkcs11:token=cs-main;object=k;type=private-key'],
    ['an unknown attribute', 'pkcs11:token=cs-main;object=k;id=%01'],
    ['a repeated attribute', 'pkcs11:token=cs-main;token=x;object=k'],
    ['an unencoded space', 'pkcs11:token=cs-main;object=a b'],
    ['a bad escape', 'pkcs11:token=cs-main;object=%zz'],
    ['invalid UTF-8', 'pkcs11:token=cs-main;object=%FF'],
    ['a non-numeric slot', 'pkcs11:token=cs-main;object=k;slot-id=one'],
    ['a trailing separator', 'pkcs11:token=cs-main;object=k;'],
    ['a token label over 32 bytes', `pkcs11:token=${'t'.repeat(33)};object=k`],
  ])('refuses a key URI with %s', async (_why, uri) => {
    await expect(adapter.wrap(uri, randomBytes(32), ctx)).rejects.toBeInstanceOf(UnknownKekError);
    await expect(adapter.unwrap(uri, randomBytes(60), ctx)).rejects.toBeInstanceOf(UnknownKekError);
  });

  test('a key URI carrying a PIN is refused without echoing it', async () => {
    const err = await adapter.wrap('pkcs11:token=cs-main;object=k?pin-value=31415926', randomBytes(32), ctx).catch((e) => e);
    expect(err).toBeInstanceOf(UnknownKekError);
    expect(`${err.message} ${err.internalDetail ?? ''}`).not.toContain('31415926');
  });

  test('createKey refuses a label that already exists, and an empty one', async () => {
    await expect(adapter.createKey('spec a/1')).rejects.toBeInstanceOf(KmsConfigurationError);
    await expect(adapter.createKey('')).rejects.toBeInstanceOf(KmsRequestError);
  });

  test('createKey without CS_PKCS11_TOKEN and with two tokens present asks for the setting', async () => {
    const a = (await createAdapter({ settings: { module: hsm.module, pin: hsm.pin } })) as Pkcs11Adapter;
    try {
      const err = await a.createKey('orphan').catch((e) => e);
      expect(err).toBeInstanceOf(KmsConfigurationError);
      expect(err.internalDetail).toMatch(/2 tokens present; set CS_PKCS11_TOKEN/);
    } finally {
      await a.close();
    }
  });

  test('an empty plaintext is refused before reaching the token; a blob with no room for one is refused', async () => {
    await expect(adapter.wrap(keyUri, Buffer.alloc(0), ctx)).rejects.toBeInstanceOf(KmsRequestError);
    await expect(adapter.unwrap(keyUri, randomBytes(28), ctx)).rejects.toBeInstanceOf(UnwrapRefusedError);
  });

  test('after close, calls fail and the adapter can be closed twice', async () => {
    const extra = await open();
    await extra.close();
    await expect(extra.wrap(keyUri, randomBytes(32), ctx)).rejects.toBeInstanceOf(KmsConfigurationError);
    await expect(extra.close()).resolves.toBeUndefined();
    await expect(adapter.check(keyUri)).resolves.toBeUndefined(); // the shared library is still up
  });
});

describe('pkcs11 adapter configuration', () => {
  const wrongPin = 'wrong-pin-27182818';

  test('without SoftHSM2 installed the test setup fails and says how to install it', () => {
    expect(() => createSoftHsm(['x'], { util: '/nonexistent/softhsm2-util', module: hsm.module })).toThrow(/apt-get install softhsm2/);
  });

  test('a wrong PIN is a configuration error that names the setting, never the PIN, and is not retried', async () => {
    const a = (await createAdapter({ settings: { module: hsm.module, pin: wrongPin } })) as Pkcs11Adapter;
    try {
      const uri = 'pkcs11:token=cs-pinless;object=k';
      for (let i = 0; i < 3; i++) {
        const err = await a.wrap(uri, randomBytes(32), ctx).catch((e) => e);
        expect(err).toBeInstanceOf(KmsConfigurationError);
        expect(err.internalDetail).toMatch(/CKR_PIN_INCORRECT.*CS_PKCS11_PIN/);
        expect(inspect(err, { depth: 10 })).not.toContain(wrongPin); // message, detail, stack, cause
      }
      // One attempt only: retrying a wrong PIN would count down the token's PIN lockout.
      expect(a.stats.logins).toBe(1);
    } finally {
      await a.close();
    }
  });

  test('a wrong PIN with CS_PKCS11_TOKEN set stops start-up with a ConfigError', async () => {
    const err = await createAdapter({ settings: { module: hsm.module, pin: wrongPin, token: 'cs-pinless' } }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/CS_PKCS11_PIN/);
    expect(err.message).not.toContain(wrongPin);
  });

  test('the PIN may come from a 0600 file, or 0440 in its primary group (Kubernetes fsGroup = runAsGroup); readable by another group or others is refused', async () => {
    const file = join(hsm.dir, 'pin');
    writeFileSync(file, `${hsm.pin}\n`, { mode: 0o600 });
    const a = await createAdapter({ settings: { module: hsm.module, pinFile: file, token: 'cs-main' } });
    await a.close();
    chmodSync(file, 0o440);
    chownSync(file, process.getuid!(), process.getgid!());
    const b = await createAdapter({ settings: { module: hsm.module, pinFile: file, token: 'cs-main' } });
    await b.close();
    chmodSync(file, 0o644);
    await expect(createAdapter({ settings: { module: hsm.module, pinFile: file } })).rejects.toThrow(/CS_PKCS11_PIN_FILE: .*readable by others; chmod 600/);
    chmodSync(file, 0o660);
    await expect(createAdapter({ settings: { module: hsm.module, pinFile: file } })).rejects.toThrow(/CS_PKCS11_PIN_FILE: .*group-writable; chmod 600/);
    if (process.getuid!() === 0) {
      // Only root can give a file to a group it is not in.
      chmodSync(file, 0o640);
      chownSync(file, 0, 54_321);
      await expect(createAdapter({ settings: { module: hsm.module, pinFile: file } })).rejects.toThrow(/CS_PKCS11_PIN_FILE: .*a group other than this process's primary group/);
    }
  });

  test.each([
    ['no module', {}, /CS_PKCS11_MODULE/],
    ['a relative module path', { module: 'libsofthsm2.so', pin: '1' }, /CS_PKCS11_MODULE: must be an absolute path/],
    ['a missing module', { module: '/nonexistent/lib.so', pin: '1' }, /CS_PKCS11_MODULE: .* does not exist/],
    ['a file that is not a PKCS#11 library', { module: '/etc/hostname', pin: '1' }, /CS_PKCS11_MODULE: .*could not be loaded/],
    ['no PIN', { module: '/usr/lib/softhsm/libsofthsm2.so' }, /CS_PKCS11_PIN or CS_PKCS11_PIN_FILE must be set/],
    ['both PIN and PIN file', { module: '/usr/lib/softhsm/libsofthsm2.so', pin: 'secret-9', pinFile: '/x' }, /both set/],
    ['a bad session count', { module: '/usr/lib/softhsm/libsofthsm2.so', pin: 'secret-9', sessions: 0 }, /CS_PKCS11_SESSIONS/],
  ])('refuses %s with a ConfigError naming the setting', async (_why, settings, message) => {
    const err = await createAdapter({ settings }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('secret-9');
  });
});

describe('a hung HSM', () => {
  test('the caller gets a 503 after the timeout; the busy session is not reused until the token answers', async () => {
    const adapter = await open({ sessions: 1, timeoutMs: 200 });
    try {
      const uri = await adapter.createKey('hung-hsm');
      const w = await adapter.wrap(uri, randomBytes(32), ctx);
      const p11 = (adapter as unknown as { p11: { C_DecryptAsync: (...a: unknown[]) => Promise<Buffer> } }).p11;
      const original = p11.C_DecryptAsync.bind(p11);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const spy = jest.spyOn(p11, 'C_DecryptAsync').mockImplementationOnce(async (...args: unknown[]) => {
        await gate; // the token "hangs" until released
        return original(...args);
      });
      try {
        const e = await adapter.unwrap(uri, w.ciphertext, ctx).catch((x) => x);
        expect(e).toBeInstanceOf(KmsUnavailableError);
        expect(e.internalDetail).toMatch(/no answer from the HSM within 200 ms/);
        expect(e.retryAfter).toBeGreaterThan(0);
        // The only session is still inside the hung call: the next caller waits rather than sharing it.
        const next = adapter.unwrap(uri, w.ciphertext, ctx);
        release();
        expect((await next).length).toBe(32);
      } finally {
        spy.mockRestore();
      }
    } finally {
      await adapter.close();
    }
  });
});

describe('key service on the HSM, configured through CS_* settings', () => {
  test('users provisioned under a pkcs11: KEK open only for their owner; per-user KEKs are created in the token', async () => {
    const { createTestContext } = await import('../support/context.js');
    const setup = await open();
    const kekUri = await setup.createKey('e2e-shared');
    await setup.close();
    const env = { CS_KEK_URI: kekUri, CS_PKCS11_MODULE: hsm.module, CS_PKCS11_PIN: hsm.pin, CS_PKCS11_TOKEN: 'cs-main' };
    const t = await createTestContext('sqlite', env);
    try {
      const a = await t.keys.provisionUser({ userName: 'hsm-a' }, { actor: 'test' });
      const b = await t.keys.provisionUser({ userName: 'hsm-b' }, { actor: 'test' });
      expect(a.keys.kekUri).toBe(kekUri);
      expect(await t.keys.unwrapPasswordKey(a.id, { actor: 'test' })).toHaveLength(32);
      await expect(t.keys.unwrapPasswordKey(b.id, { actor: 'test' }, a.keys.wrappedPasswordKey)).rejects.toBeInstanceOf(UnwrapRefusedError);
    } finally {
      await t.cleanup();
    }
    const p = await createTestContext('sqlite', { ...env, CS_KEK_MODE: 'per-user' });
    try {
      const u = await p.keys.provisionUser({ userName: 'hsm-own' }, { actor: 'test' });
      expect(u.keys.kekUri).toMatch(/^pkcs11:token=cs-main;object=user-[0-9a-f-]{36};type=secret-key$/);
      expect(await p.keys.unwrapPasswordKey(u.id, { actor: 'test' })).toHaveLength(32);
    } finally {
      await p.cleanup();
    }
  });
});
