import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import { makeKeyAndCert } from '../support/certs';
import { VaultEmulator } from '../emulators/vault';
import { createAuthServices } from '../../server/auth';
import { createApp } from '../../server/http/app';
import { mintSession, SESSION_COOKIE } from '../../admin/session';

/**
 * A widget whose data fails says "unavailable" (or the component "failing") and the page still
 * renders: a KMS that is down or hung, a table the console cannot read.
 */
jest.setTimeout(120_000);

describe.each(testDatabaseNames())('console with failing parts on %s', (kind) => {
  let ctx: TestContext;
  let vault: VaultEmulator;
  let adminId: string;

  beforeAll(async () => {
    vault = await new VaultEmulator().start();
    vault.addKey('kek');
    ctx = await createTestContext(kind, {
      CS_PUBLIC_URL: 'http://console.test',
      CS_SAML_IDP_SSO_URL: 'https://idp.test/sso',
      CS_SAML_IDP_CERTS: makeKeyAndCert('idp.test').cert,
      CS_ADMIN_GROUP: 'Admins',
      CS_KEK_URI: `vault-transit://${vault.hostPort}/transit/keys/kek`,
      CS_VAULT_TOKEN: 'root-test-token',
      CS_VAULT_SCHEME: 'http',
    });
    adminId = (await ctx.keys.provisionUser({ userName: 'admin@example.com' }, { actor: 'test' })).id;
    await ctx.keys.provisionGroup({ displayName: 'Admins', memberIds: [adminId] }, { actor: 'test' });
  });
  afterAll(async () => {
    vault.faults.reset();
    await ctx?.cleanup();
    await vault?.close();
  });

  /** A fresh app (its KEK checks are not shared with the previous one) and an admin session for it. */
  async function signedIn() {
    const auth = createAuthServices(ctx);
    const app = createApp(ctx, auth);
    // Minted while the KMS still answers: the signing key's first creation needs it.
    const { token } = await mintSession(auth.signingKeys, { issuer: ctx.config.auth.tokens.issuer, audience: 'http://console.test/admin', minutes: 30 }, { userId: adminId, byAttribute: false }, { actor: 'test' });
    return (path: string) => request(app).get(path).set('Cookie', `${SESSION_COOKIE}=${token}`);
  }

  test('KMS down: Status renders, the KEK row says failing, the database row ok', async () => {
    const get = await signedIn();
    vault.faults.down = true;
    try {
      const res = await get('/admin/status').expect(200);
      expect(res.text).toMatch(/vault-transit:[^<]*<\/td><td><span class="missing">failing/);
      expect(res.text).toMatch(/database \([^)]+\)<\/td><td><span class="ok">ok/);
      const start = await get('/admin/').expect(200);
      expect(start.text).toMatch(/Key-encryption key<\/strong> — [^<]*failing/);
    } finally {
      vault.faults.reset();
    }
  });

  test('KMS hung: Status still answers, after the check timeout, with the KEK failing', async () => {
    const get = await signedIn();
    vault.faults.delayNext = 100;
    vault.faults.delayMs = 60_000;
    try {
      const started = Date.now();
      const res = await get('/admin/status').expect(200);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(res.text).toMatch(/vault-transit:[^<]*<\/td><td><span class="missing">failing/);
    } finally {
      vault.faults.reset();
    }
  });

  test('an unreadable table: Provisioning renders, the outbox widget says unavailable, the rest is there', async () => {
    const get = await signedIn();
    await ctx.store.repos.manager.query('ALTER TABLE scim_outbox RENAME TO scim_outbox_away');
    try {
      const res = await get('/admin/provisioning').expect(200);
      expect(res.text).toContain('Outbox: unavailable');
      expect(res.text).toContain('SCIM activity per token');
      expect(res.text).not.toContain('SCIM activity: unavailable');
    } finally {
      await ctx.store.repos.manager.query('ALTER TABLE scim_outbox_away RENAME TO scim_outbox');
    }
    const again = await get('/admin/provisioning').expect(200);
    expect(again.text).not.toContain('unavailable');
  });
});
