/** The SCIM repositories on all three databases: tokens, rate-limit counters, outbox claiming. */
import { ownWrites } from '../../server/repositories/runner';
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import type { Store } from '../../server/repositories/store';
import { DATABASE_FACTORIES, testDatabaseNames, type TestDatabase } from '../support/databases';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { rateLimitHits } from '../../server/repositories/rate-limit-hits';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { TokenService, parseToken, hashSecret } from '../../scim/tokens';
import { ApiTokenEntity } from '../../entities';

describe.each(testDatabaseNames())('SCIM repositories on %s', (kind) => {
  let db: TestDatabase;
  let store: Store;
  beforeAll(async () => {
    db = await DATABASE_FACTORIES[kind]();
    store = await openStore(loadConfig({ CS_DATABASE_URL: db.url, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' }));
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await db?.drop();
  });

  it('tokens: shown once, stored as a hash, listed, revoked by id or name, expiry honoured', async () => {
    const tokens = new TokenService(ownWrites(store, (m) => new ApiTokenRepository(m)));
    const { token, info } = await tokens.create({ name: 'Entra prod', scope: 'scim' });
    const parsed = parseToken(token)!;
    const row = await store.dataSource.manager.findOneBy(ApiTokenEntity, { id: info.id });
    expect(row?.secret_hash).toBe(hashSecret(parsed.secret));
    expect(JSON.stringify(row)).not.toContain(parsed.secret);
    expect(await tokens.authenticate(`Bearer ${token}`, 'scim')).toMatchObject({ id: info.id, name: 'Entra prod' });
    expect((await tokens.list()).map((t) => t.id)).toContain(info.id);
    expect(JSON.stringify(await tokens.list())).not.toContain('secret_hash');
    await expect(tokens.authenticate(`Bearer ${token}x`, 'scim')).rejects.toMatchObject({ status: 401 });
    await expect(tokens.create({ name: 'x', scope: 'admin' })).rejects.toMatchObject({ status: 400 });
    const second = await tokens.create({ name: 'Okta', scope: 'scim' });
    expect((await tokens.revoke('Okta')).revoked).toEqual([second.info.id]);
    await expect(tokens.authenticate(`Bearer ${second.token}`, 'scim')).rejects.toMatchObject({ status: 401 });
    expect((await tokens.revoke(info.id)).revoked).toEqual([info.id]);
    expect((await tokens.revoke(info.id)).revoked).toEqual([]);
    // Rotation leaves two live tokens with the IdP's name: revoking by that name must not guess.
    const old = await tokens.create({ name: 'Entra', scope: 'scim' });
    const rotated = await tokens.create({ name: 'Entra', scope: 'scim' });
    expect(await tokens.revoke('Entra')).toEqual({ revoked: [], ambiguous: expect.arrayContaining([old.info.id, rotated.info.id]) });
    await expect(tokens.authenticate(`Bearer ${rotated.token}`, 'scim')).resolves.toMatchObject({ id: rotated.info.id });
    expect((await tokens.revoke('Entra', { allWithName: true })).revoked.sort()).toEqual([old.info.id, rotated.info.id].sort());
    const expired = await tokens.create({ name: 'old', scope: 'scim', expiresAt: new Date(Date.now() - 1000) });
    await expect(tokens.authenticate(`Bearer ${expired.token}`, 'scim')).rejects.toMatchObject({ status: 401 });
  });

  it('rate-limit counters: concurrent hits are all counted, each with its own place', async () => {
    const hits = rateLimitHits(store);
    const results = await Promise.all(Array.from({ length: 20 }, () => hits.hit('scim:t1', 1000)));
    expect(results.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await hits.hit('scim:t1', 1001)).toBe(1);
    await hits.deleteOlderThan(1001);
    expect(await hits.hit('scim:t1', 1000)).toBe(1);
  });

  it('outbox: only the head event of a resource is due; a claim is taken once', async () => {
    const m = store.dataSource.manager;
    const repo = new OutboxRepository(m);
    const t0 = '2026-01-01T00:00:00.000Z';
    await repo.enqueue({ resourceType: 'User', resourceId: 'r1', eventType: 'user.created', data: { id: 'r1' } }, t0);
    await repo.enqueue({ resourceType: 'User', resourceId: 'r1', eventType: 'user.updated', data: { id: 'r1' } }, t0);
    await repo.enqueue({ resourceType: 'User', resourceId: 'r2', eventType: 'user.created', data: { id: 'r2' } }, t0);
    const due = await repo.due('2026-01-01T00:00:01.000Z', 10);
    expect(due.map((d) => [d.resource_id, d.event_type])).toEqual([
      ['r1', 'user.created'],
      ['r2', 'user.created'],
    ]);
    expect(await repo.claim(due[0], '2026-01-01T00:01:00.000Z')).toBe(true);
    expect(await repo.claim(due[0], '2026-01-01T00:01:00.000Z')).toBe(false);
    await repo.markDelivered(due[0].seq, '2026-01-01T00:00:02.000Z', 1);
    const next = await repo.due('2026-01-01T00:00:03.000Z', 10);
    expect(next.map((d) => [d.resource_id, d.event_type])).toEqual([
      ['r1', 'user.updated'],
      ['r2', 'user.created'],
    ]);
    expect(await repo.stats()).toMatchObject({ pending: 2, delivered: 1, oldestPendingAt: t0 });
    expect(await repo.purgeDelivered('2026-01-01T00:00:01.000Z')).toBe(0);
    expect(await repo.purgeDelivered('2026-01-02T00:00:00.000Z')).toBe(1);
    expect(await repo.stats()).toMatchObject({ pending: 2, delivered: 0 });
  });
});
