import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { ConfigError } from '../../server/errors';
import { makeKeyAndCert } from '../support/certs';
import { TestIdp } from '../support/saml-idp';
import { auditOf, createAuthFixture, idpAnswer, postToAcs, signInForToken, startSignIn } from '../support/auth-fixture';

describe('auth configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-authcfg-'));
  let idp: TestIdp;
  beforeAll(async () => {
    idp = await TestIdp.start({ spEntityId: 'https://crypto.example.com/auth/saml/metadata' });
  });
  afterAll(async () => {
    await idp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const base = { CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64'), CS_PUBLIC_URL: 'https://crypto.example.com' };
  const expectConfigError = (env: Record<string, string>, names: RegExp, secret?: string) => {
    let err: unknown;
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(names);
    if (secret) expect((err as Error).message).not.toContain(secret);
  };

  test('defaults: SAML off, public URL derived endpoints, secure token settings', () => {
    const c = loadConfig(base).auth;
    expect(c.saml.enabled).toBe(false);
    expect(c.saml.acsUrl).toBe('https://crypto.example.com/auth/saml/acs');
    expect(c.saml.spEntityId).toBe('https://crypto.example.com/auth/saml/metadata');
    expect(c.saml.allowUnsolicited).toBe(false);
    expect(c.tokens).toMatchObject({ ttlSeconds: 300, codeTtlSeconds: 60, issuer: 'https://crypto.example.com', audience: 'https://crypto.example.com/api' });
    expect(c.cors.origins).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  test('IdP metadata file gives entity ID, SSO URL and certificates; explicit certificates are added (rollover)', () => {
    const file = join(dir, 'idp.xml');
    writeFileSync(file, idp.metadata());
    const next = makeKeyAndCert('next');
    const c = loadConfig({ ...base, CS_SAML_IDP_METADATA_FILE: file, CS_SAML_IDP_CERTS: next.cert }).auth.saml;
    expect(c.enabled).toBe(true);
    expect(c.idp.entityId).toBe(idp.entityId);
    expect(c.idp.ssoUrl).toBe(idp.ssoUrl);
    expect(c.idp.certs).toHaveLength(2);
  });

  test('clients and CORS origins', () => {
    const c = loadConfig({
      ...base,
      CS_CLIENTS: JSON.stringify([{ clientId: 'desktop', redirectUris: ['http://127.0.0.1/cb', 'com.example.app:/cb'] }]),
      CS_CORS_ORIGINS: 'https://app.example.com, http://localhost:5173',
    }).auth;
    expect(c.clients[0]).toMatchObject({ clientId: 'desktop', name: 'desktop' });
    expect(c.cors.origins).toEqual(['https://app.example.com', 'http://localhost:5173']);
  });

  test('bad settings stop start-up naming the setting, never echoing the value', () => {
    expectConfigError({ CS_CORS_ORIGINS: '*' }, /CS_CORS_ORIGINS/);
    expectConfigError({ CS_CORS_ORIGINS: 'https://app.example.com/' }, /CS_CORS_ORIGINS: entry 1/);
    expectConfigError({ CS_CLIENTS: JSON.stringify([{ clientId: 'w', redirectUris: ['http://evil.example/cb'] }]) }, /CS_CLIENTS: \[0\]\.redirectUris\[0\] uses http/);
    expectConfigError({ CS_CLIENTS: '{not json' }, /CS_CLIENTS: is not valid JSON/);
    expectConfigError({ CS_CLIENTS: '[]', CS_CLIENTS_FILE: '/x' }, /set only one/);
    expectConfigError({ CS_SAML_IDP_CERTS: 'c2VjcmV0LXZhbHVlLXRoYXQtaXMtbm90LWEtY2VydA==' }, /CS_SAML_IDP_CERTS/, 'c2VjcmV0LXZhbHVl');
    expectConfigError({ CS_SAML_IDP_SSO_URL: 'https://idp.example.com/sso' }, /CS_SAML_IDP_CERTS: at least one/);
    expectConfigError({ CS_SAML_SP_KEY_FILE: '/nonexistent' }, /CS_SAML_SP_KEY_FILE and CS_SAML_SP_CERT_FILE/);
    expectConfigError({ CS_SAML_IDP_METADATA_FILE: join(dir, 'missing.xml') }, /CS_SAML_IDP_METADATA_FILE: cannot read/);
    const doctype = join(dir, 'doctype.xml');
    writeFileSync(doctype, `<!DOCTYPE x [<!ENTITY a "b">]>${idp.metadata().replace('<?xml version="1.0"?>', '')}`);
    expectConfigError({ CS_SAML_IDP_METADATA_FILE: doctype }, /DOCTYPE/);
    expectConfigError({ CS_SAML_USER_ATTRIBUTE: 'upn' }, /CS_SAML_USER_ATTRIBUTE/);
    expectConfigError({ CS_TOKEN_TTL_SECONDS: '86400' }, /CS_TOKEN_TTL_SECONDS/);
  });
});

describe('IdP metadata URL', () => {
  test('must be https (plain http only for a loopback IdP): it carries the trusted certificates', () => {
    expect(() => loadConfig({ CS_SAML_IDP_METADATA_URL: 'http://idp.example.com/metadata' })).toThrow(/CS_SAML_IDP_METADATA_URL: must be an https:\/\/ URL/);
    expect(() => loadConfig({ CS_SAML_IDP_METADATA_URL: 'https://idp.example.com/metadata' })).not.toThrow();
  });

  test('fetched at run time; a sign-in works with the certificate it publishes', async () => {
    const idp = await TestIdp.start({ spEntityId: 'http://127.0.0.1:8080/auth/saml/metadata' });
    const f = await createAuthFixture('sqlite', { CS_SAML_IDP_METADATA_URL: `${idp.baseUrl}/metadata`, CS_SAML_IDP_SSO_URL: '', CS_SAML_IDP_CERTS: '', CS_SAML_IDP_ENTITY_ID: '' }, { idp });
    try {
      expect(f.config.auth.saml.idp.metadataUrl).toBe(`${idp.baseUrl}/metadata`);
      await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      await expect(signInForToken(f, { nameId: 'alice@example.com' })).resolves.toMatch(/^ey/);
      // The Issuer is checked against the entity ID the metadata names, not skipped.
      const started = await startSignIn(f);
      const res = await postToAcs(f, await idpAnswer(f, started, { nameId: 'alice@example.com' }, { issuer: 'https://evil-idp.example.com' }));
      expect(res.status).toBe(403);
      expect((await auditOf(f, 'saml.login'))[0]).toMatchObject({ outcome: 'refused' });
      expect((await auditOf(f, 'saml.login'))[0].detail).toMatch(/issuer/i);
    } finally {
      await f.cleanupAll();
      await idp.close();
    }
  });
});
