import { execFile } from 'node:child_process';
import { createHmac, createPublicKey, generateKeyPair, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { listen, type Listening } from '../support/http-server';
import { keyConnectorClient } from '../support/key-connector-client';
import { makeKeyAndCert } from '../support/certs';
import { loadConfig } from '../../server/config';
import { KeyConnectorUserKeyEntity } from '../../entities';

/**
 * Vaultwarden as the identity server (CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE). Its access tokens,
 * from dani-garcia/vaultwarden src/auth.rs (commit 46d71107f5094460dd5ecbe1dbac6e6c71e5189a):
 * - `JWT_LOGIN_ISSUER = format!("{}|login", CONFIG.domain_origin())`, RS256 (`JWT_ALGORITHM`), header
 *   `Header::new(RS256)` (typ JWT, no kid), signed with data/rsa_key.pem (`Rsa::generate(2048)`,
 *   written with `private_key_to_pem`, i.e. PKCS#1); no discovery document or JWKS is served.
 * - `LoginJwtClaims`: nbf, exp, iss, sub (user uuid), premium (always true), name, email,
 *   email_verified, sstamp (a uuid), device (uuid), devicetype (DeviceType's Display, e.g. "Chrome"),
 *   client_id, scope (`AuthMethod::scope_vec`: ["api", "offline_access"] for password and SSO
 *   logins, ["api"] for a user API key), amr (always ["Application"]). No iat, no jti.
 * - The refresh token (`RefreshJwtClaims`) shares the `|login` issuer and key but its sub is the
 *   AuthMethod ("password") and it has no scope: it must not pass.
 * - Other Vaultwarden tokens (invites, admin, sends…) share the key with issuers `<origin>|invite` etc.
 */
const run = promisify(execFile);
const b64 = (n = 32) => randomBytes(n).toString('base64');
const guid = () => randomUUID();
const now = () => Math.floor(Date.now() / 1000);
const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

async function rsaPrivateKey(): Promise<KeyObject> {
  return new Promise((resolve, reject) => generateKeyPair('rsa', { modulusLength: 2048 }, (err, _pub, priv) => (err ? reject(err) : resolve(priv))));
}

/** A Vaultwarden data folder: rsa_key.pem as Vaultwarden writes it, and the public half as the how-to extracts it. */
async function vaultwardenKeys(dir: string): Promise<{ privateKey: KeyObject; privatePem: string; publicPemPath: string; publicPem: string }> {
  const privateKey = await rsaPrivateKey();
  const privatePem = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  await writeFile(join(dir, 'rsa_key.pem'), privatePem, { mode: 0o600 });
  const publicPemPath = join(dir, 'rsa_key.pub.pem');
  // docs/key-connector.md's command, verbatim.
  await run('openssl', ['rsa', '-in', join(dir, 'rsa_key.pem'), '-pubout', '-out', publicPemPath]);
  return { privateKey, privatePem, publicPemPath, publicPem: await readFile(publicPemPath, 'utf8') };
}

/** An access token shaped exactly like LoginJwtClaims (auth.rs), for a password login from the web vault. */
function loginClaims(issuer: string, sub: string, override: Record<string, unknown> = {}): Record<string, unknown> {
  const t = now();
  const claims: Record<string, unknown> = {
    nbf: t,
    exp: t + 7200, // DEFAULT_ACCESS_VALIDITY: 2 hours
    iss: issuer,
    sub,
    premium: true,
    name: 'Test User',
    email: 'test.user@example.com',
    email_verified: true,
    sstamp: randomUUID(),
    device: randomUUID(),
    devicetype: 'Chrome',
    client_id: 'web',
    scope: ['api', 'offline_access'],
    amr: ['Application'],
  };
  for (const [k, v] of Object.entries(override)) {
    if (v === undefined) delete claims[k];
    else claims[k] = v;
  }
  return claims;
}

const sign = (claims: Record<string, unknown>, key: KeyObject) => new SignJWT(claims).setProtectedHeader({ typ: 'JWT', alg: 'RS256' }).sign(key);

describe.each(testDatabaseNames())('Key Connector API with Vaultwarden tokens on %s', (kind) => {
  let dir: string;
  let keys: Awaited<ReturnType<typeof vaultwardenKeys>>;
  /** Stands at Vaultwarden's DOMAIN and counts requests: none may come (no discovery, no JWKS). */
  let vaultwarden: Listening;
  let vaultwardenRequests = 0;
  let issuer: string;
  let ctx: TestContext;
  let server: Listening;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cs-vaultwarden-'));
    keys = await vaultwardenKeys(dir);
    vaultwarden = await listen((_req, res) => {
      vaultwardenRequests++;
      res.writeHead(404).end();
    });
    issuer = `${vaultwarden.url}|login`;
    ctx = await createTestContext(kind, { CS_KEY_CONNECTOR_ISSUER: issuer, CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: keys.publicPemPath });
    server = await listen(ctx.app);
    url = `${server.url}/key-connector`;
  });
  afterAll(async () => {
    await server?.close();
    await ctx?.cleanup();
    await vaultwarden?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  // The Bitwarden clients' requests (bitwarden/clients libs/common/src/services/api.service.ts), as in user-keys.test.ts.
  const { getKey, sendKey, storeFirstKey } = keyConnectorClient(() => url);
  const row = (sub: string) => ctx.store.dataSource.manager.findOneBy(KeyConnectorUserKeyEntity, { sub });

  test('a Vaultwarden access token: GET 404 → POST 200 → GET 200 {"key"} → PUT replaces; Vaultwarden is never contacted', async () => {
    const sub = guid();
    const token = await sign(loginClaims(issuer, sub), keys.privateKey);
    expect(JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString())).toEqual({ typ: 'JWT', alg: 'RS256' });

    await storeFirstKey(token);

    const replacement = b64();
    expect((await sendKey('PUT', token, JSON.stringify({ key: replacement }))).status).toBe(200);
    expect(await (await getKey(token)).json()).toEqual({ key: replacement });
    expect((await row(sub))!.wrappedKey).not.toContain(replacement);
    expect(vaultwardenRequests).toBe(0);
  });

  test('a token from a user API key login (scope ["api"]) is accepted too', async () => {
    const sub = guid();
    const token = await sign(loginClaims(issuer, sub, { scope: ['api'], client_id: 'cli', devicetype: 'Linux' }), keys.privateKey);
    expect((await sendKey('PUT', token, JSON.stringify({ key: b64() }))).status).toBe(200);
    expect(await row(sub)).not.toBeNull();
  });

  describe('refused: 401 invalid_token, nothing stored, audited', () => {
    const hs256KeyedWithPem = (sub: string) => {
      // HMAC keyed with the very PEM the administrator configured (the algorithm-confusion attack).
      const input = `${enc({ typ: 'JWT', alg: 'HS256' })}.${enc(loginClaims(issuer, sub))}`;
      return `${input}.${createHmac('sha256', keys.publicPem).update(input).digest('base64url')}`;
    };
    const cases: [string, (sub: string) => Promise<string>][] = [
      ['wrong iss: another Vaultwarden', async (s) => sign(loginClaims('https://vault.example.com|login', s), keys.privateKey)],
      ['wrong iss: the origin without |login', async (s) => sign(loginClaims(vaultwarden.url, s), keys.privateKey)],
      ['wrong iss: a Vaultwarden invite token (same key, |invite)', async (s) => sign(loginClaims(issuer.replace(/\|login$/, '|invite'), s), keys.privateKey)],
      ['signed by another RSA key', async (s) => sign(loginClaims(issuer, s), await rsaPrivateKey())],
      ['HS256 keyed with the PEM', async (s) => hs256KeyedWithPem(s)],
      ['alg: none', async (s) => `${enc({ typ: 'JWT', alg: 'none' })}.${enc(loginClaims(issuer, s))}.`],
      ['expired', async (s) => sign(loginClaims(issuer, s, { nbf: now() - 7 * 3600, exp: now() - 3600 }), keys.privateKey)],
      ['not yet valid', async (s) => sign(loginClaims(issuer, s, { nbf: now() + 3600 }), keys.privateKey)],
      [
        "Vaultwarden's refresh token (RefreshJwtClaims: sub is the auth method, no scope)",
        async () => sign({ nbf: now(), exp: now() + 30 * 86400, iss: issuer, sub: 'password', device_token: b64(64), token: null }, keys.privateKey),
      ],
    ];

    test.each(cases)('%s', async (_name, make) => {
      const sub = guid();
      const token = await make(sub);
      const before = (await ctx.store.repos.audit.recent(500, {})).length;
      for (const method of ['POST', 'PUT'] as const) {
        const r = await sendKey(method, token, JSON.stringify({ key: b64() }));
        expect(r.status).toBe(401);
        expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(await r.json()).toMatchObject({ status: 401, code: 'invalid_token' });
        expect(r.headers.get('www-authenticate')).toMatch(/^Bearer/);
      }
      expect((await getKey(token)).status).toBe(401);
      expect(await row(sub)).toBeNull();
      const after = await ctx.store.repos.audit.recent(500, {});
      const recorded = after.slice(0, after.length - before);
      expect(recorded).toHaveLength(3);
      expect(recorded.every((e) => e.action === 'key-connector.request' && e.outcome === 'refused')).toBe(true);
      expect(vaultwardenRequests).toBe(0);
    });
  });
});

