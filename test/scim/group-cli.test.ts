/** `crypto-server groups rotate <groupId>` against a real database, with CS_GROUP_REKEY=manual. */
import { randomBytes } from 'node:crypto';
import { buildProgram } from '../../server/cli/main';
import { rotateGroupCommand } from '../../server/cli/groups';
import { NotFoundError } from '../../server/errors';
import { GroupMemberKeyEntity } from '../../entities';
import { testDatabaseNames } from '../support/databases';
import { GROUP_SCHEMA, PATCH, newUser, scimContext, type ScimTestContext } from './support';

const GKEYS = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';

describe.each(testDatabaseNames())('groups CLI (%s)', (kind) => {
  let ctx: ScimTestContext;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    const settings = { CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_GROUP_REKEY: 'manual' };
    ctx = await scimContext(kind, settings);
    env = { CS_DATABASE_URL: ctx.db.url, CS_LOG_LEVEL: 'silent', ...settings };
  });
  afterAll(async () => ctx?.cleanup());

  it('registers `groups rotate`', () => {
    const groups = buildProgram().commands.find((c) => c.name() === 'groups');
    expect(groups?.commands.map((c) => c.name())).toEqual(['rotate']);
  });

  it('with manual rekey a removal does not rotate; `groups rotate` does, sealed to the current members only', async () => {
    const a = (await ctx.post('/Users', newUser('cli-rot-a@example.com')).expect(201)).body.id as string;
    const b = (await ctx.post('/Users', newUser('cli-rot-b@example.com')).expect(201)).body.id as string;
    const g = (await ctx.post('/Groups', { schemas: [GROUP_SCHEMA], displayName: 'CLI rotate', members: [{ value: a }, { value: b }] }).expect(201)).body.id as string;
    await ctx.patch(`/Groups/${g}`, { schemas: [PATCH], Operations: [{ op: 'remove', path: `members[value eq "${b}"]` }] }).expect(204);
    expect((await ctx.get(`/Groups/${g}`).expect(200)).body[GKEYS].keyVersion).toBe(1);

    const out: string[] = [];
    expect(await rotateGroupCommand(env, (l) => out.push(l), g)).toBe(0);
    expect(out.join('\n')).toContain(`group ${g} rotated to key version 2, sealed to 1 member(s)`);
    expect((await ctx.get(`/Groups/${g}`).expect(200)).body[GKEYS].keyVersion).toBe(2);
    const v2 = await ctx.store.dataSource.manager.find(GroupMemberKeyEntity, { where: { groupId: g, version: 2 } });
    expect(v2.map((r) => r.userId)).toEqual([a]);
    const [e] = await ctx.store.repos.audit.recent(1, { action: 'group.key.rotate', targetId: g });
    expect(e).toMatchObject({ actor: 'cli', outcome: 'success' });

    // The command gave the group's rotation turn back before it exited: running it again at once
    // (or the IdP's next removal) does not wait for the lease (60 s) to run out.
    const start = performance.now();
    expect(await rotateGroupCommand(env, () => undefined, g)).toBe(0);
    expect(performance.now() - start).toBeLessThan(5000);
    expect((await ctx.get(`/Groups/${g}`).expect(200)).body[GKEYS].keyVersion).toBe(3);
  });

  it('an unknown group is a NotFoundError (exit 1 through main)', async () => {
    await expect(rotateGroupCommand(env, () => undefined, '00000000-0000-4000-8000-000000000000')).rejects.toBeInstanceOf(NotFoundError);
  });
});
