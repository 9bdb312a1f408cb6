import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { entraCreateUser, SCIM_JSON } from '../bench/http/scim-requests';
import { Conn, listening, oneTimeCode, scimToken, servingPid, startServe, tokenRequestBody, type ClusterProcess } from './support';

/**
 * A new deployment's first sign-ins land on both workers at once: no token-signing key exists yet,
 * and each worker's first token request creates one. Every redemption gets its token, all signed
 * by one key (one generation wins: server/auth/signing-keys.ts), and each token works on both
 * workers. Before, MariaDB failed racing redemptions with a deadlock and PostgreSQL kept one
 * active key per worker.
 */
jest.setTimeout(180_000);

describe.each(testDatabaseNames())('first token-signing key on two workers at once (%s)', (name) => {
  let p: ClusterProcess | undefined;
  afterEach(async () => p?.close());

  it('6 first redemptions spread over both workers: all 200, one signing key', async () => {
    p = await startServe({ workers: 2, db: await DATABASE_FACTORIES[name]() });
    if (!(await listening(p))) throw new Error(p.stderr());
    const scim = `Bearer ${await scimToken(p)}`;
    const codes: { code: string; verifier: string }[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${p.url}/scim/v2/Users`, { method: 'POST', headers: { authorization: scim, 'content-type': SCIM_JSON }, body: entraCreateUser(`first-key-${i}`) });
      expect(res.status).toBe(201);
      codes.push(await oneTimeCode(p, `Test_User_first-key-${i}`));
    }
    // Three connections on each worker.
    const byPid = new Map<number, Conn[]>();
    for (let i = 0; i < 40 && [...byPid.values()].filter((c) => c.length >= 3).length < 2; i++) {
      const c = await Conn.open(p.port);
      const pid = await servingPid(p.port, c.localPort, p.workerPids());
      byPid.set(pid, [...(byPid.get(pid) ?? []), c]);
    }
    const conns = [...byPid.values()].flatMap((cs) => cs.slice(0, 3));
    expect(conns).toHaveLength(6);

    const answers = await Promise.all(conns.map((c, i) => c.request('POST', '/oauth/token', tokenRequestBody(codes[i]!.code, codes[i]!.verifier))));
    expect(answers.map((a) => a.status)).toEqual(conns.map(() => 200));
    const tokens = answers.map((a) => (JSON.parse(a.body) as { access_token: string }).access_token);
    const kids = new Set(tokens.map((t) => (JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()) as { kid: string }).kid));
    expect(kids.size).toBe(1);
    const jwks = (await (await fetch(`${p.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).toEqual([...kids]);
    // Each token opens the key API on either worker.
    for (const [pid, cs] of byPid) {
      for (const t of tokens) {
        const c = cs.length > 3 ? cs.pop()! : await reopenOn(p, pid);
        expect((await c.request('GET', '/api/keys/me', undefined, { authorization: `Bearer ${t}` })).status).toBe(200);
      }
    }
  });
});

/** A new connection that the given worker serves. */
async function reopenOn(p: ClusterProcess, pid: number): Promise<Conn> {
  for (let i = 0; i < 40; i++) {
    const c = await Conn.open(p.port);
    if ((await servingPid(p.port, c.localPort, p.workerPids())) === pid) return c;
    c.close();
  }
  throw new Error(`no connection reached worker ${pid}`);
}
