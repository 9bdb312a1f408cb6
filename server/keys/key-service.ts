import { randomBytes, randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { schemeOf } from '../../kms-adapters/types';
import type { UserKeyAlgorithm } from '../config/core';
import type { Repos, Store } from '../repositories/store';
import { auditRow } from '../repositories/audit';
import type { MembershipVersion } from '../repositories/groups';
import type { GroupRow, UserKeysRow, UserRow } from '../../entities';
import { nowIso } from '../../entities/columns';
import { BadRequestError, InactiveUserError, NotFoundError } from '../errors';
import { audited, auditFailure, type AuditTarget } from './audited';
import { binding } from './binding';
import { GroupKeyService, type GroupRekeyMode } from './group-key-service';
import { generateKeyPair, sealUnderSymmetricKey } from './jose-keys';
import type { GroupKeyView, GroupMembershipView, GroupKeyVersionView, NewGroup, NewUser, OpContext, UserKeyBundle, UserKeyView } from './types';

export interface KeyServiceOptions {
  kekUri: string;
  kekMode: 'shared' | 'per-user';
  userKeyAlgorithm: UserKeyAlgorithm;
  /** CS_GROUP_REKEY (default on-removal). */
  groupRekey?: GroupRekeyMode;
}

const KEY_BYTES = 32;

/** A user whose keys are generated and wrapped but not yet stored (see prepareUser). */
export interface PreparedUser {
  user: UserRow;
  keys: UserKeysRow;
  publicJwk: JWK;
}

/**
 * The heart of Crypto Server: generates, wraps and hands out keys. Plain TypeScript, no HTTP.
 * Order of work in every write: generate and KMS-wrap first (nothing persisted yet), then one
 * database transaction with the rows and the audit event. A KMS fault writes nothing; a database
 * fault discards material that was never returned. Plaintext keys are zeroed in `finally`.
 * Methods taking `tx` join the caller's transaction (one SCIM request = one transaction).
 */
export class KeyService {
  /** Group keys, memberships and key versions. */
  readonly groups: GroupKeyService;

  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly options: KeyServiceOptions,
  ) {
    this.groups = new GroupKeyService(store, kms, { kekUri: options.kekUri, userKeyAlgorithm: options.userKeyAlgorithm, rekey: options.groupRekey ?? 'on-removal' });
  }

  private inTx<T>(tx: Repos | undefined, fn: (tx: Repos) => Promise<T>): Promise<T> {
    return tx ? fn(tx) : this.store.transaction(fn);
  }

  // ---- provisioning -------------------------------------------------------------------------

  async provisionUser(input: NewUser, ctx: OpContext, tx?: Repos): Promise<UserRow & { keys: UserKeyView }> {
    return this.commitUser(await this.prepareUser(input, ctx), ctx, tx);
  }

  /**
   * Provisioning, phase 1 — outside any transaction: generates the keys and has the KMS wrap the
   * password key, so no database transaction (or SQLite's single connection) waits on the KMS.
   * Nothing is persisted, except the `pending` record of a per-user KEK.
   */
  async prepareUser(input: NewUser, ctx: OpContext): Promise<PreparedUser> {
    const userName = input.userName?.trim();
    if (!userName) throw new BadRequestError('userName is required');
    const id = randomUUID();
    const kekUri = await this.kekFor('user', id);
    const pk = randomBytes(KEY_BYTES);
    let privateJwe: string;
    let wrappedPasswordKey: string;
    let publicJwk: JWK;
    try {
      // The KMS wraps the password key while the key pair is generated and sealed under it (neither
      // needs the other): a create waits for the slower of the two, not for both in turn.
      const [wrapped, sealed] = await Promise.allSettled([
        this.audited(ctx, { action: 'user.provision', targetType: 'user', targetId: id, kekUri }, () => this.kms.wrap(kekUri, pk, binding.passwordKey(id))),
        generateKeyPair(this.options.userKeyAlgorithm).then(async (pair) => ({ publicJwk: pair.publicJwk, privateJwe: await sealUnderSymmetricKey(pair.privateJwk, pk) })),
      ]);
      if (wrapped.status === 'rejected') throw wrapped.reason;
      if (sealed.status === 'rejected') throw sealed.reason;
      wrappedPasswordKey = wrapped.value;
      ({ privateJwe, publicJwk } = sealed.value);
    } finally {
      // Both have settled: nothing reads the password key any more.
      pk.fill(0);
    }
    const now = nowIso();
    const user: UserRow = {
      id,
      userName,
      userNameNorm: userName.toLowerCase(),
      externalId: input.externalId ?? null,
      displayName: input.displayName ?? null,
      email: input.email ?? null,
      givenName: input.givenName ?? null,
      familyName: input.familyName ?? null,
      active: input.active ?? true,
      scimAttributes: JSON.stringify(input.attributes ?? {}),
      createdAt: now,
      updatedAt: now,
      deletedAt: null,
      version: 1,
    };
    const keys: UserKeysRow = {
      userId: id,
      keyAlg: this.options.userKeyAlgorithm,
      publicJwk: JSON.stringify(publicJwk),
      privateJwe,
      wrappedPasswordKey,
      kekUri,
      createdAt: now,
    };
    return { user, keys, publicJwk };
  }

  /** Provisioning, phase 2: the rows and their audit event, in the caller's transaction or its own. */
  async commitUser(prepared: PreparedUser, ctx: OpContext, tx?: Repos): Promise<UserRow & { keys: UserKeyView }> {
    const { user, keys } = prepared;
    const event = { ...ctx, action: 'user.provision', outcome: 'success' as const, targetType: 'user', targetId: user.id, kekUri: keys.kekUri };
    if (!tx && keys.kekUri === this.options.kekUri && !this.store.inTransaction) {
      // The common create (shared KEK, nothing else in the transaction): straight on the driver.
      await this.store.createUser(user, keys, auditRow(event));
    } else {
      await this.inTx(tx, async (t) => {
        await t.users.insert(user, keys);
        if (keys.kekUri !== this.options.kekUri) await t.keks.setState(keys.kekUri, 'active');
        await t.audit.append(event);
      });
    }
    return { ...user, keys: { keyAlg: keys.keyAlg, publicJwk: prepared.publicJwk, privateJwe: keys.privateJwe, wrappedPasswordKey: keys.wrappedPasswordKey, kekUri: keys.kekUri } };
  }

  /** Creates a group with its keys and first members (KMS work before the transaction). */
  provisionGroup(input: NewGroup, ctx: OpContext): Promise<GroupRow & { keys: GroupKeyView }> {
    return this.groups.provision(input, ctx, async (_tx, g) => {
      const { keys, publicJwk, ...group } = g;
      return { ...group, keys: { keyAlg: keys.keyAlg, publicJwk, privateJwe: keys.privateJwe, wrappedMembershipKey: keys.wrappedMembershipKey, kekUri: keys.kekUri, keyVersion: keys.keyVersion } };
    });
  }

  /** Adds members: one KMS unwrap per key version for the whole batch. Returns who was added. */
  async addMembers(groupId: string, userIds: string[], ctx: OpContext): Promise<string[]> {
    return this.groups.change(groupId, { kind: 'delta', add: userIds, remove: [] }, ctx, this.groups.rekeyMode, async (_tx, r) => r.added);
  }

  /** Removes members (and their JWEs of every version); rotates the group per CS_GROUP_REKEY. */
  async removeMembers(groupId: string, userIds: string[], ctx: OpContext): Promise<number> {
    return this.groups.change(groupId, { kind: 'delta', add: [], remove: userIds }, ctx, this.groups.rekeyMode, async (_tx, r) => r.removed.length);
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  async setUserActive(userId: string, active: boolean, ctx: OpContext, tx?: Repos): Promise<void> {
    await this.inTx(tx, async (t) => {
      await this.requireUser(t, userId, { allowInactive: true });
      await t.users.update(userId, { active }, nowIso());
      await t.audit.append({ ...ctx, action: active ? 'user.activate' : 'user.deactivate', outcome: 'success', targetType: 'user', targetId: userId });
    });
  }

  /** Marks a user deleted and inactive; key material stays until purgeUser (retention). */
  async softDeleteUser(userId: string, ctx: OpContext, tx?: Repos): Promise<void> {
    await this.inTx(tx, async (t) => {
      await this.requireUser(t, userId, { allowInactive: true });
      const now = nowIso();
      await t.users.update(userId, { active: false, deletedAt: now }, now);
      await t.audit.append({ ...ctx, action: 'user.delete', outcome: 'success', targetType: 'user', targetId: userId });
    });
  }

  /** Removes a user with their keys and memberships for good. */
  async purgeUser(userId: string, ctx: OpContext, tx?: Repos): Promise<void> {
    await this.inTx(tx, async (t) => {
      const keys = await t.users.findKeys(userId);
      await t.users.delete(userId);
      if (keys && keys.kekUri !== this.options.kekUri) await t.keks.setState(keys.kekUri, 'retired');
      await t.audit.append({ ...ctx, action: 'user.purge', outcome: 'success', targetType: 'user', targetId: userId, kekUri: keys?.kekUri });
    });
  }

  async deleteGroup(groupId: string, ctx: OpContext, tx?: Repos): Promise<void> {
    await this.inTx(tx, async (t) => {
      if (!(await t.groups.findById(groupId))) throw new NotFoundError(`group ${groupId} not found`);
      await t.groups.delete(groupId);
      await t.audit.append({ ...ctx, action: 'group.delete', outcome: 'success', targetType: 'group', targetId: groupId });
    });
  }

  // ---- the signed-in user's keys ------------------------------------------------------------

  /**
   * Unwraps a password key for `userId` — the authenticated caller, never a client-chosen id.
   * `envelope` is a blob the client brings; without it, the stored one. Caller zeroes the result.
   */
  async unwrapPasswordKey(userId: string, ctx: OpContext, envelope?: string): Promise<Buffer> {
    const { keys } = await this.requireActiveUserKeys(userId, ctx, 'password-key.unwrap');
    const blob = envelope ?? keys.wrappedPasswordKey;
    return this.audited(ctx, { action: 'password-key.unwrap', targetType: 'user', targetId: userId, kekUri: this.kekUriOf(blob) }, () =>
      envelope === undefined
        ? this.kms.unwrapStored(blob, binding.passwordKey(userId))
        : this.kms.unwrap(blob, binding.passwordKey(userId), [keys.kekUri]),
      true,
    );
  }

  async getUserKeyBundle(userId: string, ctx: OpContext): Promise<UserKeyBundle> {
    const { keys } = await this.requireActiveUserKeys(userId, ctx, 'key-bundle.get');
    const groups = groupViews(await this.store.repos.memberships.versionsForUser(userId));
    const passwordKey = await this.audited(ctx, { action: 'key-bundle.get', targetType: 'user', targetId: userId, kekUri: keys.kekUri }, () =>
      this.kms.unwrapStored(keys.wrappedPasswordKey, binding.passwordKey(userId)),
      true,
    );
    return { userId, ...this.userKeyView(keys), passwordKey, groups };
  }

  async wrapDataKey(userId: string, plaintext: Uint8Array, ctx: OpContext, label?: string): Promise<string> {
    if (plaintext.length < 16 || plaintext.length > 64) throw new BadRequestError('a data key must be 16 to 64 bytes');
    await this.requireActiveUserKeys(userId, ctx, 'data-key.wrap');
    const kekUri = this.options.kekUri;
    return this.audited(ctx, { action: 'data-key.wrap', targetType: 'user', targetId: userId, kekUri }, () =>
      this.kms.wrap(kekUri, plaintext, binding.dataKey(userId, label)),
      true,
    );
  }

  async unwrapDataKey(userId: string, envelope: string, ctx: OpContext, label?: string): Promise<Buffer> {
    const { keys } = await this.requireActiveUserKeys(userId, ctx, 'data-key.unwrap');
    return this.audited(ctx, { action: 'data-key.unwrap', targetType: 'user', targetId: userId, kekUri: this.kekUriOf(envelope) }, () =>
      this.kms.unwrap(envelope, binding.dataKey(userId, label), [keys.kekUri]),
      true,
    );
  }

  // ---- helpers ------------------------------------------------------------------------------

  private userKeyView(keys: { keyAlg: string; publicJwk: string; privateJwe: string; wrappedPasswordKey: string; kekUri: string }): UserKeyView {
    return { keyAlg: keys.keyAlg, publicJwk: JSON.parse(keys.publicJwk), privateJwe: keys.privateJwe, wrappedPasswordKey: keys.wrappedPasswordKey, kekUri: keys.kekUri };
  }

  private kekUriOf(envelope: string): string | undefined {
    try {
      return this.kms.kekUriOf(envelope);
    } catch {
      return undefined;
    }
  }

  private async requireUser(t: Repos, userId: string, opts: { allowInactive: boolean }): Promise<UserRow> {
    const user = await t.users.findById(userId);
    if (!user || user.deletedAt) throw new NotFoundError(`user ${userId} not found`);
    if (!opts.allowInactive && !user.active) throw new InactiveUserError();
    return user;
  }

  /**
   * The caller's active flag and keys, read fresh from the database on every call (one raw
   * statement, hot-queries.ts): nothing is cached, so a SCIM deactivation committed by any worker
   * or replica refuses this user's next request.
   */
  private async requireActiveUserKeys(userId: string, ctx: OpContext, action: string) {
    try {
      const found = await this.store.hot.userWithKeys(userId);
      if (!found || found.deletedAt) throw new NotFoundError(`user ${userId} not found`);
      if (!found.active) throw new InactiveUserError();
      if (!found.keys) throw new NotFoundError(`user ${userId} has no keys`);
      return { keys: found.keys };
    } catch (err) {
      await this.auditFailure(ctx, { action, targetType: 'user', targetId: userId }, err);
      throw err;
    }
  }

  private audited<T>(ctx: OpContext, e: AuditTarget, fn: () => Promise<T>, recordSuccess = false): Promise<T> {
    return audited(this.store, ctx, e, fn, recordSuccess);
  }

  private auditFailure(ctx: OpContext, e: AuditTarget, err: unknown): Promise<void> {
    return auditFailure(this.store, ctx, e, err);
  }

  /** Shared KEK, or a new per-user KEK recorded as pending before any use. */
  private async kekFor(ownerType: 'user', ownerId: string): Promise<string> {
    const shared = this.options.kekUri;
    if (this.options.kekMode === 'shared') return shared;
    const adapter = this.kms.forUri(shared);
    if (!adapter.createKey) throw new BadRequestError(`CS_KEK_MODE=per-user needs an adapter that can create keys; ${adapter.scheme} cannot`);
    const uri = await adapter.createKey(`${ownerType}-${ownerId}`);
    await this.store.writeNow((t) => t.keks.insert({ uri, scheme: schemeOf(uri) ?? adapter.scheme, ownerType, ownerId, state: 'pending', createdAt: nowIso() }));
    return uri;
  }
}

/** Rows of every version (newest first per group) → one membership per group, current version on top. */
function groupViews(rows: MembershipVersion[]): GroupMembershipView[] {
  const out: GroupMembershipView[] = [];
  for (const r of rows) {
    const v: GroupKeyVersionView = { version: r.version, memberJwe: r.memberJwe, groupPublicJwk: JSON.parse(r.publicJwk) as JWK, groupPrivateJwe: r.privateJwe };
    let m = out[out.length - 1];
    if (m?.groupId !== r.groupId) {
      m = { groupId: r.groupId, displayName: r.displayName, memberJwe: '', groupPublicJwk: {}, groupPrivateJwe: '', keyVersion: r.currentVersion, versions: [] };
      out.push(m);
    }
    m.versions.push(v);
    if (r.version === r.currentVersion) Object.assign(m, { memberJwe: v.memberJwe, groupPublicJwk: v.groupPublicJwk, groupPrivateJwe: v.groupPrivateJwe });
  }
  // A member always holds the current version; a group without it would be a bug, never shown half.
  return out.filter((m) => m.memberJwe !== '');
}
