import { GroupsRepository } from '../../server/repositories/groups';
import { GROUP_KEYS_SCHEMA } from '../../scim/schemas';
import { entraCreateUser } from '../scim/idp-bodies';
import { entraAddMember, entraCreateGroup, entraRemoveMember } from '../bench/http/scim-requests';
import { faultFixture, type FaultFixture } from './fixture';
import { sentWhileDropping } from './kill-connection';

/**
 * A member removal re-keys the group: one transaction writes the new key version, the members'
 * sealed copies, the outbox event and the audit row, while the group's rotation turn (a lease row,
 * taken and given back in statements of its own) keeps other rotations of the group waiting. The
 * database drops that transaction's connection right after the version row: the IdP gets a prompt
 * 503 in SCIM's format, the group is exactly as before (same members, same key version, no orphan
 * version or member-key rows), and the retry is served at once — the turn was given back, not left
 * to run out its 60-second lease.
 */
describe.each(['postgres', 'mariadb'] as const)('group re-key whose connection is dropped (%s)', (kind) => {
  let f: FaultFixture;
  beforeAll(async () => {
    f = await faultFixture(kind);
  });
  afterAll(async () => f?.close());

  test('PATCH remove (Entra ID body): 503, nothing changed, the retry re-keys promptly', async () => {
    const [leaver, stayer] = await Promise.all(
      ['dropped-leaver@example.com', 'dropped-stayer@example.com'].map(async (u) => (await f.scimPost('/Users', entraCreateUser(u)).expect(201)).body.id as string),
    );
    // Microsoft Entra ID's group create, add-member and remove-member requests with our ids.
    const g = (await f.scimPost('/Groups', entraCreateGroup('Dropped rekey', 'dropped-rekey')).expect(201)).body.id as string;
    for (const id of [leaver, stayer]) await f.scimPatch(`/Groups/${g}`, entraAddMember(id!)).expect(204);
    const state = async () => {
      const body = (await f.scimGet(`/Groups/${g}`).expect(200)).body as { members?: { value: string }[]; [k: string]: unknown };
      const versions: { version: unknown }[] = await f.store.dataSource.query(`SELECT version FROM group_key_versions WHERE group_id = '${g}' ORDER BY version`);
      const memberKeys: { n: unknown }[] = await f.store.dataSource.query(`SELECT COUNT(*) AS n FROM group_member_keys WHERE group_id = '${g}'`);
      return {
        members: (body.members ?? []).map((m) => m.value).sort(),
        keyVersion: (body[GROUP_KEYS_SCHEMA] as { keyVersion: number }).keyVersion,
        versions: versions.map((v) => Number(v.version)),
        memberKeys: Number(memberKeys[0]!.n),
      };
    };
    const before = await state();
    expect(before).toMatchObject({ members: [leaver, stayer].sort(), keyVersion: 1, versions: [1] });

    const remove = () => f.scimPatch(`/Groups/${g}`, entraRemoveMember(leaver!));
    const res = await sentWhileDropping(kind, f.db.url, GroupsRepository.prototype, 'addVersion', remove);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toMatch(/^\d+$/);
    expect(res.body.schemas).toEqual(['urn:ietf:params:scim:api:messages:2.0:Error']);
    expect(JSON.stringify(res.body)).not.toMatch(/terminat|administrator|KILL|ECONN|query/i);
    expect(await state()).toEqual(before);

    const start = performance.now();
    await remove().expect(204);
    // Far under the turn's 20-second wait: nobody holds the group's turn any more.
    expect(performance.now() - start).toBeLessThan(3000);
    expect(await state()).toMatchObject({ members: [stayer], keyVersion: 2, versions: [1, 2] });
  });
});
