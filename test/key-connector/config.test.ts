import { loadConfig } from '../../server/config';

/** CS_KEY_CONNECTOR_*: off by default; the issuer must be https except on loopback. */
describe('Key Connector settings', () => {
  const base = { CS_DATABASE_URL: 'sqlite::memory:', CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };

  test('off unless the issuer is set; defaults', () => {
    expect(loadConfig(base).keyConnector).toBeUndefined();
    expect(loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'https://vault.example.com/identity/' }).keyConnector).toEqual({
      issuer: 'https://vault.example.com/identity',
      webVaultOrigin: undefined,
      path: '/key-connector',
      refuseDeactivated: false,
    });
  });

  test('web vault URL becomes its exact origin; a custom path', () => {
    const c = loadConfig({ ...base, CS_KEY_CONNECTOR_ISSUER: 'http://127.0.0.1:8080', CS_KEY_CONNECTOR_WEB_VAULT_URL: 'https://Vault.Example.com:443/#/login', CS_KEY_CONNECTOR_PATH: '/kc/v1' });
    expect(c.keyConnector).toEqual({ issuer: 'http://127.0.0.1:8080', webVaultOrigin: 'https://vault.example.com', path: '/kc/v1', refuseDeactivated: false });
  });

  test.each([
    ['CS_KEY_CONNECTOR_ISSUER', { CS_KEY_CONNECTOR_ISSUER: 'http://identity.example.com' }, /CS_KEY_CONNECTOR_ISSUER: must be an https:\/\/ URL/],
    ['CS_KEY_CONNECTOR_ISSUER', { CS_KEY_CONNECTOR_ISSUER: 'not a url' }, /CS_KEY_CONNECTOR_ISSUER/],
    ['CS_KEY_CONNECTOR_PATH', { CS_KEY_CONNECTOR_ISSUER: 'https://id.example.com', CS_KEY_CONNECTOR_PATH: 'key-connector/' }, /CS_KEY_CONNECTOR_PATH: must be a path/],
    ['CS_KEY_CONNECTOR_WEB_VAULT_URL', { CS_KEY_CONNECTOR_WEB_VAULT_URL: 'https://vault.example.com' }, /set CS_KEY_CONNECTOR_ISSUER too/],
  ])('%s refused with a message naming it', (_name, env, message) => {
    expect(() => loadConfig({ ...base, ...env })).toThrow(message);
  });
});
