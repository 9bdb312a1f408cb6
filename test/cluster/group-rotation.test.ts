import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { SCIM_JSON } from '../bench/http/scim-requests';
import { ENTRA_MEMBER_ID, ENTRA_REMOVE_MEMBER, withIds } from '../scim/idp-bodies';
import { Conn, listening, scimToken, servingPid, startServe, type ClusterProcess } from './support';

/**
 * Rotations of one group requested on two worker processes at once: each worker serialises its own,
 * and the lease in group_rotation_turns makes the two workers take turns too, so none is overtaken
 * at commit until it gives up with 503.
 */
jest.setTimeout(240_000);

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';

describe.each(testDatabaseNames())('group rotations across worker processes (%s)', (name) => {
  let p: ClusterProcess | undefined;
  afterEach(async () => p?.close());

  it('12 concurrent member removals spread over two workers all succeed, one key version each', async () => {
    p = await startServe({ workers: 2, db: await DATABASE_FACTORIES[name](), env: { CS_SCIM_RATE_LIMIT_PER_MINUTE: '0' } });
    if (!(await listening(p))) throw new Error(p.stderr());
    const auth = { authorization: `Bearer ${await scimToken(p)}` };
    const scim = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${p!.url}/scim/v2${path}`, { method, headers: { ...auth, 'content-type': SCIM_JSON }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const ids: string[] = [];
    for (let i = 0; i < 14; i++) {
      const r = await scim('POST', '/Users', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: `rot-${i}@example.com`, active: true });
      expect(r.status).toBe(201);
      ids.push(r.body.id as string);
    }
    const g = await scim('POST', '/Groups', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'rotated from two workers', members: ids.map((value) => ({ value })) });
    expect(g.status).toBe(201);
    const groupId = g.body.id as string;

    const leave = ids.slice(2);
    const conns = await Promise.all(leave.map(() => Conn.open(p!.port)));
    const pids = new Set(await Promise.all(conns.map((c) => servingPid(p!.port, c.localPort, p!.workerPids()))));
    expect(pids.size).toBe(2);
    const results = await Promise.all(conns.map((c, i) => c.request('PATCH', `/scim/v2/Groups/${groupId}`, { type: SCIM_JSON, text: withIds(ENTRA_REMOVE_MEMBER, { [ENTRA_MEMBER_ID]: leave[i]! }) }, auth)));
    expect(results.map((r) => r.status)).toEqual(leave.map(() => 204));

    const after = await scim('GET', `/Groups/${groupId}`);
    expect((after.body.members as { value: string }[]).map((m) => m.value).sort()).toEqual(ids.slice(0, 2).sort());
    expect((after.body[GKEYS] as { keyVersion: number }).keyVersion).toBe(1 + leave.length);
  });
});
