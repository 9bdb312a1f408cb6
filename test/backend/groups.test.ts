import { GroupEntity, UserEntity } from '../../entities';
import { KmsUnavailableError } from '../../server/errors';
import { binding } from '../../server/keys/binding';
import { openUnderSymmetricKey } from '../../server/keys/jose-keys';
import { GROUP_SCHEMA } from '../scim/support';
import { testDatabaseNames } from '../support/databases';
import { openAsMember } from './open';
import { backendContext, type BackendTestContext } from './support';

/** Application-managed groups through /backend/v1/groups (issue 11), on the same group key service as SCIM. */
describe.each(testDatabaseNames())('backend API groups (%s)', (kind) => {
  let ctx: BackendTestContext;
  const u: Record<string, string> = {};
  beforeAll(async () => {
    ctx = await backendContext(kind);
    for (const n of ['ann', 'bob', 'cyd', 'dee']) u[n] = await ctx.user(`${n}@example.com`);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  const groupRows = () => ctx.store.dataSource.manager.count(GroupEntity);

  test('create by id and by userName (any case) → 201 with only public and encrypted forms; every member opens the same membership key', async () => {
    const res = await ctx.backend.post('/groups', { name: 'Project X', members: [{ id: u.ann }, { userName: 'BOB@Example.com' }] }).expect(201);
    const g = res.body;
    expect(res.headers.etag).toBe(`"v${g.version}"`);
    expect(res.headers.location).toBe(`/backend/v1/groups/${g.id}`);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(g).toMatchObject({ name: 'Project X', origin: 'app', keyVersion: 1, keyAlgorithm: 'ec-p256' });
    expect(g.publicKeyJwk).toMatchObject({ kty: 'EC', use: 'enc' });
    expect(g.publicKeyJwk.d).toBeUndefined();
    expect(g.members.map((m: { userId: string }) => m.userId).sort()).toEqual([u.ann, u.bob].sort());
    // The membership key: the KMS-wrapped envelope (bound to this group and version) and each member's JWE hold the same bytes.
    const gmk = await ctx.kms.unwrapStored(g.wrappedMembershipKey, binding.membershipKey(g.id, 1));
    for (const m of g.members) expect((await openAsMember(ctx.keys, m.userId, m.memberJwe)).equals(gmk)).toBe(true);
    const priv = await openUnderSymmetricKey(g.privateKeyJwe, gmk);
    expect(priv.x).toBe(g.publicKeyJwk.x);
    gmk.fill(0);
    const read = await ctx.backend.get(`/groups/${g.id}`).expect(200);
    expect(read.body).toEqual(g);
    expect(read.headers.etag).toBe(res.headers.etag);
  });

  test('app-managed groups never appear in SCIM; IdP groups are readable here but read-only', async () => {
    const app = (await ctx.backend.post('/groups', { name: 'Hidden Folder', members: [{ id: u.ann }] }).expect(201)).body;
    await ctx.get(`/Groups/${app.id}`).expect(404);
    await ctx.del(`/Groups/${app.id}`).expect(404);
    const list = await ctx.get('/Groups').expect(200);
    expect(list.body.Resources.map((r: { id: string }) => r.id)).not.toContain(app.id);
    const filtered = await ctx.get(`/Groups?filter=${encodeURIComponent('displayName eq "Hidden Folder"')}`).expect(200);
    expect(filtered.body.totalResults).toBe(0);
    const user = await ctx.get(`/Users/${u.ann}`).expect(200);
    expect((user.body.groups ?? []).map((x: { value: string }) => x.value)).not.toContain(app.id);
    // Names of app groups are not unique and do not collide with the IdP's.
    await ctx.backend.post('/groups', { name: 'Hidden Folder', members: [] }).expect(201);
    const idp = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'Hidden Folder', members: [{ value: u.bob }] }).expect(201)).body;

    const read = await ctx.backend.get(`/groups/${idp.id}`).expect(200);
    expect(read.body).toMatchObject({ origin: 'scim', name: 'Hidden Folder', members: [{ userId: u.bob }] });
    for (const res of [
      await ctx.backend.patch(`/groups/${idp.id}`, { name: 'Renamed' }),
      await ctx.backend.patch(`/groups/${idp.id}`, { add: [{ id: u.cyd }] }),
      await ctx.backend.del(`/groups/${idp.id}`),
    ]) {
      expect(res.status).toBe(403);
      expect(res.body.code).toBe('group_managed_by_idp');
    }
    const after = await ctx.get(`/Groups/${idp.id}`).expect(200);
    expect(after.body.displayName).toBe('Hidden Folder');
    expect(after.body.members.map((m: { value: string }) => m.value)).toEqual([u.bob]);
  });

  test('add, remove (rotates like SCIM removal), rename, delete; ETag changes with each write', async () => {
    const g = (await ctx.backend.post('/groups', { name: 'Team', members: [{ id: u.ann }, { id: u.bob }] }).expect(201)).body;
    const added = await ctx.backend.patch(`/groups/${g.id}`, { add: [{ userName: 'cyd@example.com' }] }).set('If-Match', `"v${g.version}"`).expect(200);
    expect(added.body.keyVersion).toBe(1);
    expect(added.body.members).toHaveLength(3);
    expect(added.headers.etag).not.toBe(`"v${g.version}"`);
    const v1 = await ctx.kms.unwrapStored(g.wrappedMembershipKey, binding.membershipKey(g.id, 1));
    const cyd = added.body.members.find((m: { userId: string }) => m.userId === u.cyd);
    expect((await openAsMember(ctx.keys, u.cyd, cyd.memberJwe)).equals(v1)).toBe(true);

    const removed = await ctx.backend.patch(`/groups/${g.id}`, { remove: [{ id: u.bob }] }).set('If-Match', added.headers.etag).expect(200);
    expect(removed.body.keyVersion).toBe(2);
    expect(removed.body.members.map((m: { userId: string }) => m.userId).sort()).toEqual([u.ann, u.cyd].sort());
    expect(removed.body.publicKeyJwk.x).not.toBe(g.publicKeyJwk.x);
    const v2 = await ctx.kms.unwrapStored(removed.body.wrappedMembershipKey, binding.membershipKey(g.id, 2));
    expect(v2.equals(v1)).toBe(false);
    for (const m of removed.body.members) expect((await openAsMember(ctx.keys, m.userId, m.memberJwe)).equals(v2)).toBe(true);
    // Bob can open nothing of version 2: the key API's bundle no longer lists the group for him.
    const bob = await ctx.keys.getUserKeyBundle(u.bob, { actor: 'test' });
    bob.passwordKey.fill(0);
    expect(bob.groups.map((x) => x.groupId)).not.toContain(g.id);
    // Ann's bundle holds both versions (old data stays readable).
    const ann = await ctx.keys.getUserKeyBundle(u.ann, { actor: 'test' });
    ann.passwordKey.fill(0);
    expect(ann.groups.find((x) => x.groupId === g.id)!.versions.map((v) => v.version)).toEqual([2, 1]);
    v1.fill(0);
    v2.fill(0);

    const renamed = await ctx.backend.patch(`/groups/${g.id}`, { name: 'Team (archived)' }).expect(200);
    expect(renamed.body).toMatchObject({ name: 'Team (archived)', keyVersion: 2 });
    expect(renamed.body.version).toBeGreaterThan(removed.body.version);
    await ctx.backend.del(`/groups/${g.id}`).set('If-Match', renamed.headers.etag).expect(204);
    await ctx.backend.get(`/groups/${g.id}`).expect(404);
    await ctx.backend.del(`/groups/${g.id}`).expect(404);
    const audit = await ctx.store.repos.audit.recent(200, { targetId: g.id });
    expect(audit.map((e) => e.action)).toEqual(expect.arrayContaining(['group.provision', 'group.key.rotate', 'group.delete', 'backend.group.create', 'backend.group.delete']));
    expect(audit.filter((e) => e.action.startsWith('backend.')).every((e) => e.actor === 'backend:cloud backend')).toBe(true);
  });

  test('a stale If-Match → 412 and nothing changes; two writers holding one ETag: exactly one wins', async () => {
    const g = (await ctx.backend.post('/groups', { name: 'Contended', members: [{ id: u.ann }] }).expect(201)).body;
    const etag = `"v${g.version}"`;
    await ctx.backend.patch(`/groups/${g.id}`, { name: 'First' }).set('If-Match', etag).expect(200);
    const stale = await ctx.backend.patch(`/groups/${g.id}`, { name: 'Second', add: [{ id: u.bob }] }).set('If-Match', etag).expect(412);
    expect(stale.type).toBe('application/problem+json');
    expect(stale.body.code).toBe('precondition_failed');
    await ctx.backend.del(`/groups/${g.id}`).set('If-Match', etag).expect(412);
    const now = (await ctx.backend.get(`/groups/${g.id}`).expect(200)).body;
    expect(now.name).toBe('First');
    expect(now.members).toHaveLength(1);

    const current = `"v${now.version}"`;
    const results = await Promise.all([
      ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: u.cyd }] }).set('If-Match', current),
      ctx.backend.patch(`/groups/${g.id}`, { remove: [{ id: u.ann }] }).set('If-Match', current),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 412]);
    const winner = results.find((r) => r.status === 200)!;
    const final = (await ctx.backend.get(`/groups/${g.id}`).expect(200)).body;
    expect(final.version).toBe(winner.body.version);
    expect(final.members.map((m: { userId: string }) => m.userId)).toEqual(winner.body.members.map((m: { userId: string }) => m.userId));
  });

  test('bad input: unknown members → 422 naming them, duplicates, over-long names, 10k members → 4xx; nothing written', async () => {
    const before = await groupRows();
    const unknown = await ctx.backend.post('/groups', { name: 'Nope', members: [{ id: u.ann }, { id: 'no-such-id' }, { userName: 'ghost@example.com' }] }).expect(422);
    expect(unknown.body).toMatchObject({ code: 'unknown_members', status: 422 });
    expect(unknown.body.detail).toContain('"no-such-id"');
    expect(unknown.body.detail).toContain('"ghost@example.com"');
    expect(unknown.body.detail).not.toContain(u.ann);
    const dup = await ctx.backend.post('/groups', { name: 'Dup', members: [{ id: u.ann }, { id: u.ann }] }).expect(400);
    expect(dup.body.code).toBe('invalid_input');
    await ctx.backend.post('/groups', { name: 'Dup', members: [{ userName: 'ann@example.com' }, { userName: 'ANN@example.com' }] }).expect(400);
    const long = await ctx.backend.post('/groups', { name: 'x'.repeat(256) }).expect(400);
    expect(long.body.errors[0]).toMatchObject({ path: 'name' });
    await ctx.backend.post('/groups', { name: '   ' }).expect(400);
    await ctx.backend.post('/groups', { name: 'Extra', owner: 'me' }).expect(400);
    await ctx.backend.post('/groups', [1, 2]).expect(400);
    const huge = await ctx.backend.post('/groups', { name: 'Huge', members: Array.from({ length: 10_000 }, (_, i) => ({ id: `u${i}` })) });
    expect(huge.status).toBeGreaterThanOrEqual(400);
    expect(huge.status).toBeLessThan(500);
    expect(huge.type).toBe('application/problem+json');
    expect(await groupRows()).toBe(before);
    // The same on a change: nothing added when one of the names is unknown.
    const g = (await ctx.backend.post('/groups', { name: 'Stable', members: [{ id: u.ann }] }).expect(201)).body;
    const bad = await ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: u.bob }, { id: 'missing' }] }).expect(422);
    expect(bad.body.detail).toContain('"missing"');
    await ctx.backend.patch(`/groups/${g.id}`, {}).expect(400);
    await ctx.backend.patch(`/groups/00000000-0000-0000-0000-000000000000`, { name: 'x' }).expect(404);
    const after = (await ctx.backend.get(`/groups/${g.id}`).expect(200)).body;
    expect(after.members).toHaveLength(1);
    expect(after.version).toBe(g.version);
  });

  test('a group deleted while a change is in flight: 404, never a 5xx or a half-written change', async () => {
    const g = (await ctx.backend.post('/groups', { name: 'Vanishing', members: [{ id: u.ann }] }).expect(201)).body;
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const unwrap = adapter.unwrap.bind(adapter);
    // The add's KMS work runs first (no transaction open); the group is deleted meanwhile.
    const spy = jest.spyOn(adapter, 'unwrap').mockImplementationOnce(async (...args) => {
      await ctx.backend.del(`/groups/${g.id}`).expect(204);
      return unwrap(...args);
    });
    try {
      const res = await ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: u.bob }] });
      expect(res.status).toBe(404);
      expect(res.body.code).toBe('not_found');
    } finally {
      spy.mockRestore();
    }
    expect(await ctx.store.repos.groups.findById(g.id)).toBeNull();
    expect(await ctx.store.repos.memberships.memberIds(g.id)).toEqual([]);
  });

  test('KMS outage → 503 + Retry-After, nothing written', async () => {
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const before = await groupRows();
    const spy = jest.spyOn(adapter, 'wrap').mockRejectedValue(new KmsUnavailableError('test outage'));
    try {
      const res = await ctx.backend.post('/groups', { name: 'Outage', members: [{ id: u.ann }] }).expect(503);
      expect(res.headers['retry-after']).toBeDefined();
      expect(res.body.code).toBe('kms_unavailable');
      expect(await groupRows()).toBe(before);
    } finally {
      spy.mockRestore();
    }
    const g = (await ctx.backend.post('/groups', { name: 'Outage later', members: [{ id: u.ann }, { id: u.bob }] }).expect(201)).body;
    const unwrap = jest.spyOn(adapter, 'unwrap').mockRejectedValue(new KmsUnavailableError('test outage'));
    try {
      await ctx.backend.patch(`/groups/${g.id}`, { add: [{ id: u.cyd }] }).expect(503);
    } finally {
      unwrap.mockRestore();
    }
    const after = (await ctx.backend.get(`/groups/${g.id}`).expect(200)).body;
    expect(after.version).toBe(g.version);
    expect(after.members).toHaveLength(2);
  });

  test('KMS hung during a user or group create: no transaction is open while it waits, other writes go through, the late failure writes nothing', async () => {
    const adapter = ctx.kms.forUri(ctx.config.kms.kekUri);
    const users = () => ctx.store.dataSource.manager.count(UserEntity);
    for (const [path, body] of [['/groups', { name: 'Hung', members: [{ id: u.ann }] }], ['/users', { userName: 'hung@example.com' }]] as const) {
      const doomed = (await ctx.backend.post('/groups', { name: `Deleted while ${path} hangs`, members: [] }).expect(201)).body;
      const [groupsBefore, usersBefore] = [await groupRows(), await users()];
      let answer!: (err: Error) => void;
      let entered!: (inTransaction: boolean) => void;
      const waiting = new Promise<boolean>((resolve) => (entered = resolve));
      const spy = jest.spyOn(adapter, 'wrap').mockImplementation(() => {
        entered(ctx.store.inTransaction);
        return new Promise((_resolve, reject) => (answer = reject));
      });
      try {
        const pending = ctx.backend.post(path, body).then((r) => r);
        expect(await waiting).toBe(false);
        // Neither a connection nor the SQLite writer is held: a write needing no KMS completes meanwhile.
        await ctx.backend.del(`/groups/${doomed.id}`).expect(204);
        await ctx.backend.get('/groups?limit=1').expect(200);
        answer(new KmsUnavailableError('test: the KMS answers at last, with an error'));
        expect((await pending).status).toBe(503);
      } finally {
        spy.mockRestore();
      }
      expect([await groupRows(), await users()]).toEqual([groupsBefore - 1, usersBefore]);
    }
  });
});

