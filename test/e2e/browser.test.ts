import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { loadConfig } from '../../server/config';
import { boot } from '../../server/boot';
import { createApp } from '../../server/http/app';
import { createSqlite, type TestDatabase } from '../support/databases';
import { listen, staticFiles, type Listening } from '../support/http-server';
import { TestIdp } from '../support/saml-idp';

/**
 * The whole thing in a real browser: headless Chromium runs the example web client
 * (examples/web-client) on its own origin. It signs alice in through Crypto Server at a SAML IdP
 * (the test IdP, an auto-posting HTML form like a real one), gets an access token, and fetches
 * her keys from Crypto Server's other origin. The same page on an origin that is not on the CORS
 * allow-list is blocked by the browser itself.
 */
jest.setTimeout(120_000);

describe('browser end to end (headless Chromium)', () => {
  let db: TestDatabase;
  let crypto: Listening;
  let webApp: Listening;
  let strangerApp: Listening;
  let idp: TestIdp;
  let browser: BrowserContext;
  let profileDir: string;
  let close: () => Promise<void>;
  let deps: Awaited<ReturnType<typeof boot>>;
  let aliceId: string;

  beforeAll(async () => {
    // Crypto Server's origin must be known before its config: listen first, attach the app after.
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
      res.statusCode = 503;
      res.end();
    };
    crypto = await listen((req, res) => handler(req, res), '127.0.0.1');
    const root = resolve(__dirname, '../../examples/web-client');
    const appConfig = JSON.stringify({ cryptoServerUrl: crypto.url, clientId: 'web', exposeTokenForTests: true });
    webApp = await listen(staticFiles(root, { 'config.json': appConfig }), 'localhost');
    // A second origin for the same page, not on the allow-list.
    strangerApp = await listen(staticFiles(root, { 'config.json': appConfig }), '127.0.0.1');
    idp = await TestIdp.start({ spEntityId: `${crypto.url}/auth/saml/metadata` });

    db = await createSqlite();
    const webOrigin = webApp.url.replace('127.0.0.1', 'localhost');
    const config = loadConfig({
      CS_DATABASE_URL: db.url,
      CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'),
      CS_LOG_LEVEL: 'silent',
      CS_PUBLIC_URL: crypto.url,
      CS_SAML_IDP_SSO_URL: idp.ssoUrl,
      CS_SAML_IDP_CERTS: idp.cert,
      CS_SAML_IDP_ENTITY_ID: idp.entityId,
      CS_CORS_ORIGINS: webOrigin,
      CS_CLIENTS: JSON.stringify([{ clientId: 'web', redirectUris: [`${webOrigin}/`, `${strangerApp.url}/`] }]),
    });
    deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    handler = createApp(deps);
    close = deps.close;
    aliceId = (await deps.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' })).id;
    await deps.keys.provisionGroup({ displayName: 'Finance', memberIds: [aliceId] }, { actor: 'test' });

    profileDir = mkdtempSync(join(tmpdir(), 'cs-chromium-'));
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    await Promise.all([crypto?.close(), webApp?.close(), strangerApp?.close(), idp?.close()]);
    await close?.();
    await db?.drop();
  });

  async function signIn(page: Page, origin: string): Promise<void> {
    idp.loginAs = { nameId: 'alice@example.com' };
    await page.goto(`${origin}/`);
    await page.click('#sign-in');
    // → Crypto Server /oauth/authorize → IdP /sso → auto-posted form → ACS → back here with a code.
    await page.waitForFunction(() => ['ready', 'error'].includes(document.getElementById('status')!.dataset.state ?? ''), undefined, { timeout: 30_000 });
  }

  test('the example web app signs alice in via SAML and loads her keys cross-origin', async () => {
    const page = await browser.newPage();
    try {
      const webOrigin = webApp.url.replace('127.0.0.1', 'localhost');
      await signIn(page, webOrigin);
      expect(await page.textContent('#status')).toBe('Signed in; keys loaded.');
      expect(await page.textContent('#user-id')).toBe(aliceId);
      expect(await page.textContent('#groups')).toBe('Finance');
      expect(await page.getAttribute('#private-key-check', 'data-ok')).toBe('true');
      expect(page.url()).toBe(`${webOrigin}/`); // the one-time code was dropped from the address bar
      expect(idp.received.length).toBeGreaterThan(0);

      const events = await deps.store.repos.audit.recent(50);
      expect(events.find((e) => e.action === 'saml.login')).toMatchObject({ outcome: 'success', targetId: aliceId });
      expect(events.find((e) => e.action === 'key-bundle.get')).toMatchObject({ outcome: 'success', actor: `user:${aliceId}` });
    } finally {
      await page.close();
    }
  });

  test('from an origin not on the allow-list, the browser blocks the token and key API calls', async () => {
    const page = await browser.newPage();
    try {
      // The redirect URI is registered, so sign-in itself (navigations) completes — but the page
      // cannot read the token endpoint's answer, so it never gets a token.
      await signIn(page, strangerApp.url);
      expect(await page.getAttribute('#status', 'data-state')).toBe('error');
      expect(await page.textContent('#status')).toMatch(/Failed to fetch/);
      expect(await page.evaluate(() => (window as unknown as { accessToken?: string }).accessToken)).toBeUndefined();
      // The token request itself was refused by the server too (Origin not allowed), and audited.
      const refused = (await deps.store.repos.audit.recent(20, { action: 'oauth.token' }))[0];
      expect(refused).toMatchObject({ outcome: 'refused' });
      expect(JSON.parse(refused.detail!).reason).toMatch(/origin .* not allowed/);

      // Even holding a valid token (taken from the allowed app), a script on this origin cannot
      // call the key API: the preflight gets no CORS headers, so Chromium never sends the request.
      const allowed = await browser.newPage();
      await signIn(allowed, webApp.url.replace('127.0.0.1', 'localhost'));
      const token = await allowed.evaluate(() => (window as unknown as { accessToken: string }).accessToken);
      await allowed.close();
      const before = (await deps.store.repos.audit.recent(500, { action: 'key-bundle.get' })).length;
      const outcome = await page.evaluate(
        async ([url, t]) => {
          try {
            const res = await fetch(`${url}/api/keys/me`, { headers: { Authorization: `Bearer ${t}` } });
            return `read ${res.status}`;
          } catch (err) {
            return `blocked: ${(err as Error).name}`;
          }
        },
        [crypto.url, token] as const,
      );
      expect(outcome).toBe('blocked: TypeError');
      expect((await deps.store.repos.audit.recent(500, { action: 'key-bundle.get' })).length).toBe(before);
    } finally {
      await page.close();
    }
  });
});
