import { randomBytes, randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { schemeOf } from '../../kms-adapters/types';
import type { UserKeyAlgorithm } from '../config/core';
import type { Repos, Store } from '../repositories/store';
import type { GroupRow, UserKeysRow, UserRow } from '../../entities';
import { nowIso } from '../../entities/columns';
import { AppError, BadRequestError, InactiveUserError, NotFoundError } from '../errors';
import { binding } from './binding';
import { generateKeyPair, sealToPublicKey, sealUnderSymmetricKey } from './jose-keys';
import type { GroupKeyView, GroupMembershipView, NewGroup, NewUser, OpContext, UserKeyBundle, UserKeyView } from './types';

export interface KeyServiceOptions {
  kekUri: string;
  kekMode: 'shared' | 'per-user';
  userKeyAlgorithm: UserKeyAlgorithm;
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
  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly options: KeyServiceOptions,
  ) {}

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
    const pair = await generateKeyPair(this.options.userKeyAlgorithm);
    const pk = randomBytes(KEY_BYTES);
    let privateJwe: string;
    let wrappedPasswordKey: string;
    try {
      privateJwe = await sealUnderSymmetricKey(pair.privateJwk, pk);
      wrappedPasswordKey = await this.audited(ctx, { action: 'user.provision', targetType: 'user', targetId: id, kekUri }, () =>
        this.kms.wrap(kekUri, pk, binding.passwordKey(id)),
      );
    } finally {
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
      publicJwk: JSON.stringify(pair.publicJwk),
      privateJwe,
      wrappedPasswordKey,
      kekUri,
      createdAt: now,
    };
    return { user, keys, publicJwk: pair.publicJwk };
  }

  /** Provisioning, phase 2: the rows and their audit event, in the caller's transaction or its own. */
  async commitUser(prepared: PreparedUser, ctx: OpContext, tx?: Repos): Promise<UserRow & { keys: UserKeyView }> {
    const { user, keys } = prepared;
    await this.inTx(tx, async (t) => {
      await t.users.insert(user, keys);
      if (keys.kekUri !== this.options.kekUri) await t.keks.setState(keys.kekUri, 'active');
      await t.audit.append({ ...ctx, action: 'user.provision', outcome: 'success', targetType: 'user', targetId: user.id, kekUri: keys.kekUri });
    });
    return { ...user, keys: { keyAlg: keys.keyAlg, publicJwk: prepared.publicJwk, privateJwe: keys.privateJwe, wrappedPasswordKey: keys.wrappedPasswordKey, kekUri: keys.kekUri } };
  }

  async provisionGroup(input: NewGroup, ctx: OpContext, tx?: Repos): Promise<GroupRow & { keys: GroupKeyView }> {
    const displayName = input.displayName?.trim();
    if (!displayName) throw new BadRequestError('displayName is required');
    const id = randomUUID();
    const kekUri = this.options.kekUri;
    const memberIds = [...new Set(input.memberIds ?? [])];
    const pair = await generateKeyPair(this.options.userKeyAlgorithm);
    const gmk = randomBytes(KEY_BYTES);
    const now = nowIso();
    const group: GroupRow = {
      id,
      displayName,
      displayNameNorm: displayName.toLowerCase(),
      externalId: input.externalId ?? null,
      scimAttributes: JSON.stringify(input.attributes ?? {}),
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
    try {
      const privateJwe = await sealUnderSymmetricKey(pair.privateJwk, gmk);
      const wrappedMembershipKey = await this.audited(ctx, { action: 'group.provision', targetType: 'group', targetId: id, kekUri }, () =>
        this.kms.wrap(kekUri, gmk, binding.membershipKey(id)),
      );
      const keys = { groupId: id, keyAlg: this.options.userKeyAlgorithm, publicJwk: JSON.stringify(pair.publicJwk), privateJwe, wrappedMembershipKey, kekUri, createdAt: now };
      await this.inTx(tx, async (t) => {
        await t.groups.insert(group, keys);
        await t.audit.append({ ...ctx, action: 'group.provision', outcome: 'success', targetType: 'group', targetId: id, kekUri });
        await this.sealMembers(t, id, gmk, memberIds, ctx);
      });
      return { ...group, keys: { keyAlg: keys.keyAlg, publicJwk: pair.publicJwk, privateJwe, wrappedMembershipKey, kekUri } };
    } finally {
      gmk.fill(0);
    }
  }

  /** Adds members with one KMS unwrap of the membership key for the whole batch. */
  async addMembers(groupId: string, userIds: string[], ctx: OpContext, tx?: Repos): Promise<string[]> {
    return this.inTx(tx, async (t) => {
      const keys = await t.groups.findKeys(groupId);
      if (!keys) throw new NotFoundError(`group ${groupId} not found`);
      const existing = new Set((await t.memberships.forGroup(groupId)).map((m) => m.userId));
      const toAdd = [...new Set(userIds)].filter((u) => !existing.has(u));
      if (toAdd.length === 0) return [];
      const gmk = await this.audited(ctx, { action: 'group.member.add', targetType: 'group', targetId: groupId, kekUri: keys.kekUri }, () =>
        this.kms.unwrapStored(keys.wrappedMembershipKey, binding.membershipKey(groupId)),
      );
      try {
        await this.sealMembers(t, groupId, gmk, toAdd, ctx);
      } finally {
        gmk.fill(0);
      }
      return toAdd;
    });
  }

  async removeMembers(groupId: string, userIds: string[], ctx: OpContext, tx?: Repos): Promise<number> {
    return this.inTx(tx, async (t) => {
      const removed = await t.memberships.deleteMany(groupId, [...new Set(userIds)]);
      for (const userId of userIds) {
        await t.audit.append({ ...ctx, action: 'group.member.remove', outcome: 'success', targetType: 'group', targetId: groupId, detail: { user: userId } });
      }
      return removed;
    });
  }

  private async sealMembers(t: Repos, groupId: string, gmk: Buffer, userIds: string[], ctx: OpContext): Promise<void> {
    if (userIds.length === 0) return;
    const keys = new Map((await t.users.findKeysMany(userIds)).map((k) => [k.userId, k]));
    const missing = userIds.filter((u) => !keys.has(u));
    if (missing.length > 0) throw new NotFoundError(`member ${missing[0]} is not a provisioned user`);
    const now = nowIso();
    const rows = await Promise.all(
      userIds.map(async (userId) => ({
        groupId,
        userId,
        memberJwe: await sealToPublicKey(gmk, JSON.parse(keys.get(userId)!.publicJwk) as JWK, { keyId: `group:${groupId}` }),
        createdAt: now,
      })),
    );
    await t.memberships.insertMany(rows);
    for (const userId of userIds) {
      await t.audit.append({ ...ctx, action: 'group.member.add', outcome: 'success', targetType: 'group', targetId: groupId, detail: { user: userId } });
    }
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
    const groups: GroupMembershipView[] = (await this.store.repos.memberships.withGroupKeysForUser(userId)).map((m) => ({
      ...m,
      groupPublicJwk: JSON.parse(m.groupPublicJwk) as JWK,
    }));
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

  private async requireActiveUserKeys(userId: string, ctx: OpContext, action: string) {
    try {
      const user = await this.requireUser(this.store.repos, userId, { allowInactive: false });
      const keys = await this.store.repos.users.findKeys(userId);
      if (!keys) throw new NotFoundError(`user ${userId} has no keys`);
      return { user, keys };
    } catch (err) {
      await this.auditFailure(ctx, { action, targetType: 'user', targetId: userId }, err);
      throw err;
    }
  }

  /**
   * Runs a KMS call; on failure records a refused/failed audit event (its own write: the change
   * it would have recorded did not happen) and rethrows. With `recordSuccess`, also records
   * success — for reads, which have no transaction of their own.
   */
  private async audited<T>(
    ctx: OpContext,
    e: { action: string; targetType: string; targetId: string; kekUri?: string },
    fn: () => Promise<T>,
    recordSuccess = false,
  ): Promise<T> {
    let result: T;
    try {
      result = await fn();
    } catch (err) {
      await this.auditFailure(ctx, e, err);
      throw err;
    }
    if (recordSuccess) {
      try {
        await this.store.writeNow((t) => t.audit.append({ ...ctx, ...e, outcome: 'success' }));
      } catch (err) {
        if (Buffer.isBuffer(result)) result.fill(0); // never return a key whose use was not recorded
        throw err;
      }
    }
    return result;
  }

  private async auditFailure(ctx: OpContext, e: { action: string; targetType: string; targetId: string; kekUri?: string }, err: unknown): Promise<void> {
    const code = err instanceof AppError ? err.code : 'internal_error';
    const outcome = err instanceof AppError && err.kind === 'user' ? 'refused' : 'failure';
    await this.store.writeRegardless((t) => t.audit.append({ ...ctx, ...e, outcome, detail: { error: code } })).catch(() => undefined);
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
