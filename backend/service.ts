/**
 * The cloud service's own API (issue 11), without HTTP. Group writes go through the same group key
 * service as SCIM (KMS work before the transaction, rotation on removal, one transaction for rows,
 * keys, audit and outbox event); this layer adds member resolution, origin and If-Match checks.
 */
import type { JWK } from 'jose';
import type { GroupRow, UserKeysRow, UserRow } from '../entities';
import { nowIso } from '../entities/columns';
import { ConflictError, NotFoundError } from '../server/errors';
import type { KeyService } from '../server/keys/key-service';
import type { OpContext } from '../server/keys/types';
import type { Repos, Store } from '../server/repositories/store';
import { OutboxRepository } from '../scim/repositories/outbox';
import { userResource } from '../scim/resources';
import { USER_SCHEMA as SCIM_USER_SCHEMA } from '../scim/schemas';
import { IdpManagedGroupError, PreconditionFailedError, UnknownMembersError } from './errors';
import { BackendQueries } from './repositories/backend-queries';
import type { z } from 'zod';
import type { CreateGroupBody, CreateUserBody, Group, GroupsPage, LookupBody, MemberRef, UpdateGroupBody, User } from './schemas';

export interface BackendServiceOptions {
  /** Record an outbox event per change (when a webhook or the change feed is configured), as SCIM does. */
  outbox: boolean;
  /** No webhook: events are only for the change feed. */
  feedOnly?: boolean;
}

export interface LookupResult {
  keys: { userId: string; userName: string; email: string | null; keyAlgorithm: string; publicKeyJwk: JWK }[];
  notFound: { ids: string[]; userNames: string[]; emails: string[] };
}

/**
 * Work the caller runs inside a write's own transaction with its result (the route stores the
 * Idempotency-Key response there), so that the write and it commit together or not at all.
 */
export type InTransaction<T> = (tx: Repos, result: T) => Promise<void>;

/** The ETag of a group: its row version, which every write increments. */
export const etagOf = (version: number): string => `"v${version}"`;

/** Whether an If-Match header value matches this version (`*` matches any existing group). */
function ifMatchHolds(ifMatch: string | undefined, version: number): boolean {
  if (ifMatch === undefined) return true;
  const tags = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
  return tags.includes('*') || tags.includes(etagOf(version));
}

/** A user as the backend sees them: profile, public key and the encrypted forms of their keys. */
function userView(u: UserRow, k: UserKeysRow): User {
  return {
    id: u.id, userName: u.userName, email: u.email, displayName: u.displayName, active: Boolean(u.active),
    keyAlgorithm: k.keyAlg, publicKeyJwk: JSON.parse(k.publicJwk) as Record<string, unknown>, privateKeyJwe: k.privateJwe,
    wrappedPasswordKey: k.wrappedPasswordKey, kekUri: k.kekUri, createdAt: u.createdAt,
  };
}

export class BackendService {
  constructor(
    private readonly store: Store,
    private readonly keys: KeyService,
    private readonly options: BackendServiceOptions,
  ) {}

  // ---- public keys --------------------------------------------------------------------------

  async lookupPublicKeys(body: LookupBody): Promise<LookupResult> {
    const ids = [...new Set(body.ids ?? [])];
    const userNames = [...new Set(body.userNames ?? [])];
    const emails = [...new Set(body.emails ?? [])];
    const rows = await new BackendQueries(this.store.dataSource.manager).activePublicKeys({
      ids,
      userNamesNorm: userNames.map((u) => u.toLowerCase()),
      emailsLower: emails.map((e) => e.toLowerCase()),
    });
    const foundIds = new Set(rows.map((r) => r.userId));
    const foundNames = new Set(rows.map((r) => r.userName.toLowerCase()));
    const foundEmails = new Set(rows.flatMap((r) => (r.email ? [r.email.toLowerCase()] : [])));
    return {
      keys: rows.map((r) => ({ userId: r.userId, userName: r.userName, email: r.email, keyAlgorithm: r.keyAlg, publicKeyJwk: JSON.parse(r.publicJwk) as JWK })),
      notFound: {
        ids: ids.filter((i) => !foundIds.has(i)),
        userNames: userNames.filter((u) => !foundNames.has(u.toLowerCase())),
        emails: emails.filter((e) => !foundEmails.has(e.toLowerCase())),
      },
    };
  }

