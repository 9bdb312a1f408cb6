/**
 * SCIM Users and Groups on top of the key service. Every write is one database transaction:
 * rows, keys (through KeyService with `tx`), audit events and the outbox event commit together
 * or not at all. No HTTP here: routes parse and present, this decides.
 */
import { nowIso } from '../entities/columns';
import type { GroupRow, UserKeysRow, UserRow } from '../entities';
import { NotFoundError } from '../server/errors';
import type { KeyService } from '../server/keys/key-service';
import type { GroupChangeResult, MemberChange } from '../server/keys/group-key-service';
import type { OpContext } from '../server/keys/types';
import type { Repos, Store } from '../server/repositories/store';
import { coerceInbound } from './coerce';
import { ScimError } from './errors';
import { filterToSql, parseFilter, sortColumn, type ColumnMap, type SqlDialect } from './filter-sql';
import { applyPatch, normaliseResourceBody } from './idp-quirks';
import { checkLimits } from './limits';
import { ENTERPRISE_USER_COLUMNS } from './enterprise-columns';
import { parseMemberPatch, type MemberPatch } from './group-members';
import { OutboxRepository } from './repositories/outbox';
import { GROUP_COLUMNS, ScimQueries, USER_COLUMNS, type ListQuery } from './repositories/scim-queries';
import type { UserGroups } from './repositories/user-list';
import { groupResource, profileOf, projectUser, userResource, type ListedUser } from './resources';
import { ENTERPRISE_USER_SCHEMA, GROUP_KEYS_SCHEMA, MAX_COUNT, SCIMMY, USER_KEYS_SCHEMA } from './schemas';

type Json = Record<string, unknown>;

export interface ScimServiceOptions {
  /** Record an outbox event per change (when a webhook or the backend change feed is configured). */
  outbox: boolean;
  /** No webhook: events are only for the change feed (scim/repositories/outbox.ts). */
  feedOnly?: boolean;
  /** null: keep deleted users' key material; 0: purge at once; n: purge n days after deletion. */
  userDeleteRetentionDays: number | null;
  /** Base for member $ref values, e.g. "/scim/v2". */
  basepath: string;
}

export interface ListParams {
  filter?: string;
  sortBy?: string;
  sortOrder?: string;
  startIndex: number;
  count: number;
  /** Skip loading group members (excludedAttributes=members). */
  withMembers?: boolean;
}

/** The representation a group write answers with. */
export interface GroupView {
  /** False when the client excluded members (Entra: excludedAttributes=members). */
  withMembers: boolean;
}

export interface ListResult {
  total: number;
  startIndex: number;
  resources: Json[];
}

export interface UserPage {
  total: number;
  startIndex: number;
  rows: ListedUser[];
  keys: Map<string, UserKeysRow>;
  groups: UserGroups;
  /** For the groups' $ref. */
  basepath: string;
}

const USER_EXTENSIONS = [ENTERPRISE_USER_SCHEMA, USER_KEYS_SCHEMA];
const GROUP_EXTENSIONS = [GROUP_KEYS_SCHEMA];
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);
const plain = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;

/** The webhook event of a group key rotation: the new public key and version, nothing secret. */
function rotationEvent(id: string, v: NonNullable<GroupChangeResult['rotated']>): Json {
  return { id, keyVersion: v.version, keyAlgorithm: v.keyAlg, publicKeyJwk: JSON.stringify(v.publicJwk), kekUri: v.kekUri };
}

function requireBody(body: unknown, what: string): Json {
  if (!isObject(body)) throw new ScimError(400, 'invalidSyntax', `${what} expects a JSON object body`);
  return body;
}

