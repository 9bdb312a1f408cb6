import { GroupEntity, IdempotencyEntity } from '../../entities';
import { CLAIM_LEASE_MS, IDEMPOTENCY_TTL_MS, Idempotency } from '../../backend/idempotency';
import { IdempotencyRepository } from '../../backend/repositories/idempotency';
import { ownWrites } from '../../server/repositories/runner';
import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

/** Idempotency-Key on the backend API's POSTs (issue 11): replay, mismatch, concurrency, expiry. */
describe.each(testDatabaseNames())('backend API Idempotency-Key (%s)', (kind) => {
  let ctx: BackendTestContext;
  const u: Record<string, string> = {};
  beforeAll(async () => {
    ctx = await backendContext(kind);
    for (const n of ['ann', 'bob']) u[n] = await ctx.user(`idem-${n}@example.com`);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const groupsNamed = (name: string) => ctx.store.dataSource.manager.countBy(GroupEntity, { displayName: name });
  const create = (key: string, body: unknown) => ctx.backend.post('/groups', body).set('Idempotency-Key', key);

  test('the same key and body → the first response again, the group created once; the record is in the database', async () => {
    const body = { name: 'Retried', members: [{ id: u.ann }] };
    const first = await create('req-1', body).expect(201);
    const again = await create('req-1', { members: [{ id: u.ann }], name: 'Retried' }).expect(201); // same body, keys in another order
    expect(again.body).toEqual(first.body);
    expect(again.headers.etag).toBe(first.headers.etag);
    expect(again.headers.location).toBe(first.headers.location);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await groupsNamed('Retried')).toBe(1);
    const row = await ctx.store.dataSource.manager.findOneBy(IdempotencyEntity, { idemKey: 'req-1' });
    expect(row).toMatchObject({ status: 201 });
    // Replayed for 24 h from its completion (the claim was made a request's run time before).
    const kept = Date.parse(row!.expiresAt) - Date.parse(row!.createdAt);
    expect(kept).toBeGreaterThanOrEqual(IDEMPOTENCY_TTL_MS);
    expect(kept).toBeLessThan(IDEMPOTENCY_TTL_MS + CLAIM_LEASE_MS);
    // Another key is another request.
    await create('req-2', body).expect(201);
    expect(await groupsNamed('Retried')).toBe(2);
  });

  test('the same key with a different body → 422, nothing written', async () => {
    await create('req-3', { name: 'Once', members: [] }).expect(201);
    const res = await create('req-3', { name: 'Other', members: [] }).expect(422);
    expect(res.type).toBe('application/problem+json');
    expect(res.body.code).toBe('idempotency_key_reused');
    expect(await groupsNamed('Other')).toBe(0);
    // Same body on another path is another request too.
    await ctx.backend.post('/public-keys/lookup', { ids: [] }).set('Idempotency-Key', 'req-3').expect(422);
  });

  test('the key holds however the path is spelled (the router matches any case and a trailing slash)', async () => {
    const body = { name: 'Spelled', members: [{ id: u.ann }] };
    const first = await ctx.backend.post('/Groups/', body).set('Idempotency-Key', 'req-spelled').expect(201);
    for (const path of ['/groups', '/GROUPS', '/groups/']) {
      const again = await ctx.backend.post(path, body).set('Idempotency-Key', 'req-spelled').expect(201);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.body.id).toBe(first.body.id);
    }
    expect(await groupsNamed('Spelled')).toBe(1);
  });

  test('two concurrent requests with one key: exactly one executes', async () => {
    const body = { name: 'Concurrent', members: [{ id: u.ann }, { id: u.bob }] };
    const results = await Promise.all(Array.from({ length: 4 }, () => create('req-4', body)));
    const statuses = results.map((r) => r.status);
    expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
    expect(await groupsNamed('Concurrent')).toBe(1);
    const ids = new Set(results.filter((r) => r.status === 201).map((r) => r.body.id));
    expect(ids.size).toBe(1);
    for (const r of results.filter((x) => x.status === 409)) {
      expect(r.body.code).toBe('idempotency_in_progress');
      expect(r.headers['retry-after']).toBe('1');
    }
    // Afterwards every retry replays the one result.
    const later = await create('req-4', body).expect(201);
    expect(ids.has(later.body.id)).toBe(true);
  });

  test('a failed request frees its key (it wrote nothing); keys are per token; expired records are replaced', async () => {
    const bad = { name: 'Later', members: [{ id: 'not-yet' }] };
    await create('req-5', bad).expect(422);
    await create('req-5', { name: 'Later', members: [] }).expect(201);

    const { token } = await ctx.tokens.create({ name: 'second backend', scope: 'backend' });
    const other = await ctx.backend.post('/groups', { name: 'Once', members: [] }).set('Authorization', `Bearer ${token}`).set('Idempotency-Key', 'req-3').expect(201);
    expect(other.headers['idempotent-replayed']).toBeUndefined();

    // An unknown path claims nothing: the key stays free for the real request.
    await ctx.backend.post('/groupz', { name: 'Typo' }).set('Idempotency-Key', 'req-6').expect(404);
    await create('req-6', { name: 'Typo', members: [] }).expect(201);
    await ctx.backend.post('/groups', { name: 'Bad key' }).set('Idempotency-Key', 'ä').expect(400);
    await ctx.backend.post('/groups', { name: 'Bad key' }).set('Idempotency-Key', 'k'.repeat(256)).expect(400);

    const idem = new Idempotency(ownWrites(ctx.store, (m) => new IdempotencyRepository(m)));
    const tomorrow = new Date(Date.now() + 24 * 3_600_000 + 1000);
    const claim = await idem.claim((await ctx.tokens.list()).find((t) => t.name === 'cloud backend')!.id, 'req-1', 'another-hash', tomorrow);
    expect(claim.kind).toBe('execute');
    expect(await idem.purgeExpired(new Date(Date.now() + 49 * 3_600_000))).toBeGreaterThan(0);
  });

  test('a failure after the write committed (the audit) keeps the key: the retry replays the one group, never creates a second', async () => {
    const audit = ctx.store.audit.bind(ctx.store);
    const spy = jest.spyOn(ctx.store, 'audit').mockImplementation((e) => (e.action === 'backend.group.create' ? Promise.reject(new Error('test: audit write lost')) : audit(e)));
    try {
      await create('req-7', { name: 'Committed', members: [] }).expect(500);
    } finally {
      spy.mockRestore();
    }
    const retry = await create('req-7', { name: 'Committed', members: [] }).expect(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await groupsNamed('Committed')).toBe(1);
  });
});