  // ---- users --------------------------------------------------------------------------------

  /**
   * Creates a user and their keys with the same rules as SCIM (keys generated and KMS-wrapped
   * before the transaction), idempotent on userName: an existing live user is returned as is.
   * `inTx` runs in the creating transaction only (an existing user is a read: nothing to commit with).
   */
  async createUser(body: CreateUserBody, ctx: OpContext, inTx?: InTransaction<User>): Promise<{ created: boolean; user: User }> {
    const existing = () => new BackendQueries(this.store.dataSource.manager).liveUser({ userNameNorm: body.userName.toLowerCase() });
    const found = await existing();
    if (found) return { created: false, user: userView(found.user, found.keys) };
    const attributes = {
      schemas: [SCIM_USER_SCHEMA],
      userName: body.userName,
      active: true,
      ...(body.displayName ? { displayName: body.displayName } : {}),
      ...(body.givenName || body.familyName ? { name: { ...(body.givenName ? { givenName: body.givenName } : {}), ...(body.familyName ? { familyName: body.familyName } : {}) } } : {}),
      ...(body.email ? { emails: [{ value: body.email, type: 'work', primary: true }] } : {}),
      ...(body.externalId ? { externalId: body.externalId } : {}),
    };
    const prepared = await this.keys.prepareUser({ ...body, active: true, attributes }, ctx);
    try {
      return await this.store.transaction(async (tx) => {
        const created = await this.keys.commitUser(prepared, ctx, tx);
        const user = userView(created, prepared.keys);
        if (this.options.outbox) {
          await new OutboxRepository(tx.manager).enqueue({ resourceType: 'User', resourceId: created.id, eventType: 'user.created', data: userResource(created, prepared.keys), feedOnly: this.options.feedOnly });
        }
        await inTx?.(tx, user);
        return { created: true, user };
      });
    } catch (err) {
      // Created by a concurrent request (or the IdP) meanwhile: that user is the answer.
      const raced = err instanceof ConflictError && err.target === 'userName' ? await existing() : null;
      if (raced) return { created: false, user: userView(raced.user, raced.keys) };
      throw err;
    }
  }

  async getUser(id: string): Promise<User> {
    const found = await new BackendQueries(this.store.dataSource.manager).liveUser({ id });
    if (!found) throw new NotFoundError(`user ${id} not found`);
    return userView(found.user, found.keys);
  }

  // ---- groups -------------------------------------------------------------------------------

  /** Groups in a stable order (by id), a page at a time; `next` is the cursor of the following page. */
  async listGroups(after: string | undefined, limit: number, origin?: 'app' | 'scim'): Promise<z.infer<typeof GroupsPage>> {
    const rows = await new BackendQueries(this.store.dataSource.manager).groupPage(after, limit + 1, origin);
    const page = rows.slice(0, limit);
    const hasMore = rows.length > limit;
    return {
      groups: page,
      next: hasMore ? page[page.length - 1].id : null,
      hasMore,
    };
  }

  async getGroup(id: string): Promise<Group> {
    return this.render(this.store.repos, id);
  }

  async createGroup(body: CreateGroupBody, ctx: OpContext, inTx?: InTransaction<Group>): Promise<Group> {
    // Resolved before any KMS work: an unknown member costs nothing and writes nothing.
    const memberIds = await this.resolve(body.members);
    return this.keys.groups.provision({ displayName: body.name, memberIds, origin: 'app' }, ctx, async (tx, created) => {
      const group = await this.render(tx, created.id);
      await this.enqueue(tx, created.id, 'group.created', group);
      await inTx?.(tx, group);
      return group;
    });
  }

