import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { SCIM_JSON } from '../bench/http/scim-requests';
import { entraCreateUser } from '../scim/idp-bodies';
import { Conn, connectionsOnTwoWorkers, listening, scimToken, servingPid, startServe, type ClusterProcess } from './support';

/**
 * SCIM user creation (Microsoft Entra ID's create body) arriving on two worker processes at once:
 * each create generates keys, has them wrapped, and commits the user, keys and audit row in one
 * transaction — on SQLite the two processes share one file and its write lock. Every create
 * succeeds, and the same user sent to both workers at once exists once (201 and 409).
 */
jest.setTimeout(180_000);

describe.each(testDatabaseNames())('SCIM creates on two worker processes at once (%s)', (name) => {
  let p: ClusterProcess | undefined;
  afterEach(async () => p?.close());

  it('24 creates spread over both workers all succeed; one userName sent to both at once is created once', async () => {
    p = await startServe({ workers: 2, db: await DATABASE_FACTORIES[name](), env: { CS_SCIM_RATE_LIMIT_PER_MINUTE: '0' } });
    if (!(await listening(p))) throw new Error(p.stderr());
    const auth = { authorization: `Bearer ${await scimToken(p)}` };
    const create = (c: Conn, userName: string) => c.request('POST', '/scim/v2/Users', { type: SCIM_JSON, text: JSON.stringify(entraCreateUser(userName)) }, auth);
    const total = async (filter: string) => {
      const r = await fetch(`${p!.url}/scim/v2/Users?filter=${encodeURIComponent(filter)}`, { headers: auth });
      return ((await r.json()) as { totalResults: number }).totalResults;
    };

    const conns = await Promise.all(Array.from({ length: 24 }, () => Conn.open(p!.port)));
    const pids = new Set(await Promise.all(conns.map((c) => servingPid(p!.port, c.localPort, p!.workerPids()))));
    expect(pids.size).toBe(2);
    const results = await Promise.all(conns.map((c, i) => create(c, `spread-${i}@example.com`)));
    expect(results.map((r) => r.status)).toEqual(conns.map(() => 201));
    expect(await total('userName sw "spread-"')).toBe(24);

    const [a, b] = await connectionsOnTwoWorkers(p);
    const same = await Promise.all([create(a, 'both-workers@example.com'), create(b, 'both-workers@example.com')]);
    expect(same.map((r) => r.status).sort()).toEqual([201, 409]);
    expect(await total('userName eq "both-workers@example.com"')).toBe(1);
  });
});