export class ScimService {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyService,
    private readonly options: ScimServiceOptions,
  ) {}

  private listQuery(params: ListParams, columns: ColumnMap, dialect: SqlDialect): ListQuery {
    const where = params.filter !== undefined ? filterToSql(parseFilter(params.filter), columns, { dialect }) : undefined;
    const orderBy = params.sortBy ? sortColumn(params.sortBy, columns) : undefined;
    // Any case (RFC 7644 keywords are case-insensitive; some clients send "DESCENDING").
    const sortOrder = params.sortOrder?.toLowerCase();
    if (sortOrder !== undefined && !['ascending', 'descending'].includes(sortOrder)) {
      throw new ScimError(400, 'invalidValue', 'sortOrder must be "ascending" or "descending"');
    }
    return { where, orderBy, descending: sortOrder === 'descending', startIndex: params.startIndex, count: Math.min(params.count, MAX_COUNT) };
  }

  private async enqueue(tx: Repos, resourceType: 'User' | 'Group', resourceId: string, eventType: string, data: Json): Promise<void> {
    if (this.options.outbox) await new OutboxRepository(tx.manager).enqueue({ resourceType, resourceId, eventType, data, feedOnly: this.options.feedOnly });
  }

  // ---- Users --------------------------------------------------------------------------------

  async listUsers(params: ListParams): Promise<ListResult> {
    const { total, startIndex, rows, keys, groups, basepath } = await this.listUserPage(params);
    return { total, startIndex, resources: rows.map((r) => userResource(r, keys.get(r.id), groups.get(r.id), basepath)) };
  }

  /** A page of users as rows, for GET /Users to render in one pass (http.ts presentUserList). */
  async listUserPage(params: ListParams): Promise<UserPage> {
    const q = new ScimQueries(this.store.dataSource.manager);
    const { total, rows, keys, groups: listed } = await q.listUsers(this.listQuery(params, { ...USER_COLUMNS, ...ENTERPRISE_USER_COLUMNS }, q.dialect));
    const groups = listed ?? (await q.groupsOf(rows.map((r) => r.id)));
    return { total, startIndex: params.startIndex, rows, keys, groups, basepath: this.options.basepath };
  }

  async getUser(id: string): Promise<Json> {
    const q = new ScimQueries(this.store.dataSource.manager);
    const row = await q.findUser(id);
    if (!row) throw new NotFoundError(`user ${id} not found`);
    return this.renderUser(q, row);
  }

  private async renderUser(q: ScimQueries, row: UserRow): Promise<Json> {
    const [keys, groups] = await Promise.all([q.userKeys([row.id]), q.groupsOf([row.id])]);
    return userResource(row, keys.get(row.id), groups.get(row.id), this.options.basepath);
  }

  private coerceUser(body: Json): ReturnType<typeof projectUser> {
    const input = normaliseResourceBody(body, SCIMMY.Schemas.User.definition);
    const coerced = coerceInbound(SCIMMY.Schemas.User, input);
    const p = projectUser(coerced);
    if (!p.userName.trim()) throw new ScimError(400, 'invalidValue', 'userName is required');
    checkLimits('User', p.attributes);
    return p;
  }

  async createUser(body: unknown, ctx: OpContext): Promise<Json> {
    const p = this.coerceUser(requireBody(body, 'POST /Users'));
    // Keys are generated and KMS-wrapped before the transaction opens, so it never waits on the KMS.
    const prepared = await this.keys.prepareUser(p, ctx);
    // No outbox event: the rows and the audit event are the whole transaction (the key service's own, on the driver).
    if (!this.options.outbox) return userResource(await this.keys.commitUser(prepared, ctx), prepared.keys);
    return this.store.transaction(async (tx) => {
      const created = await this.keys.commitUser(prepared, ctx, tx);
      // The key row just written, as prepared: no read back inside the transaction.
      const resource = userResource(created, prepared.keys);
      await this.enqueue(tx, 'User', created.id, 'user.created', resource);
      return resource;
    });
  }

  async replaceUser(id: string, body: unknown, ctx: OpContext): Promise<Json> {
    const b = requireBody(body, 'PUT /Users');
    return this.store.transaction(async (tx) => {
      const row = await new ScimQueries(tx.manager).findUser(id, true);
      if (!row) throw new NotFoundError(`user ${id} not found`);
      return this.updateUser(tx, row, this.coerceUser(b), ctx);
    });
  }

  async patchUser(id: string, body: unknown, ctx: OpContext): Promise<Json> {
    const b = requireBody(body, 'PATCH /Users');
    return this.store.transaction(async (tx) => {
      const q = new ScimQueries(tx.manager);
      const row = await q.findUser(id, true);
      if (!row) throw new NotFoundError(`user ${id} not found`);
      // With its key extension, so scimmy answers `mutability` to attempts at changing it.
      const resource = await this.renderUser(q, row);
      const current = new SCIMMY.Schemas.User(resource, 'out');
      const patched = await applyPatch(current, b, USER_EXTENSIONS, (o) => {
        if (typeof o?.path === 'string' && /^(urn:ietf:params:scim:schemas:core:2\.0:user:)?groups\b/i.test(o.path)) {
          throw new ScimError(400, 'mutability', 'groups is read-only: change memberships through /Groups');
        }
      });
      if (!patched) return resource;
      return this.updateUser(tx, row, this.coerceUser(plain(patched)), ctx);
    });
  }

  private async updateUser(tx: Repos, row: UserRow, p: ReturnType<typeof projectUser>, ctx: OpContext): Promise<Json> {
    const active = p.active ?? true;
    if (Boolean(row.active) !== active) await this.keys.setUserActive(row.id, active, ctx, tx);
    await tx.users.update(
      row.id,
      {
        userName: p.userName,
        userNameNorm: p.userName.toLowerCase(),
        externalId: p.externalId ?? null,
        displayName: p.displayName ?? null,
        email: p.email ?? null,
        givenName: p.givenName ?? null,
        familyName: p.familyName ?? null,
        scimAttributes: JSON.stringify(p.attributes),
      },
      nowIso(),
    );
    await tx.audit.append({ ...ctx, action: 'user.update', outcome: 'success', targetType: 'user', targetId: row.id });
    const q = new ScimQueries(tx.manager);
    const updated = await q.findUser(row.id);
    if (!updated) throw new NotFoundError(`user ${row.id} not found`);
    const resource = await this.renderUser(q, updated);
    await this.enqueue(tx, 'User', row.id, 'user.updated', resource);
    return resource;
  }

  /**
   * Deletes a user for the IdP: gone from SCIM at once (and its userName/externalId free for a
   * new user), key material kept for the retention period, then purged.
   */
  async deleteUser(id: string, ctx: OpContext): Promise<void> {
    if (!(await new ScimQueries(this.store.dataSource.manager).findUser(id))) throw new NotFoundError(`user ${id} not found`);
    // Out of every group first: each group the user was in rotates (CS_GROUP_REKEY), its KMS
    // wrap done before the transaction; the user's JWEs of every version go.
    await this.keys.groups.removeUserEverywhere(id, ctx, async (tx, groups) => {
      const row = await new ScimQueries(tx.manager).findUser(id, true);
      if (!row) throw new NotFoundError(`user ${id} not found`);
      await this.keys.softDeleteUser(id, ctx, tx);
      await tx.users.update(id, { userNameNorm: `~deleted~${id}`, externalId: null }, nowIso());
      if (this.options.userDeleteRetentionDays === 0) await this.keys.purgeUser(id, ctx, tx);
      await this.enqueue(tx, 'User', id, 'user.deleted', { id, userName: row.userName, ...(row.externalId ? { externalId: row.externalId } : {}) });
      for (const r of groups) {
        if (r.removed.length > 0 || r.rotated) await tx.groups.update(r.groupId, {}, nowIso());
        if (r.rotated) await this.enqueue(tx, 'Group', r.groupId, 'group.key.rotated', rotationEvent(r.groupId, r.rotated));
      }
    });
  }

  /** Purges deleted users whose retention ran out. Returns how many. */
  async purgeExpiredUsers(ctx: OpContext, now: Date = new Date()): Promise<number> {
    const days = this.options.userDeleteRetentionDays;
    if (days === null) return 0;
    const before = new Date(now.getTime() - days * 86_400_000).toISOString();
    const ids = await new ScimQueries(this.store.dataSource.manager).deletedBefore(before, 500);
    for (const id of ids) await this.keys.purgeUser(id, ctx);
    return ids.length;
  }

  // ---- Groups -------------------------------------------------------------------------------

  async listGroups(params: ListParams): Promise<ListResult> {
    const q = new ScimQueries(this.store.dataSource.manager);
    const { total, rows } = await q.listGroups(this.listQuery(params, GROUP_COLUMNS, q.dialect));
    const ids = rows.map((r) => r.id);
    const [keys, members] = await Promise.all([q.groupKeys(ids), params.withMembers === false ? undefined : q.members(ids)]);
    return { total, startIndex: params.startIndex, resources: rows.map((r) => groupResource(r, keys.get(r.id), members?.get(r.id), this.options.basepath)) };
  }

  async getGroup(id: string, withMembers = true): Promise<Json> {
    const q = new ScimQueries(this.store.dataSource.manager);
    return this.renderGroup(q, id, withMembers);
  }

  private async renderGroup(q: ScimQueries, id: string, withMembers: boolean, lockedRow?: GroupRow): Promise<Json> {
    const row = lockedRow ?? (await q.findGroup(id));
    if (!row) throw new NotFoundError(`group ${id} not found`);
    const [keys, members] = await Promise.all([q.groupKeys([id]), withMembers ? q.members([id]) : undefined]);
    return groupResource(row, keys.get(id), members?.get(id), this.options.basepath);
  }

  private coerceGroup(body: Json): { displayName: string; externalId: string | null; attributes: Json; memberIds: string[] } {
    const input = normaliseResourceBody(body, SCIMMY.Schemas.Group.definition);
    const coerced = coerceInbound(SCIMMY.Schemas.Group, input);
    const profile = profileOf(coerced);
    const displayName = typeof profile.displayName === 'string' ? profile.displayName.trim() : '';
    if (!displayName) throw new ScimError(400, 'invalidValue', 'displayName is required');
    checkLimits('Group', profile, { ...profile, members: undefined });
    const members = Array.isArray(profile.members) ? (profile.members as Json[]) : [];
    const memberIds = [...new Set(members.map((m) => m.value).filter((v): v is string => typeof v === 'string' && v !== ''))];
    const { members: _m, ...attributes } = profile;
    void _m;
    return { displayName, externalId: typeof profile.externalId === 'string' && profile.externalId ? profile.externalId : null, attributes, memberIds };
  }

  /*
   * Group writes never hold a transaction across KMS work: the key service prepares (KMS, JWEs)
   * with none open, then runs the callback below inside its one transaction, with the group row
   * locked and the change re-checked against fresh state (server/keys/group-key-service.ts).
   */

  async createGroup(body: unknown, ctx: OpContext): Promise<Json> {
    const g = this.coerceGroup(requireBody(body, 'POST /Groups'));
    return this.keys.groups.provision(g, ctx, async (tx, created) => {
      const resource = await this.renderGroup(new ScimQueries(tx.manager), created.id, true);
      await this.enqueue(tx, 'Group', created.id, 'group.created', resource);
      return resource;
    });
  }

  async replaceGroup(id: string, body: unknown, ctx: OpContext): Promise<Json> {
    const g = this.coerceGroup(requireBody(body, 'PUT /Groups'));
    return this.keys.groups.change(id, { kind: 'set', members: g.memberIds }, ctx, this.keys.groups.rekeyMode, async (tx, r) => (await this.saveGroup(tx, id, g, r, ctx, { withMembers: true }))!);
  }

  /**
   * `view`: the representation the client asked for (with or without members); none, and no
   * group is read back after the change unless an outbox event needs it (scim/groups.ts answers 204).
   */
  async patchGroup(id: string, body: unknown, ctx: OpContext, view?: GroupView): Promise<Json | undefined> {
    const b = requireBody(body, 'PATCH /Groups');
    const members = parseMemberPatch(b.Operations);
    // Applied once before any KMS work (bad requests cost nothing), again on the locked fresh row.
    const first = await this.patchedGroup(new ScimQueries(this.store.dataSource.manager), id, b, members);
    if (!first) return view ? this.getGroup(id, view.withMembers) : undefined;
    // Only operations on the group's own attributes need re-applying to the locked row; the key
    // service re-plans the membership change itself (and answers 404 for a group deleted meanwhile).
    const attributeOps = members.otherOps.length > 0 || !members.touchesMembers;
    return this.keys.groups.change(id, first.change, ctx, this.keys.groups.rekeyMode, async (tx, r) => {
      const again = attributeOps ? await this.patchedGroup(new ScimQueries(tx.manager), id, b, members) : undefined;
      return this.saveGroup(tx, id, again?.group, r, ctx, view);
    });
  }

  /** Rotates a group's keys now (CLI `groups rotate`); the change is audited and sent to the webhook. */
  async rotateGroup(id: string, ctx: OpContext): Promise<{ keyVersion: number; members: number }> {
    return this.keys.groups.rotate(id, ctx, async (tx, r) => {
      await this.saveGroup(tx, id, undefined, r, ctx);
      return { keyVersion: r.keyVersion, members: r.rotated?.members ?? 0 };
    });
  }

  /**
   * Applies a PATCH: membership operations to just the members they name (or all, when the result
   * depends on every member), the others through scimmy to the group without its members — so
   * adding one member to a big group reads one membership, not the group. Undefined: no change.
   */
  private async patchedGroup(q: ScimQueries, id: string, b: Json, members: MemberPatch): Promise<{ group?: ReturnType<ScimService['coerceGroup']>; change: MemberChange } | undefined> {
    const row = await q.findGroup(id);
    if (!row) throw new NotFoundError(`group ${id} not found`);
    let group: ReturnType<ScimService['coerceGroup']> | undefined;
    if (members.otherOps.length > 0 || !members.touchesMembers) {
      const keys = (await q.groupKeys([id])).get(id);
      const current = new SCIMMY.Schemas.Group(groupResource(row, keys, undefined, this.options.basepath), 'out');
      const patched = await applyPatch(current, { ...b, Operations: members.otherOps }, GROUP_EXTENSIONS);
      if (patched) group = this.coerceGroup(plain(patched));
    } else {
      new SCIMMY.Messages.PatchOp(b as never); // the message itself: schemas, op names, paths
    }
    const start = members.all ? ((await q.members([id])).get(id) ?? []).map((m) => m.userId) : (await q.membersAmong(id, members.ids)).map((m) => m.userId);
    const after = members.apply(start);
    const before = new Set(start);
    const same = after.length === before.size && after.every((u) => before.has(u));
    if (!group && same) return undefined;
    const kept = new Set(after);
    const change: MemberChange = members.all ? { kind: 'set', members: after } : { kind: 'delta', add: after, remove: members.ids.filter((u) => !kept.has(u)) };
    return { group, change };
  }

  /**
   * Inside the key service's transaction: the group's own attributes, audit, events, and the
   * response `view` (none: undefined). The group is read back only for a view or an outbox event.
   */
  private async saveGroup(tx: Repos, id: string, g: ReturnType<ScimService['coerceGroup']> | undefined, r: GroupChangeResult, ctx: OpContext, view?: GroupView): Promise<Json | undefined> {
    const changed = g !== undefined || r.added.length > 0 || r.removed.length > 0 || r.rotated !== undefined;
    if (changed) {
      const fields = g ? { displayName: g.displayName, displayNameNorm: g.displayName.toLowerCase(), externalId: g.externalId, scimAttributes: JSON.stringify(g.attributes) } : {};
      await tx.groups.update(id, fields, nowIso());
      await tx.audit.append({ ...ctx, action: 'group.update', outcome: 'success', targetType: 'group', targetId: id });
    }
    const event = changed && this.options.outbox;
    // The webhook event carries the whole group (members and their JWEs, docs/scim.md §5): O(group)
    // by the event's format. Without a webhook, a response without members reads none.
    const resource = view || event ? await this.renderGroup(new ScimQueries(tx.manager), id, event || view!.withMembers) : undefined;
    if (event) await this.enqueue(tx, 'Group', id, 'group.updated', resource!);
    if (r.rotated) await this.enqueue(tx, 'Group', id, 'group.key.rotated', rotationEvent(id, r.rotated));
    if (!view || !resource) return undefined;
    if (view.withMembers) return resource;
    const { members: _m, ...rest } = resource;
    void _m;
    const ext = rest[GROUP_KEYS_SCHEMA];
    if (isObject(ext)) delete ext.memberKeys;
    return rest;
  }

  async deleteGroup(id: string, ctx: OpContext): Promise<void> {
    await this.store.transaction(async (tx) => {
      const row = await new ScimQueries(tx.manager).findGroup(id, true);
      if (!row) throw new NotFoundError(`group ${id} not found`);
      await this.keys.deleteGroup(id, ctx, tx);
      await this.enqueue(tx, 'Group', id, 'group.deleted', { id, displayName: row.displayName });
    });
  }
}

