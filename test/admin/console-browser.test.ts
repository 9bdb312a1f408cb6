import { mkdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { TokenService } from '../../scim/tokens';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { ownWrites } from '../../server/repositories/runner';
import { listen, type Listening } from '../support/http-server';
import { TestIdp } from '../support/saml-idp';
import { createTestContext, type TestContext } from '../support/context';
import { VaultEmulator } from '../emulators/vault';
import { latencyHistory } from '../../admin/latency-history';

/**
 * The console in headless Chromium: an administrator (member of the configured SCIM group) signs
 * in through the test SAML IdP, walks every page, sees charts drawn with data, creates a SCIM
 * token (shown once), uses it, revokes it, and /scim/v2 then refuses it. A signed-in person who is
 * not an administrator gets the 403 page. A screenshot of each page goes to test-output/console/.
 */
jest.setTimeout(180_000);

const SHOTS = resolve(__dirname, '../../test-output/console');
const SCIM_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

describe('administrator console in a real browser', () => {
  let crypto: Listening;
  let idp: TestIdp;
  let vault: VaultEmulator;
  let browser: Browser;
  let deps: TestContext;
  let adminId: string;
  let scimToken: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
      res.statusCode = 503;
      res.end();
    };
    crypto = await listen((req, res) => handler(req, res), '127.0.0.1');
    idp = await TestIdp.start({ spEntityId: `${crypto.url}/auth/saml/metadata` });
    // The KEK in a Vault (emulated): its adapter reports call latency, which the Status chart draws.
    vault = await new VaultEmulator().start();
    vault.addKey('kek');
    deps = await createTestContext('sqlite', {
      CS_KEK_URI: `vault-transit://${vault.hostPort}/transit/keys/kek`,
      CS_VAULT_TOKEN: 'root-test-token',
      CS_VAULT_SCHEME: 'http',
      CS_PUBLIC_URL: crypto.url,
      CS_SAML_IDP_SSO_URL: idp.ssoUrl,
      CS_SAML_IDP_CERTS: idp.cert,
      CS_SAML_IDP_ENTITY_ID: idp.entityId,
      CS_CORS_ORIGINS: 'https://app.example.com',
      CS_CLIENTS: JSON.stringify([{ clientId: 'web', redirectUris: ['https://app.example.com/'] }]),
      CS_ADMIN_GROUP: 'Crypto Server Admins',
    });
    handler = deps.app;
    adminId = (await deps.keys.provisionUser({ userName: 'ada@example.com' }, { actor: 'test' })).id;
    await deps.keys.provisionUser({ userName: 'ben@example.com' }, { actor: 'test' });
    await deps.keys.provisionGroup({ displayName: 'Crypto Server Admins', memberIds: [adminId] }, { actor: 'test' });

    // Provisioning activity by a SCIM token the IdP would use: some changes, one refusal.
    const tokens = new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m)));
    scimToken = (await tokens.create({ name: 'Entra ID', scope: 'scim' })).token;
    // Each creation wraps keys with the KEK; sampling between them (as the 10 s timer would) draws the latency over time.
    for (const name of ['carol', 'dave', 'erin', 'frank', 'grace']) {
      const res = await scim('POST', '/Users', scimToken, { schemas: [SCIM_USER], userName: `${name}@example.com` });
      expect(res.status).toBe(201);
      await latencyHistory.sample();
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await scim('POST', '/Users', scimToken, { schemas: [SCIM_USER], userName: 'carol@example.com' })).status).toBe(409);
    expect((await scim('GET', '/Users', 'cst_000000000000000000000000.not-a-valid-secret')).status).toBe(401); // audited as anonymous

    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([crypto?.close(), idp?.close(), vault?.close()]);
    await deps?.cleanup();
  });

  function scim(method: string, path: string, token: string, body?: unknown): Promise<Response> {
    return fetch(`${crypto.url}/scim/v2${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/scim+json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async function signIn(context: BrowserContext, nameId: string): Promise<Page> {
    idp.loginAs = { nameId };
    const page = await context.newPage();
    page.on('dialog', (d) => void d.accept());
    // / → /admin/ → /admin/login → IdP → auto-posted form → ACS → /admin/auth/complete → /admin/
    await page.goto(`${crypto.url}/`);
    await page.waitForLoadState('networkidle');
    return page;
  }

  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  test('an administrator signs in, walks every page, creates and revokes a token', async () => {
    // Someone the IdP knows but SCIM never provisioned: refused at the ACS, with the reason audited.
    const strangers = await browser.newContext();
    const refusedPage = await signIn(strangers, 'nobody@example.com');
    expect(await refusedPage.textContent('#reason')).toContain('not provisioned');
    await strangers.close();

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await signIn(context, 'ada@example.com');
      expect(page.url()).toBe(`${crypto.url}/admin/`);
      expect(await page.textContent('h1')).toBe('Start');
      expect(await page.textContent('.signout span')).toBe('ada@example.com');
      // The stylesheet loaded under the CSP (no inline styles or scripts): the nav is styled.
      expect(await page.evaluate(() => getComputedStyle(document.querySelector('header')!).display)).toBe('flex');
      expect(await page.textContent('#acs-url')).toBe(`${crypto.url}/auth/saml/acs`);
      expect(await page.getAttribute('.checklist li:has-text("SCIM token")', 'data-ok')).toBe('true');
      expect(await page.getAttribute('.checklist li:has-text("Identity provider")', 'data-ok')).toBe('true');
      await shot(page, 'start');

      // The session cookie: HttpOnly, SameSite=Strict, path /admin.
      const session = (await context.cookies()).find((c) => c.name === 'cs_admin');
      expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });

      await page.click('nav >> text=Status');
      expect(await page.textContent('h1')).toBe('Status');
      expect(await page.textContent('main')).toMatch(/database \(better-sqlite3\)\s*ok/);
      expect(await page.textContent('main')).toMatch(/vault-transit:\/\/\S+\s*ok/);
      expect(await page.locator('figure.chart svg circle.point').count()).toBeGreaterThanOrEqual(5);
      expect(await page.textContent('figure.chart .legend')).toContain('vault-transit');
      expect(await page.textContent('main')).toMatch(/kid \S+, created/);
      await shot(page, 'status');

      await page.click('nav >> text=Provisioning');
      const entra = page.locator('table tr:has-text("Entra ID")').first();
      expect(await entra.locator('td').nth(3).textContent()).toBe('5'); // five users created
      expect(Number(await entra.locator('td').nth(4).textContent())).toBeGreaterThanOrEqual(1); // the 409 below, audited as scim.refused
      expect(await page.textContent('main')).toContain('409 uniqueness');
      expect(await page.textContent('main')).toMatch(/anonymous from \S*127\.0\.0\.1/);
      expect(await page.content()).not.toContain('not-a-valid-secret');
      expect(await page.locator('figure.chart svg circle.point').count()).toBeGreaterThan(0);
      await shot(page, 'provisioning');

      await page.click('nav >> text=Sign-ins');
      const firstSignIn = page.locator('table').last().locator('tbody tr:has-text("admin.login")').first();
      expect(await firstSignIn.textContent()).toContain('success');
      const refusal = page.locator('table').first().locator('tbody tr:has-text("nobody@example.com")').first();
      expect(await refusal.textContent()).toContain('no provisioned user matches');
      await shot(page, 'sign-ins');

      await page.click('nav >> text=Audit');
      await page.fill('input[name=action]', 'user.provision');
      await page.click('form.filters button[type=submit]');
      expect(page.url()).toContain('action=user.provision');
      const rows = page.locator('main table tbody tr');
      expect(await rows.count()).toBeGreaterThanOrEqual(7); // ada, ben and five by SCIM
      for (const cell of await rows.locator('td:nth-child(4)').allTextContents()) expect(cell).toBe('user.provision');
      const exportHref = await page.getAttribute('#audit-export', 'href');
      expect(exportHref).toBe('/admin/audit/export?action=user.provision');
      const exported = await page.evaluate(async (href) => (await fetch(href)).text(), exportHref!);
      const lines = exported.trim().split('\n').map((l) => JSON.parse(l) as { action: string });
      expect(lines.length).toBe(await rows.count());
      expect(new Set(lines.map((l) => l.action))).toEqual(new Set(['user.provision']));
      await shot(page, 'audit');

      await page.click('nav >> text=Tokens');
      await page.fill('form.create input[name=name]', 'Okta');
      await page.selectOption('form.create select[name=scope]', 'scim');
      await page.click('form.create button[type=submit]');
      const created = (await page.textContent('#new-token'))!.trim();
      expect(created).toMatch(/^cst_[0-9a-f]{24}\.[A-Za-z0-9_-]{43}$/);
      await shot(page, 'tokens-created');
      expect(page.url()).toMatch(/\/admin\/tokens\/created\/[A-Za-z0-9_-]{24}$/); // Post/Redirect/Get
      expect((await scim('GET', '/Users?count=1', created)).status).toBe(200);
      // A reload asks again for the page, not the POST: no second token, and the secret is gone.
      await page.reload();
      expect(await page.textContent('#already-shown')).toContain('already shown');
      expect(await page.content()).not.toContain(created);
      expect((await new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m))).list()).filter((t) => t.name === 'Okta')).toHaveLength(1);

      // Shown once: the list page never shows it again.
      await page.click('nav >> text=Tokens');
      expect(await page.content()).not.toContain(created);
      const id = created.slice(4, 28);
      await page.click(`button[data-revoke="${id}"]`);
      await page.waitForURL(`${crypto.url}/admin/tokens`);
      expect(await page.textContent(`table tr:has-text("${id}")`)).toContain('revoked');
      expect((await scim('GET', '/Users?count=1', created)).status).toBe(401);
      expect((await scim('GET', '/Users?count=1', scimToken)).status).toBe(200); // the other token is untouched
      await shot(page, 'tokens');

      const events = await deps.store.repos.audit.recent(200);
      expect(events.find((e) => e.action === 'admin.token.create')).toMatchObject({ outcome: 'success', actor: `user:${adminId}`, targetId: id });
      expect(events.find((e) => e.action === 'admin.token.revoke')).toMatchObject({ outcome: 'success', actor: `user:${adminId}`, targetId: id });

      await page.click('.signout button');
      expect(await page.textContent('h1')).toBe('Signed out');
      expect((await context.cookies()).find((c) => c.name === 'cs_admin')).toBeUndefined();
    } finally {
      await context.close();
    }
  });

  test('a fresh installation (no SAML yet) opens on the setup checklist without sign-in', async () => {
    const fresh = await createTestContext('sqlite');
    const server = await listen(fresh.app, '127.0.0.1');
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    try {
      const page = await context.newPage();
      await page.goto(`${server.url}/`);
      expect(page.url()).toBe(`${server.url}/admin/`);
      expect(await page.textContent('h1')).toBe('Set up Crypto Server');
      expect(await page.getAttribute('.checklist li:has-text("Identity provider")', 'data-ok')).toBe('false');
      expect(await page.textContent('.checklist li:has-text("Identity provider") .fix')).toContain('CS_SAML_IDP_METADATA_URL');
      expect(await page.getAttribute('.checklist li:has-text("Key-encryption key")', 'data-ok')).toBe('true');
      expect(await page.locator('nav').count()).toBe(0);
      await shot(page, 'setup');
      const status = await page.goto(`${server.url}/admin/status`);
      expect(status?.status()).toBe(401);
    } finally {
      await context.close();
      await server.close();
      await fresh.cleanup();
    }
  });

  test('a signed-in person who is not an administrator gets the 403 page', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 600 } });
    try {
      const page = await signIn(context, 'ben@example.com');
      expect(await page.textContent('h1')).toBe('Not an administrator');
      expect(await page.textContent('#reason')).toContain('CS_ADMIN_GROUP');
      expect((await context.cookies()).find((c) => c.name === 'cs_admin')).toBeUndefined();
      // Any page sends them through sign-in again, which ends on the same refusal, never the page.
      await page.goto(`${crypto.url}/admin/tokens`);
      await page.waitForLoadState('networkidle');
      expect(page.url().startsWith(`${crypto.url}/admin/auth/complete?code=`)).toBe(true);
      expect(await page.textContent('h1')).toBe('Not an administrator');
      await shot(page, 'not-admin');
      const refused = (await deps.store.repos.audit.recent(50, { action: 'admin.login', outcome: 'refused' }))[0];
      expect(JSON.parse(refused.detail!).reason).toMatch(/not a member/);
    } finally {
      await context.close();
    }
  });
});
