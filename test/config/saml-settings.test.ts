import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { describeSignIn } from '../../server/config/auth';
import { ConfigError } from '../../server/errors';
import { serve } from '../../server/cli/serve';
import { TestIdp } from '../support/saml-idp';

/**
 * SAML settings an administrator can get wrong without noticing: two metadata sources, a NameID
 * format that cannot identify anyone, and no word at start-up whether sign-in is configured.
 */
describe('SAML settings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-samlcfg-'));
  let idp: TestIdp;
  let metadataFile: string;
  beforeAll(async () => {
    idp = await TestIdp.start({ spEntityId: 'https://crypto.example.com/auth/saml/metadata' });
    metadataFile = join(dir, 'idp.xml');
    writeFileSync(metadataFile, idp.metadata());
  });
  afterAll(async () => {
    await idp.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const base = { CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64'), CS_PUBLIC_URL: 'https://crypto.example.com' };
  const configError = (env: Record<string, string>): string => {
    try {
      loadConfig({ ...base, ...env });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error('expected a ConfigError');
  };

  test('metadata URL and metadata file together are refused, naming both settings', () => {
    const message = configError({ CS_SAML_IDP_METADATA_URL: 'https://idp.example.com/metadata', CS_SAML_IDP_METADATA_FILE: metadataFile });
    expect(message).toMatch(/CS_SAML_IDP_METADATA_URL and CS_SAML_IDP_METADATA_FILE: set only one/);
    // Each alone is accepted.
    expect(loadConfig({ ...base, CS_SAML_IDP_METADATA_URL: 'https://idp.example.com/metadata' }).auth.saml.enabled).toBe(true);
    expect(loadConfig({ ...base, CS_SAML_IDP_METADATA_FILE: metadataFile }).auth.saml.enabled).toBe(true);
  });

  test.each([
    [{}, 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress'],
    [{ CS_SAML_USER_ATTRIBUTE: 'email' }, 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
    [{ CS_SAML_USER_ATTRIBUTE: 'externalId' }, 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
    [{ CS_SAML_NAMEID_FORMAT: 'persistent' }, 'urn:oasis:names:tc:SAML:2.0:nameid-format:persistent'],
    [{ CS_SAML_USER_ATTRIBUTE: 'userName', CS_SAML_NAMEID_FORMAT: 'transient' }, 'urn:oasis:names:tc:SAML:2.0:nameid-format:transient'],
  ])('NameID format for %j is %s', (env, format) => {
    expect(loadConfig({ ...base, ...env }).auth.saml.nameIdFormat).toBe(format);
  });

  test('a transient NameID cannot identify users matched by NameID; an unknown format names the setting', () => {
    expect(configError({ CS_SAML_NAMEID_FORMAT: 'transient' })).toMatch(/^CS_SAML_NAMEID_FORMAT: transient NameIDs change at every sign-in/);
    expect(configError({ CS_SAML_NAMEID_FORMAT: 'kerberos' })).toMatch(/CS_SAML_NAMEID_FORMAT/);
  });

  test('the start-up line says whether SAML is configured, and for which IdP', () => {
    expect(describeSignIn(loadConfig(base).auth)).toMatch(/^SAML sign-in: not configured \(set CS_SAML_IDP_METADATA_URL or CS_SAML_IDP_METADATA_FILE/);
    const byFile = describeSignIn(loadConfig({ ...base, CS_SAML_IDP_METADATA_FILE: metadataFile }).auth);
    expect(byFile).toContain(`SAML sign-in: IdP ${idp.entityId} at ${idp.ssoUrl}`);
    expect(byFile).toContain('SP entity ID https://crypto.example.com/auth/saml/metadata');
    const byUrl = describeSignIn(loadConfig({ ...base, CS_SAML_IDP_METADATA_URL: 'https://idp.example.com/metadata' }).auth);
    expect(byUrl).toContain('IdP metadata from https://idp.example.com/metadata (entity ID read at the first sign-in)');
    // Okta and ADFS metadata URLs can carry a token in the query, and a URL can carry credentials.
    const secret = describeSignIn(loadConfig({ ...base, CS_SAML_IDP_METADATA_URL: 'https://user:pw@idp.example.com/app/metadata?token=s3cr3t' }).auth);
    expect(secret).toContain('IdP metadata from https://idp.example.com/app/metadata?… (');
    expect(secret).not.toMatch(/s3cr3t|pw@|user:/);
  });

  test('`serve` prints the SAML line after the listening line', async () => {
    for (const [env, expected] of [
      [{}, /^SAML sign-in: not configured/],
      [{ CS_SAML_IDP_METADATA_FILE: metadataFile }, new RegExp(`^SAML sign-in: IdP ${idp.entityId.replace(/[.]/g, '\\.')} at `)],
    ] as const) {
      const lines: string[] = [];
      const data = mkdtempSync(join(dir, 'data-'));
      const running = await serve({ CS_DATA_DIR: data, CS_PORT: '0', CS_LOG_LEVEL: 'silent', ...env }, (l) => lines.push(l));
      try {
        const at = lines.findIndex((l) => /listening on/.test(l));
        expect(at).toBeGreaterThanOrEqual(0);
        expect(lines[at + 1]).toMatch(expected);
      } finally {
        await running.stop();
      }
    }
  });
});
