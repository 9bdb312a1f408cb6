import { loadConfig } from '../../server/config';
import { ConfigError } from '../../server/errors';

/** The console's settings: parsed once, bad values named with how to fix them. */
describe('console settings', () => {
  const base = { CS_LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') };
  const refused = (env: Record<string, string>): string => {
    try {
      loadConfig({ ...base, ...env });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  test('defaults: nobody is an administrator, sessions of 30 minutes', () => {
    expect(loadConfig(base).admin).toEqual({ group: undefined, samlAttribute: undefined, sessionMinutes: 30 });
  });

  test('CS_ADMIN_SAML_ATTRIBUTE splits at the first "=" (attribute names are often URIs)', () => {
    const c = loadConfig({ ...base, CS_ADMIN_SAML_ATTRIBUTE: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role=Crypto=Admin', CS_ADMIN_GROUP: 'Key Admins' });
    expect(c.admin.samlAttribute).toEqual({ name: 'http://schemas.microsoft.com/ws/2008/06/identity/claims/role', value: 'Crypto=Admin' });
    expect(c.admin.group).toBe('Key Admins');
  });

  test.each(['role', '=Admin', 'role=', ' role=Admin'])('CS_ADMIN_SAML_ATTRIBUTE=%p is refused, naming the setting and the form', (v) => {
    expect(refused({ CS_ADMIN_SAML_ATTRIBUTE: v })).toMatch(/CS_ADMIN_SAML_ATTRIBUTE: must be name=value/);
  });

  test.each([['4', /at least 5/], ['721', /at most 720/], ['1.5', /whole number/], ['x', /CS_ADMIN_SESSION_MINUTES/]])('CS_ADMIN_SESSION_MINUTES=%p is refused', (v, why) => {
    const message = refused({ CS_ADMIN_SESSION_MINUTES: v });
    expect(message).toMatch(/CS_ADMIN_SESSION_MINUTES/);
    expect(message).toMatch(why);
  });

  test('a misspelt console setting is named with the right one', () => {
    expect(refused({ CS_ADMIN_GRUOP: 'x' })).toMatch(/CS_ADMIN_GRUOP: not a known setting; did you mean CS_ADMIN_GROUP\?/);
  });
});