  /**
   * Rename and member changes in one write; removal rotates the group's keys exactly as a SCIM
   * removal does (CS_GROUP_REKEY). `ifMatch` is checked before the KMS work and again on the
   * locked row, so of two writers holding one ETag exactly one succeeds.
   */
  async updateGroup(id: string, body: UpdateGroupBody, ifMatch: string | undefined, ctx: OpContext): Promise<Group> {
    this.writable(await this.store.repos.groups.findById(id), id, ifMatch);
    const [add, remove] = [await this.resolve(body.add ?? []), await this.resolve(body.remove ?? [])];
    const groups = this.keys.groups;
    return groups.change(id, { kind: 'delta', add, remove }, ctx, groups.rekeyMode, async (tx, r) => {
      this.writable(await tx.groups.findById(id), id, ifMatch); // the row is locked by now
      if (body.name !== undefined || r.added.length > 0 || r.removed.length > 0 || r.rotated) {
        await tx.groups.update(id, body.name !== undefined ? { displayName: body.name } : {}, nowIso());
        await tx.audit.append({ ...ctx, action: 'group.update', outcome: 'success', targetType: 'group', targetId: id });
      }
      const group = await this.render(tx, id);
      await this.enqueue(tx, id, 'group.updated', group);
      if (r.rotated) {
        const v = r.rotated;
        await this.enqueue(tx, id, 'group.key.rotated', { id, keyVersion: v.version, keyAlgorithm: v.keyAlg, publicKeyJwk: JSON.stringify(v.publicJwk), kekUri: v.kekUri });
      }
      return group;
    });
  }

  async deleteGroup(id: string, ifMatch: string | undefined, ctx: OpContext): Promise<void> {
    await this.store.transaction(async (tx) => {
      const row = await tx.groups.findByIdForUpdate(id);
      this.writable(row, id, ifMatch);
      await this.keys.deleteGroup(id, ctx, tx);
      await this.enqueue(tx, id, 'group.deleted', { id, name: row!.displayName });
    });
  }

  // ---- helpers ------------------------------------------------------------------------------

  private writable(row: GroupRow | null, id: string, ifMatch: string | undefined): void {
    if (!row) throw new NotFoundError(`group ${id} not found`);
    if ((row.origin ?? 'scim') !== 'app') throw new IdpManagedGroupError(id);
    if (!ifMatchHolds(ifMatch, row.version)) throw new PreconditionFailedError(`group ${id} was changed since that version (now ${etagOf(row.version)}); read it again and retry`);
  }

  /** Member references to user ids; every one must be a live, provisioned user (422 naming the others). */
  private async resolve(refs: MemberRef[]): Promise<string[]> {
    if (refs.length === 0) return [];
    const ids = refs.flatMap((m) => ('id' in m ? [m.id] : []));
    const names = refs.flatMap((m) => ('userName' in m ? [m.userName.toLowerCase()] : []));
    const { byId, byName } = await new BackendQueries(this.store.dataSource.manager).liveUsers(ids, names);
    const unknown = refs.filter((m) => ('id' in m ? !byId.has(m.id) : !byName.has(m.userName.toLowerCase()))).map((m) => ('id' in m ? m.id : m.userName));
    if (unknown.length > 0) throw new UnknownMembersError(unknown);
    return [...new Set(refs.map((m) => ('id' in m ? m.id : byName.get(m.userName.toLowerCase())!)))];
  }

  private async render(r: Repos, id: string): Promise<Group> {
    const [row, keys] = await Promise.all([r.groups.findById(id), r.groups.findKeys(id)]);
    if (!row || !keys) throw new NotFoundError(`group ${id} not found`);
    return {
      id,
      name: row.displayName,
      origin: row.origin ?? 'scim',
      version: row.version,
      keyVersion: keys.keyVersion,
      keyAlgorithm: keys.keyAlg,
      publicKeyJwk: JSON.parse(keys.publicJwk) as Record<string, unknown>,
      privateKeyJwe: keys.privateJwe,
      wrappedMembershipKey: keys.wrappedMembershipKey,
      kekUri: keys.kekUri,
      members: await new BackendQueries(r.manager).members(id),
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  private async enqueue(tx: Repos, groupId: string, eventType: string, data: unknown): Promise<void> {
    if (this.options.outbox) await new OutboxRepository(tx.manager).enqueue({ resourceType: 'Group', resourceId: groupId, eventType, data, feedOnly: this.options.feedOnly });
  }
}
