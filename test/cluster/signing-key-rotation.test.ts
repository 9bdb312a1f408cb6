import { decodeProtectedHeader } from 'jose';
import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { cli, connectionsOnTwoWorkers, listening, oneTimeCode, provisionUser, sleep, startServe, tokenRequestBody, type ClusterProcess } from './support';

/**
 * `crypto-server signing-keys rotate` while two workers serve: a token signed by the new key on one
 * worker is accepted at once by the other, old tokens stay valid, and within the key cache's 10 s
 * every worker signs with the new key.
 */
jest.setTimeout(240_000);

describe.each(testDatabaseNames())('token-signing key rotation across workers (%s)', (name) => {
  let p: ClusterProcess | undefined;
  afterEach(async () => p?.close());

  it('every worker picks up the rotated key', async () => {
    p = await startServe({ workers: 2, db: await DATABASE_FACTORIES[name]() });
    if (!(await listening(p))) throw new Error(p.stderr());
    const alice = await provisionUser(p, 'rotating-alice');
    // A token from each worker; both workers accept both.
    const tokenOn = async (): Promise<string[]> => {
      const [a, b] = await connectionsOnTwoWorkers(p!);
      const out: string[] = [];
      for (const conn of [a, b]) {
        const { code, verifier } = await oneTimeCode(p!, alice);
        const r = await conn.request('POST', '/oauth/token', tokenRequestBody(code, verifier));
        expect(r.status).toBe(200);
        out.push(JSON.parse(r.body).access_token as string);
      }
      return out;
    };
    const acceptedByBoth = async (token: string) => {
      const [a, b] = await connectionsOnTwoWorkers(p!);
      for (const conn of [a, b]) expect((await conn.request('GET', '/api/keys/me', undefined, { authorization: `Bearer ${token}` })).status).toBe(200);
    };
    const before = await tokenOn();
    const oldKid = decodeProtectedHeader(before[0]!).kid;
    expect(decodeProtectedHeader(before[1]!).kid).toBe(oldKid);

    const printed = await cli(p, ['signing-keys', 'rotate']);
    const newKid = /new token-signing key (\S+) is active/.exec(printed)?.[1];
    expect(newKid).toBeDefined();
    expect(newKid).not.toBe(oldKid);

    await sleep(10_500); // the signing-key cache of each worker (SigningKeyService cacheMs)
    const after = await tokenOn();
    for (const t of after) expect(decodeProtectedHeader(t).kid).toBe(newKid);
    for (const t of [...before, ...after]) await acceptedByBoth(t);
  });
});
