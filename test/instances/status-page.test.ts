import pino from 'pino';
import request from 'supertest';
import type { Express } from 'express';
import type { TestContext } from '../support/context';
import { testDatabaseNames } from '../support/databases';
import type { AuthServices } from '../../server/auth';
import { mintSession, SESSION_COOKIE } from '../../admin/session';
import { startHeartbeat } from '../../server/instances/heartbeat';
import { InstancesRepository, INSTANCES_TABLE } from '../../server/instances/repository';
import { packageVersion } from '../../server/instances/version';
import { RECENT_MS } from '../../server/instances/summary';
import { consoleContext, CONSOLE_PUBLIC_URL } from '../admin/support';

/**
 * The console's Status page lists the instances seen in the last 5 minutes (host, process,
 * version, up since, last seen), counts those seen in the last day but not recently, highlights
 * differing versions, and shows "Instances: unavailable" (the rest of the page intact) when the
 * table cannot be read. Only an administrator sees it.
 */
jest.setTimeout(120_000);

const PUBLIC_URL = CONSOLE_PUBLIC_URL;

describe.each(testDatabaseNames())('Status page instances on %s', (kind) => {
  let ctx: TestContext;
  let auth: AuthServices;
  let app: Express;
  let adminId: string;
  let otherId: string;
  const cookie = async (userId: string) =>
    `${SESSION_COOKIE}=${(await mintSession(auth.signingKeys, { issuer: ctx.config.auth.tokens.issuer, audience: `${PUBLIC_URL}/admin`, minutes: 30 }, { userId, byAttribute: false }, { actor: 'test' })).token}`;

  beforeAll(async () => {
    ({ ctx, auth, app } = await consoleContext(kind));
    adminId = (await ctx.keys.provisionUser({ userName: 'root@example.com' }, { actor: 'test' })).id;
    otherId = (await ctx.keys.provisionUser({ userName: 'someone@example.com' }, { actor: 'test' })).id;
    await ctx.keys.provisionGroup({ displayName: 'Key Admins', memberIds: [adminId] }, { actor: 'test' });
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('lists recent instances, counts stale ones, highlights a version mismatch; a stopped one disappears', async () => {
    const log = pino({ level: 'silent' });
    const a = startHeartbeat(ctx.store, log, { intervalMs: 3_600_000 });
    const b = startHeartbeat(ctx.store, log, { intervalMs: 3_600_000 });
    await Promise.all([a.beat(), b.beat()]);
    const admin = await cookie(adminId);
    const page = async () => (await request(app).get('/admin/status').set('Cookie', admin).expect(200)).text;
    const section = (text: string) => text.slice(text.indexOf('Instances seen in the last 5 minutes'));

    let s = section(await page());
    expect(s).toContain('<th>host</th><th>process</th><th>version</th><th>up since</th><th>last seen</th>');
    expect(s.match(new RegExp(`<td>pid ${process.pid}</td>`, 'g'))).toHaveLength(2);
    expect(s).toContain(`<td>${packageVersion()}</td>`);
    expect(s).toContain('2 seen recently; 0 more seen in the last 24 h');
    expect(s).not.toContain('version-mismatch');

    // Another replica mid-upgrade, and one that crashed ten minutes ago.
    const now = Date.now();
    const repo = new InstancesRepository(ctx.store);
    const at = (ms: number) => new Date(now - ms).toISOString();
    await repo.beat({ id: 'b3c1c2a4-0000-4000-8000-000000000001', hostname: 'replica-b<script>', pid: 7, worker: 3, version: '0.2.0', started_at: at(60_000), seen_at: at(1_000) });
    await repo.beat({ id: 'b3c1c2a4-0000-4000-8000-000000000002', hostname: 'replica-crashed', pid: 8, worker: null, version: '0.0.9', started_at: at(3_600_000), seen_at: at(2 * RECENT_MS) });
    s = section(await page());
    expect(s).toContain('<td>replica-b&lt;script&gt;</td><td>pid 7, worker 3</td><td><span class="unknown">0.2.0</span></td>');
    expect(s).toContain(`id="version-mismatch">Versions differ across instances (${[packageVersion(), '0.2.0'].sort().join(', ')})`);
    expect(s).not.toContain('replica-crashed');
    expect(s).not.toContain('0.0.9');
    expect(s).toContain('3 seen recently; 1 more seen in the last 24 h but not in the last 5 minutes');

    await b.stop();
    await repo.remove('b3c1c2a4-0000-4000-8000-000000000001');
    s = section(await page());
    expect(s.match(new RegExp(`<td>pid ${process.pid}</td>`, 'g'))).toHaveLength(1);
    expect(s).toContain('1 seen recently; 1 more');
    expect(s).not.toContain('version-mismatch');

    // Not for a non-administrator.
    const refused = await request(app).get('/admin/status').set('Cookie', await cookie(otherId)).expect(403);
    expect(refused.text).not.toContain('replica-crashed');
    expect(refused.text).not.toContain('Instances seen');
    await request(app).get('/admin/status').expect(303);
    await a.stop();
  });

  test('an unreadable table makes only the instances widget "unavailable"', async () => {
    const admin = await cookie(adminId);
    const renamed = `${INSTANCES_TABLE}_gone`;
    await ctx.store.dataSource.query(`ALTER TABLE ${INSTANCES_TABLE} RENAME TO ${renamed}`);
    try {
      const res = await request(app).get('/admin/status').set('Cookie', admin).expect(200);
      expect(res.text).toContain('<p class="unavailable" data-widget-state="unavailable">Instances: unavailable</p>');
      expect(res.text).toContain('<h2>Health</h2>');
      expect(res.text).toContain('this process');
      expect(res.text).not.toMatch(/\n\s+at |QueryFailedError|SQLITE_ERROR/);
    } finally {
      await ctx.store.dataSource.query(`ALTER TABLE ${renamed} RENAME TO ${INSTANCES_TABLE}`);
    }
  });
});
