import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../../server/http/app';
import { testDatabaseNames } from '../support/databases';
import { redeem, signInForCode, signInForToken } from '../support/auth-fixture';
import { entraCreateUser } from '../scim/idp-bodies';
import { entraAddMember, entraCreateGroup } from '../bench/http/scim-requests';
import { GROUP_KEYS_SCHEMA } from '../../scim/schemas';
import { rotateGroupCommand } from '../../server/cli/groups';
import { rotateSigningKey } from '../../server/cli/signing-keys';
import { describeFailure } from '../../server/cli/failure';
import { BREAKER_COOLDOWN_MS, faultFixture, KMS_DEADLINE_MS, SLACK_MS, type FaultFixture } from './fixture';
import { timed } from './support';

/**
 * The KMS hangs (accepts, never answers) or is killed (port closed) while clients keep coming:
 * every request that needs it gets a 503 + Retry-After within CS_KMS_DEADLINE_MS, nothing is
 * half-written, requests that do not need it are served meanwhile (no connection or SQLite
 * writer held across a KMS call), and everything works again once the KMS is back.
 */
describe.each(testDatabaseNames())('KMS outage (%s)', (kind) => {
  let f: FaultFixture;
  let aliceToken: string;
  let n = 0;
  beforeAll(async () => {
    f = await faultFixture(kind);
    await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
    aliceToken = await signInForToken(f, { nameId: 'alice@example.com' });
  });
  afterAll(async () => f?.close());

  const bound = KMS_DEADLINE_MS + SLACK_MS;
  const usersNamed = async (userName: string) => (await f.scimGet(`/Users?filter=${encodeURIComponent(`userName eq "${userName}"`)}`).expect(200)).body.totalResults;

  test.each(['hung', 'killed'] as const)('KMS %s: prompt 503s, no half-writes, other requests served, recovery', async (mode) => {
    const userName = `outage-${mode}-${++n}@example.com`;
    // A code obtained before the outage, to redeem on a replica that has never signed a token.
    const pending = await signInForCode(f, { nameId: 'alice@example.com' });
    const replica = createApp(f);
    // A data key wrapped before the outage (the key API's data-keys/wrap), to unwrap during it.
    const asAlice = (path: string) => request(f.app).post(path).set('Authorization', `Bearer ${aliceToken}`);
    const dataKey = randomBytes(32).toString('base64url');
    const { wrappedKey } = (await asAlice('/api/keys/data-keys/wrap').send({ key: dataKey, label: `doc-${mode}` }).expect(200)).body as { wrappedKey: string };
    if (mode === 'hung') f.proxy.hang();
    else await f.proxy.kill();
    try {
      // SCIM user creation (Microsoft Entra ID's create body): several at once, all refused within the
      // deadline, in SCIM's error format.
      const creates = [1, 2, 3].map((i) => timed(Promise.resolve(f.scimPost('/Users', entraCreateUser(`${i}-${userName}`)))));
      // Meanwhile a read that needs no KMS is answered: nothing holds the database for the KMS.
      const read = await timed(Promise.resolve(f.scimGet('/Users?count=1')));
      expect(read.value?.status).toBe(200);
      for (const c of await Promise.all(creates)) {
        expect(c.ms).toBeLessThan(bound);
        expect(c.value?.status).toBe(503);
        expect(c.value?.headers['retry-after']).toMatch(/^\d+$/);
        expect(c.value?.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
      }
      for (const i of [1, 2, 3]) expect(await usersNamed(`${i}-${userName}`)).toBe(0);
      // A group create (Entra ID's body) wraps the new group's membership key: refused the same way.
      const group = await timed(Promise.resolve(f.scimPost('/Groups', entraCreateGroup(`Outage ${mode} ${n}`, `outage-${mode}-${n}`))));
      expect(group.ms).toBeLessThan(bound);
      expect(group.value?.status).toBe(503);
      expect(group.value?.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
      expect((await f.scimGet(`/Groups?filter=${encodeURIComponent(`displayName eq "Outage ${mode} ${n}"`)}`).expect(200)).body.totalResults).toBe(0);

      // Key API: the password key cannot be unwrapped → 503 problem+json.
      const me = await timed(Promise.resolve(request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${aliceToken}`)));
      expect(me.ms).toBeLessThan(bound);
      expect(me.value?.status).toBe(503);
      expect(me.value?.headers['retry-after']).toMatch(/^\d+$/);
      expect(me.value?.headers['content-type']).toMatch(/application\/problem\+json/);

      // Data keys: wrapping and unwrapping both need the KMS → 503 problem+json, no key either way.
      for (const call of [asAlice('/api/keys/data-keys/wrap').send({ key: randomBytes(32).toString('base64url'), label: 'doc-new' }), asAlice('/api/keys/data-keys/unwrap').send({ wrappedKey, label: `doc-${mode}` })]) {
        const r = await timed(Promise.resolve(call));
        expect(r.ms).toBeLessThan(bound);
        expect(r.value?.status).toBe(503);
        expect(r.value?.headers['retry-after']).toMatch(/^\d+$/);
        expect(r.value?.headers['content-type']).toMatch(/application\/problem\+json/);
        expect(r.value?.body.key).toBeUndefined();
        expect(r.value?.body.wrappedKey).toBeUndefined();
      }

      // Token issuing on a replica must unwrap the signing key → 503; verifying needs no KMS.
      const issued = await timed(Promise.resolve(redeem({ ...f, app: replica }, { grant_type: 'authorization_code', code: pending.code, redirect_uri: pending.started.redirectUri, client_id: pending.started.clientId, code_verifier: pending.started.verifier })));
      expect(issued.ms).toBeLessThan(bound);
      expect(issued.value?.status).toBe(503);
      expect(issued.value?.headers['retry-after']).toMatch(/^\d+$/);
      expect((await request(replica).get('/.well-known/jwks.json')).status).toBe(200);

      // Probes: not ready (route traffic elsewhere), but alive (a restart would not help).
      expect((await request(f.app).get('/readyz')).status).toBe(503);
      expect((await request(f.app).get('/healthz')).status).toBe(200);
    } finally {
      await f.proxy.restore();
    }
    // Back: after the breaker's cooldown, everything works again.
    await new Promise((r) => setTimeout(r, BREAKER_COOLDOWN_MS + 100));
    await f.scimPost('/Users', entraCreateUser(userName)).expect(201);
    expect(await usersNamed(userName)).toBe(1);
    await request(f.app).get('/api/keys/me').set('Authorization', `Bearer ${aliceToken}`).expect(200);
    // The code refused during the outage was not used up: the client's retry signs the user in.
    const retried = await redeem({ ...f, app: replica }, { grant_type: 'authorization_code', code: pending.code, redirect_uri: pending.started.redirectUri, client_id: pending.started.clientId, code_verifier: pending.started.verifier });
    expect(retried.status).toBe(200);
    expect((await asAlice('/api/keys/data-keys/unwrap').send({ wrappedKey, label: `doc-${mode}` }).expect(200)).body.key).toBe(dataKey);
    const fresh = await signInForCode(f, { nameId: 'alice@example.com' });
    const ok = await redeem({ ...f, app: replica }, { grant_type: 'authorization_code', code: fresh.code, redirect_uri: fresh.started.redirectUri, client_id: fresh.started.clientId, code_verifier: fresh.started.verifier });
    expect(ok.status).toBe(200);
  });

  /**
   * Deprovisioning: a user deleted while the KMS is out. Leaving a group rotates its key (one KMS
   * wrap per group, before the transaction), so the DELETE cannot complete: it must fail as a whole
   * — the user still there, still in every group, no group key rotated — and succeed once retried.
   */
  test.each(['hung', 'killed'] as const)('KMS %s: a DELETE /Users of a group member is a prompt 503 that changes nothing, and the retry deprovisions', async (mode) => {
    const leaver = (await f.scimPost('/Users', entraCreateUser(`leaver-${mode}@example.com`)).expect(201)).body.id as string;
    const groups: string[] = [];
    for (const i of [1, 2]) {
      // Microsoft Entra ID's group create and add-member requests, with our names and the leaver's id.
      const g = (await f.scimPost('/Groups', entraCreateGroup(`Leavers ${mode} ${i}`, `leavers-${mode}-${i}`)).expect(201)).body.id as string;
      await f.scimPatch(`/Groups/${g}`, entraAddMember(leaver)).expect(204);
      groups.push(g);
    }
    const state = async () =>
      Promise.all(
        groups.map(async (g) => {
          const body = (await f.scimGet(`/Groups/${g}`).expect(200)).body as { members?: { value: string }[]; [k: string]: unknown };
          return { members: (body.members ?? []).map((m) => m.value), keyVersion: (body[GROUP_KEYS_SCHEMA] as { keyVersion: number }).keyVersion };
        }),
      );
    const before = await state();
    expect(before).toEqual([{ members: [leaver], keyVersion: 1 }, { members: [leaver], keyVersion: 1 }]);

    if (mode === 'hung') f.proxy.hang();
    else await f.proxy.kill();
    try {
      const gone = await timed(Promise.resolve(f.scimDelete(`/Users/${leaver}`)));
      expect(gone.ms).toBeLessThan(bound);
      expect(gone.value?.status).toBe(503);
      expect(gone.value?.headers['retry-after']).toMatch(/^\d+$/);
      expect(gone.value?.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
      // Nothing of it happened: the user, the memberships and the group keys are as they were.
      expect((await f.scimGet(`/Users/${leaver}`)).status).toBe(200);
      expect(await state()).toEqual(before);
    } finally {
      await f.proxy.restore();
    }
    await new Promise((r) => setTimeout(r, BREAKER_COOLDOWN_MS + 100));
    await f.scimDelete(`/Users/${leaver}`).expect(204);
    expect((await f.scimGet(`/Users/${leaver}`)).status).toBe(404);
    expect(await state()).toEqual([{ members: [], keyVersion: 2 }, { members: [], keyVersion: 2 }]);
  });

  /**
   * The operator's commands that need the KMS, run against the same database and KMS while it is
   * out: each fails with the one-line message main prints (no stack), changes nothing, and the
   * same command succeeds once the KMS is back.
   */
  test.each(['hung', 'killed'] as const)('KMS %s: `groups rotate` and `signing-keys rotate` fail clearly, change nothing, and work after', async (mode) => {
    const member = (await f.scimPost('/Users', entraCreateUser(`cli-${mode}@example.com`)).expect(201)).body.id as string;
    const g = (await f.scimPost('/Groups', entraCreateGroup(`CLI ${mode}`, `cli-${mode}`)).expect(201)).body.id as string;
    await f.scimPatch(`/Groups/${g}`, entraAddMember(member)).expect(204);
    const keyVersion = async () => ((await f.scimGet(`/Groups/${g}`).expect(200)).body[GROUP_KEYS_SCHEMA] as { keyVersion: number }).keyVersion;
    const signingKeys = async () => (await f.store.dataSource.query('SELECT kid, state FROM signing_keys ORDER BY kid')) as { kid: string; state: string }[];
    const keysBefore = await signingKeys();
    expect(await keyVersion()).toBe(1);

    if (mode === 'hung') f.proxy.hang();
    else await f.proxy.kill();
    try {
      for (const run of [(): Promise<unknown> => rotateGroupCommand(f.env, () => undefined, g), (): Promise<unknown> => rotateSigningKey(f.env, () => undefined)]) {
        const failed = await timed(run());
        expect(failed.error).toBeDefined();
        expect(describeFailure(failed.error)).toMatch(/^the key management service is unavailable; retry later \(.+\)$/);
      }
    } finally {
      await f.proxy.restore();
    }
    expect(await keyVersion()).toBe(1);
    expect(await signingKeys()).toEqual(keysBefore);

    await new Promise((r) => setTimeout(r, BREAKER_COOLDOWN_MS + 100));
    expect(await rotateGroupCommand(f.env, () => undefined, g)).toBe(0);
    expect(await keyVersion()).toBe(2);
    const kid = await rotateSigningKey(f.env, () => undefined);
    expect((await signingKeys()).filter((k) => k.state === 'active').map((k) => k.kid)).toEqual([kid]);
  });
});
