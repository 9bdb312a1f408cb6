import { GroupEntity, IdempotencyEntity, UserEntity } from '../../entities';
import type { IdempotencyRow } from '../../entities/backend';
import { CLAIM_LEASE_MS, Idempotency, requestHash } from '../../backend/idempotency';
import { IdempotencyInProgressError } from '../../backend/errors';
import { IdempotencyRepository } from '../../backend/repositories/idempotency';
import { ownWrites } from '../../server/repositories/runner';
import { testDatabaseNames } from '../support/databases';
import { backendContext, type BackendTestContext } from './support';

/**
 * Idempotency-Key after a crash: a claim left "in progress" by a dead process blocks its key only
 * for the claim's lease, never runs the write twice, and a response committed with its write is
 * replayed (backend/idempotency.ts).
 */
describe.each(testDatabaseNames())('backend API Idempotency-Key after a crash (%s)', (kind) => {
  let ctx: BackendTestContext;
  let tokenId: string;
  let idem: Idempotency;
  let ann: string;
  beforeAll(async () => {
    ctx = await backendContext(kind);
    tokenId = (await ctx.tokens.list()).find((t) => t.name === 'cloud backend')!.id;
    idem = new Idempotency(ownWrites(ctx.store, (m) => new IdempotencyRepository(m)));
    ann = await ctx.user('crash-ann@example.com');
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await ctx?.cleanup();
  });
  afterEach(() => jest.restoreAllMocks());

  const m = () => ctx.store.dataSource.manager;
  const groupsNamed = (name: string) => m().countBy(GroupEntity, { displayName: name });
  const create = (key: string, body: unknown) => ctx.backend.post('/groups', body).set('Idempotency-Key', key);
  const record = (idemKey: string) => m().findOneBy(IdempotencyEntity, { tokenId, idemKey });
  const iso = (msFromNow: number) => new Date(Date.now() + msFromNow).toISOString();
  /** The row a process leaves when it dies after claiming `key` and before its write commits. */
  const deadClaim = (idemKey: string, body: unknown, createdAt: string, expiresAt: string, path = '/groups') =>
    ctx.store.transaction(async (tx) => {
      const row: IdempotencyRow = { tokenId, idemKey, requestHash: requestHash('POST', path, body), claimId: 'dead'.padEnd(32, '0'), status: null, response: null, createdAt, expiresAt };
      await tx.manager.insert(IdempotencyEntity, row);
    });
  const retryAfter = (res: { headers: Record<string, string> }) => Number(res.headers['retry-after']);

  test('a claim left by a dead process: 409 + Retry-After until its lease runs out, then the retry runs once', async () => {
    const body = { name: 'Died before commit', members: [{ id: ann }] };
    await deadClaim('crash-1', body, iso(-CLAIM_LEASE_MS + 5_000), iso(5_000));
    const early = await create('crash-1', body).expect(409);
    expect(early.type).toBe('application/problem+json');
    expect(early.body.code).toBe('idempotency_in_progress');
    // The seconds left of the lease (here under 5), never a day.
    expect(retryAfter(early)).toBeGreaterThanOrEqual(1);
    expect(retryAfter(early)).toBeLessThanOrEqual(5);
    expect(await groupsNamed('Died before commit')).toBe(0);

    // The lease has run out: the retry takes the key over and runs the request.
    await ctx.store.transaction((tx) => tx.manager.update(IdempotencyEntity, { tokenId, idemKey: 'crash-1' }, { expiresAt: iso(-1) }));
    const late = await create('crash-1', body).expect(201);
    expect(late.headers['idempotent-replayed']).toBeUndefined();
    expect(await groupsNamed('Died before commit')).toBe(1);
    const row = await record('crash-1');
    expect(row).toMatchObject({ status: 201 });
    expect(row!.claimId).not.toBe('dead'.padEnd(32, '0'));
    const again = await create('crash-1', body).expect(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.id).toBe(late.body.id);
    expect(await groupsNamed('Died before commit')).toBe(1);
  });

  test('a young claim answers Retry-After 1 s; an old one about its age, never past the lease end', async () => {
    const body = { name: 'Slow', members: [] };
    await deadClaim('crash-2', body, iso(0), iso(CLAIM_LEASE_MS));
    expect(retryAfter(await create('crash-2', body).expect(409))).toBe(1);
    await ctx.store.transaction((tx) => tx.manager.update(IdempotencyEntity, { tokenId, idemKey: 'crash-2' }, { createdAt: iso(-120_000), expiresAt: iso(CLAIM_LEASE_MS - 120_000) }));
    const older = retryAfter(await create('crash-2', body).expect(409));
    expect(older).toBeGreaterThanOrEqual(120);
    expect(older).toBeLessThanOrEqual(CLAIM_LEASE_MS / 1000 - 119);
    // Four minutes old, one minute left: the lease end.
    await ctx.store.transaction((tx) => tx.manager.update(IdempotencyEntity, { tokenId, idemKey: 'crash-2' }, { createdAt: iso(-240_000), expiresAt: iso(CLAIM_LEASE_MS - 240_000) }));
    expect(retryAfter(await create('crash-2', body).expect(409))).toBeLessThanOrEqual(60);
  });

  test('with an injected clock: before the lease end 409, after it the claim is taken over; old rows (no claim id) too', async () => {
    const t0 = new Date('2030-01-01T00:00:00.000Z');
    const first = await idem.claim(tokenId, 'clock-1', 'h1', t0);
    expect(first.kind).toBe('execute');
    await expect(idem.claim(tokenId, 'clock-1', 'h1', new Date(t0.getTime() + CLAIM_LEASE_MS - 1))).rejects.toBeInstanceOf(IdempotencyInProgressError);
    const second = await idem.claim(tokenId, 'clock-1', 'h1', new Date(t0.getTime() + CLAIM_LEASE_MS));
    expect(second.kind).toBe('execute');
    // The first request, still running after all, can neither free nor complete the key now.
    if (first.kind !== 'execute' || second.kind !== 'execute') throw new Error('unreachable');
    await first.release();
    await expect(ctx.store.transaction((tx) => first.completeIn(tx.manager, 201, { body: 'late' }))).rejects.toMatchObject({ code: 'idempotency_key_taken_over', status: 409 });
    expect(await record('clock-1')).toMatchObject({ status: null, response: null });
    await ctx.store.transaction((tx) => second.completeIn(tx.manager, 201, { body: 'taker' }));
    expect(await record('clock-1')).toMatchObject({ status: 201, response: JSON.stringify({ body: 'taker' }) });
    // Its release after completion is a no-op: the response stays.
    await second.release();
    expect(await record('clock-1')).toMatchObject({ status: 201 });

    // A record written before claim ids existed (claim_id NULL), past its 24 h: taken over too.
    await ctx.store.transaction((tx) => tx.manager.insert(IdempotencyEntity, { tokenId, idemKey: 'clock-2', requestHash: 'h2', claimId: null, status: 201, response: '{}', createdAt: t0.toISOString(), expiresAt: t0.toISOString() }));
    expect((await idem.claim(tokenId, 'clock-2', 'h3', t0)).kind).toBe('execute');
    expect(await record('clock-2')).toMatchObject({ requestHash: 'h3', status: null, response: null });
  });

  test('two retries after the lease ran out: exactly one takes the key over', async () => {
    const t0 = new Date('2031-01-01T00:00:00.000Z');
    await idem.claim(tokenId, 'clock-3', 'h', t0);
    const later = new Date(t0.getTime() + CLAIM_LEASE_MS + 1);
    const results = await Promise.allSettled([idem.claim(tokenId, 'clock-3', 'h', later), idem.claim(tokenId, 'clock-3', 'h', later)]);
    expect(results.filter((r) => r.status === 'fulfilled' && r.value.kind === 'execute')).toHaveLength(1);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused).toHaveLength(1);
    expect(refused[0].reason).toBeInstanceOf(IdempotencyInProgressError);
  });

  test('concurrent HTTP retries of a dead claim whose lease ran out: one group', async () => {
    const body = { name: 'Retried after crash', members: [{ id: ann }] };
    await deadClaim('crash-3', body, iso(-CLAIM_LEASE_MS - 1_000), iso(-1_000));
    const results = await Promise.all(Array.from({ length: 4 }, () => create('crash-3', body)));
    expect(results.every((r) => r.status === 201 || r.status === 409)).toBe(true);
    expect(new Set(results.filter((r) => r.status === 201).map((r) => r.body.id)).size).toBe(1);
    expect(await groupsNamed('Retried after crash')).toBe(1);
  });

  test('a crash right after the commit: the response committed with the group, and the retry replays it', async () => {
    const body = { name: 'Died after commit', members: [{ id: ann }] };
    const transaction = ctx.store.transaction.bind(ctx.store);
    let atCrash: IdempotencyRow | null = null;
    jest.spyOn(ctx.store, 'transaction').mockImplementation(async (fn) => {
      const out = await transaction(fn);
      if ((out as { name?: unknown } | undefined)?.name === body.name) {
        atCrash = await record('crash-4'); // what a SIGKILL at this instant leaves
        throw new Error('test: the process died after its commit');
      }
      return out;
    });
    await create('crash-4', body).expect(500);
    jest.restoreAllMocks();
    expect(atCrash).toMatchObject({ status: 201 });
    const retry = await create('crash-4', body).expect(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.headers.etag).toBe('"v1"');
    expect(retry.headers.location).toBe(`/backend/v1/groups/${retry.body.id}`);
    expect(await groupsNamed('Died after commit')).toBe(1);
  });

  test('a crash right after a user create commits: the retry replays the 201, one user', async () => {
    const body = { userName: 'crash-user@example.com' };
    const transaction = ctx.store.transaction.bind(ctx.store);
    jest.spyOn(ctx.store, 'transaction').mockImplementation(async (fn) => {
      const out = await transaction(fn);
      if ((out as { user?: { userName?: unknown } } | undefined)?.user?.userName === body.userName) throw new Error('test: the process died after its commit');
      return out;
    });
    await ctx.backend.post('/users', body).set('Idempotency-Key', 'crash-5').expect(500);
    jest.restoreAllMocks();
    const retry = await ctx.backend.post('/users', body).set('Idempotency-Key', 'crash-5').expect(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(await m().countBy(UserEntity, { userName: body.userName })).toBe(1);
  });

  test('a request whose claim a retry took over mid-flight rolls back: 409, no group of its own', async () => {
    const body = { name: 'Taken over', members: [{ id: ann }] };
    const provision = ctx.keys.groups.provision.bind(ctx.keys.groups);
    let taker: Awaited<ReturnType<Idempotency['claim']>> | undefined;
    jest.spyOn(ctx.keys.groups, 'provision').mockImplementation(async (input, c, commit) => {
      // The request ran past its lease; a retry (another replica) takes its key over now.
      taker = await idem.claim(tokenId, 'crash-6', requestHash('POST', '/groups', body), new Date(Date.now() + CLAIM_LEASE_MS + 1_000));
      return provision(input, c, commit);
    });
    const res = await create('crash-6', body).expect(409);
    jest.restoreAllMocks();
    expect(res.type).toBe('application/problem+json');
    expect(res.body.code).toBe('idempotency_key_taken_over');
    expect(taker?.kind).toBe('execute');
    expect(await groupsNamed('Taken over')).toBe(0);
    // Its failure did not free the taker's claim.
    expect(await record('crash-6')).toMatchObject({ status: null });
    expect((await record('crash-6'))!.claimId).not.toBeNull();
    // The taker, done without writing, frees the key; the next retry creates the one group.
    if (taker?.kind === 'execute') await taker.release();
    await create('crash-6', body).expect(201);
    expect(await groupsNamed('Taken over')).toBe(1);
  });
});