describe.each(testDatabaseNames())('backend API group list (%s)', (kind) => {
  let ctx: BackendTestContext;
  beforeAll(async () => {
    ctx = await backendContext(kind);
  });
  afterAll(async () => {
    await ctx?.cleanup();
  });

  test('cursor pages in id order cover every group once; origin filters; bad queries are 400', async () => {
    const ann = await ctx.user('list-ann@example.com');
    const app: string[] = [];
    for (let i = 0; i < 5; i++) app.push((await ctx.backend.post('/groups', { name: `List ${i}`, members: i % 2 ? [{ id: ann }] : [] }).expect(201)).body.id);
    const idp = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'List IdP', members: [{ value: ann }] }).expect(201)).body.id;
    const seen: { id: string; origin: string; members: number; keyVersion: number }[] = [];
    let after: string | null = null;
    for (let page = 0; page < 10; page++) {
      const res: { body: { groups: typeof seen; next: string | null; hasMore: boolean } } = await ctx.backend.get(`/groups?limit=2${after ? `&after=${after}` : ''}`).expect(200);
      expect(res.body.groups.length).toBeLessThanOrEqual(2);
      seen.push(...res.body.groups);
      after = res.body.next;
      if (!res.body.hasMore) {
        expect(after).toBeNull();
        break;
      }
    }
    expect(seen.map((g) => g.id)).toEqual([...app, idp].sort());
    expect(seen.find((g) => g.id === app[1])).toMatchObject({ origin: 'app', members: 1, keyVersion: 1 });
    expect(seen.find((g) => g.id === idp)).toMatchObject({ origin: 'scim', members: 1 });
    const onlyApp = await ctx.backend.get('/groups?origin=app&limit=1000').expect(200);
    expect(onlyApp.body.groups.map((g: { id: string }) => g.id)).toEqual([...app].sort());
    for (const q of ['limit=0', 'limit=5000', 'origin=other', 'page=2']) await ctx.backend.get(`/groups?${q}`).expect(400);
  });
});
