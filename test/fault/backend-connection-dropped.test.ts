import { GroupEntity } from '../../entities';
import { GroupsRepository } from '../../server/repositories/groups';
import { backendContext, type BackendTestContext } from '../backend/support';
import { sentWhileDropping } from './kill-connection';

/**
 * The backend API's group create, sent with an Idempotency-Key, loses its database connection in
 * the middle of its transaction. The claim on the key was taken in a statement of its own before
 * the write, and the failure must give it back — on another pooled connection, since this one is
 * gone — or every retry of the cloud backend would get 409 for the claim's 5-minute lease.
 */
describe.each(['postgres', 'mariadb'] as const)('backend API write whose connection is dropped (%s)', (kind) => {
  let ctx: BackendTestContext;
  let ann: string;
  beforeAll(async () => {
    ctx = await backendContext(kind);
    ann = await ctx.user('dropped-ann@example.com');
  });
  afterAll(async () => ctx?.cleanup());

  test('POST /groups with Idempotency-Key: 503, no group, the retry with the same key runs once', async () => {
    const body = { name: 'Dropped mid-write', members: [{ id: ann }] };
    const create = () => ctx.backend.post('/groups', body).set('Idempotency-Key', 'dropped-1');
    const named = () => ctx.store.dataSource.manager.countBy(GroupEntity, { displayName: body.name });
    const res = await sentWhileDropping(kind, ctx.db.url, GroupsRepository.prototype, 'insert', create);
    expect(res.status).toBe(503);
    expect(res.type).toBe('application/problem+json');
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(JSON.stringify(res.body)).not.toMatch(/terminat|administrator|KILL|ECONN|query/i);
    expect(await named()).toBe(0);

    // Not 409 idempotency_in_progress: the key is free, and the retry creates the group once.
    const retried = await create().expect(201);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();
    expect(await named()).toBe(1);
    const replayed = await create().expect(201);
    expect(replayed.headers['idempotent-replayed']).toBe('true');
    expect(replayed.body).toEqual(retried.body);
    expect(await named()).toBe(1);
  });
});