describe('CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE settings', () => {
  const base = { CS_DATABASE_URL: 'sqlite::memory:', CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };
  const name = 'CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE';
  let dir: string;
  let keys: Awaited<ReturnType<typeof vaultwardenKeys>>;
  const file = async (leaf: string, text: string) => {
    const p = join(dir, leaf);
    await writeFile(p, text);
    return p;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cs-vaultwarden-config-'));
    keys = await vaultwardenKeys(dir);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the |login issuer with a public key, a PKCS#1 public key or a certificate; the issuer kept exactly', async () => {
    const c = loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'https://vault.example.com|login', [name]: keys.publicPemPath }).keyConnector!;
    expect(c.issuer).toBe('https://vault.example.com|login');
    expect(c.issuerPublicKey?.asymmetricKeyType).toBe('rsa');
    expect(c.issuerPublicKey?.export({ type: 'spki', format: 'pem' })).toBe(keys.publicPem);

    const pkcs1 = await file('pkcs1.pem', createPublicKey(keys.privatePem).export({ type: 'pkcs1', format: 'pem' }).toString());
    expect(loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'http://127.0.0.1:8000|login', [name]: pkcs1 }).keyConnector?.issuerPublicKey?.asymmetricKeyType).toBe('rsa');

    const cert = await file('cert.pem', makeKeyAndCert('vault.example.com').cert);
    expect(loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'https://vault.example.com:8443|login', [name]: cert }).keyConnector?.issuerPublicKey?.asymmetricKeyType).toBe('rsa');

    // A plain issuer URL with the key file: pinned key, no discovery (any issuer form the operator names).
    expect(loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'https://identity.example.com', [name]: keys.publicPemPath }).keyConnector?.issuerPublicKey).toBeDefined();
  });

  test.each([
    ['the key file missing', async () => ({ [name]: join(dir, 'nope.pem') }), /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: cannot read the file \(ENOENT\)/],
    ['the key file unreadable (a directory)', async () => ({ [name]: dir }), /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: cannot read the file \(EISDIR\)/],
    ['not a key', async () => ({ [name]: await file('junk.pem', 'hello\n') }), /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: does not hold a PEM public key or certificate/],
    ["Vaultwarden's private key itself", async () => ({ [name]: join(dir, 'rsa_key.pem') }), /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: holds a private key; give only its public half/],
    [
      'an EC public key (Vaultwarden signs RS256)',
      async () => {
        const ec = await new Promise<KeyObject>((resolve, reject) => generateKeyPair('ec', { namedCurve: 'P-256' }, (err, pub) => (err ? reject(err) : resolve(pub))));
        return { [name]: await file('ec.pem', ec.export({ type: 'spki', format: 'pem' }).toString()) };
      },
      /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: holds a ec key/,
    ],
    ['the key file without an issuer', async () => ({ CS_KEY_CONNECTOR_ISSUER: undefined, [name]: keys.publicPemPath }), /CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE: set CS_KEY_CONNECTOR_ISSUER too/],
    ['the |login form without the key file', async () => ({ [name]: undefined }), /CS_KEY_CONNECTOR_ISSUER: the Vaultwarden form <origin>\|login needs CS_KEY_CONNECTOR_ISSUER_PUBLIC_KEY_FILE/],
    ['the |login form over plain http off loopback', async () => ({ CS_KEY_CONNECTOR_ISSUER: 'http://vault.example.com|login', [name]: keys.publicPemPath }), /CS_KEY_CONNECTOR_ISSUER: must be an https:\/\/ URL/],
    ['the |login form with a path (Vaultwarden uses the origin only)', async () => ({ CS_KEY_CONNECTOR_ISSUER: 'https://example.com/vault|login', [name]: keys.publicPemPath }), /CS_KEY_CONNECTOR_ISSUER: .*here https:\/\/example\.com\|login/],
    ['another suffix', async () => ({ CS_KEY_CONNECTOR_ISSUER: 'https://vault.example.com|admin', [name]: keys.publicPemPath }), /CS_KEY_CONNECTOR_ISSUER: must be a URL/],
  ])('%s: a start-up error naming the setting', async (_what, make, message) => {
    const env: Record<string, string | undefined> = { ...base, CS_KEY_CONNECTOR_ISSUER: 'https://vault.example.com|login', ...(await make()) };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    expect(() => loadConfig(env as Record<string, string>)).toThrow(message);
  });
});
