import { randomBytes, randomUUID } from 'node:crypto';
import type { JWK } from 'jose';
import type { KmsRegistry } from '../../kms-adapters/registry';
import type { GroupKeysRow, GroupKeyVersionRow, GroupMemberKeyRow, GroupRow } from '../../entities';
import { nowIso } from '../../entities/columns';
import type { UserKeyAlgorithm } from '../config/core';
import type { Repos, Store } from '../repositories/store';
import { AppError, BadRequestError, NotFoundError } from '../errors';
import { audited } from './audited';
import { binding } from './binding';
import { generateKeyPair, sealToPublicKey, sealUnderSymmetricKey } from './jose-keys';
import type { NewGroup, OpContext } from './types';
import { GroupTurns } from './group-turns';
import { forEachLimited } from './in-flight';

/** A membership change: some members in and out, or the whole list (PUT, replace of `members`). */
export type MemberChange = { kind: 'delta'; add: string[]; remove: string[] } | { kind: 'set'; members: string[] };

/** `on-removal`: removing a member rotates the group's keys; `manual`: only `force` does (the CLI). */
export type GroupRekeyMode = 'on-removal' | 'manual';
export type RotationPolicy = GroupRekeyMode | 'force';

export interface GroupChangeResult {
  groupId: string;
  added: string[];
  removed: string[];
  keyVersion: number;
  /** Set when this change made a new key version. */
  rotated?: { version: number; keyAlg: string; publicJwk: JWK; kekUri: string; members: number };
}

/** The group kept changing under us: every prepared attempt was overtaken. The client retries. */
export class GroupBusyError extends AppError {
  readonly code = 'group_busy';
  readonly status = 503;
  constructor(groupId: string) {
    super(`group ${groupId} is being changed by other requests; retry shortly`, { retryAfter: 1 });
  }
}

const KEY_BYTES = 32;
const MAX_ATTEMPTS = 4;
const STALE = Symbol('stale');
/** Thrown inside the transaction to roll back what was written before the prepared material turned out stale. */
class Overtaken extends Error {}
const unique = (xs: string[]): string[] => [...new Set(xs)];

/**
 * Seals in flight at once. Node runs them on its 4-thread crypto pool, so more buys no speed;
 * starting all ~1,000 of a rotation at once kept every one's intermediates alive across
 * collections, and the garbage collector's share of a rotation grew with the group (issue 10).
 */
const SEALS_IN_FLIGHT = 16;

/** Who a change adds and removes; `members`: every current member, when the plan had to read them. */
interface Plan {
  added: string[];
  removed: string[];
  members?: string[];
}

/** Phase-1 work for one group: everything that needs the KMS, done with no transaction open. */
interface Prepared {
  groupId: string;
  /** The current key version phase 1 saw; phase 2 commits only if it is still current. */
  base: number;
  versions: GroupKeyVersionRow[];
  /** Every version's plaintext membership key, when members are added (zeroed in `finally`). */
  gmks: Map<number, Buffer>;
  /** user → version → member JWE. */
  sealed: Map<string, Map<number, string>>;
  next?: { keys: GroupKeysRow; gmk: Buffer; publicJwk: JWK; sealed: Map<string, string> };
}

function zero(p: Prepared): void {
  for (const k of p.gmks.values()) k.fill(0);
  p.next?.gmk.fill(0);
}

/**
 * Group keys and memberships, with key versions (docs/keys.md). Every write runs in two phases:
 * prepare — unwrap/wrap with the KMS and seal JWEs, with NO transaction open, so a hung KMS never
 * holds a connection, a lock or SQLite's writer — then commit — one transaction with the group row
 * locked that re-reads the state, checks the prepared material still covers it, and writes. If a
 * concurrent change overtook it (new key version, a new member nothing was unwrapped for), the
 * prepared material is discarded and phase 1 runs again, a bounded number of times.
 */
export class GroupKeyService {
  /** Per group, the end of the queue of rotating writes in this process. */
  private readonly turns = new Map<string, Promise<void>>();
  /** Then across processes (worker processes, replicas): one lease per group in the database. */
  private readonly sharedTurns: GroupTurns;

  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly options: { kekUri: string; userKeyAlgorithm: UserKeyAlgorithm; rekey: GroupRekeyMode },
  ) {
    this.sharedTurns = new GroupTurns(store);
  }

  get rekeyMode(): GroupRekeyMode {
    return this.options.rekey;
  }

  // ---- create -------------------------------------------------------------------------------

  async provision<T>(input: NewGroup, ctx: OpContext, commit: (tx: Repos, created: GroupRow & { keys: GroupKeysRow; publicJwk: JWK }) => Promise<T>): Promise<T> {
    const displayName = input.displayName?.trim();
    if (!displayName) throw new BadRequestError('displayName is required');
    const id = randomUUID();
    const kekUri = this.options.kekUri;
    const memberIds = unique(input.memberIds ?? []);
    const publicKeys = await this.requireLive(this.store.repos, memberIds);
    const pair = await generateKeyPair(this.options.userKeyAlgorithm);
    const gmk = randomBytes(KEY_BYTES);
    const now = nowIso();
    let keys: GroupKeysRow;
    const sealed = new Map<string, string>();
    try {
      const privateJwe = await sealUnderSymmetricKey(pair.privateJwk, gmk);
      const wrappedMembershipKey = await audited(this.store, ctx, { action: 'group.provision', targetType: 'group', targetId: id, kekUri }, () =>
        this.kms.wrap(kekUri, gmk, binding.membershipKey(id, 1)),
      );
      keys = { groupId: id, keyAlg: this.options.userKeyAlgorithm, publicJwk: JSON.stringify(pair.publicJwk), privateJwe, wrappedMembershipKey, kekUri, createdAt: now, keyVersion: 1 };
      await this.sealTo(gmk, id, publicKeys, sealed);
    } finally {
      gmk.fill(0);
    }
    const group: GroupRow = {
      id,
      displayName,
      // The unique key is the IdP's namespace: an application-managed group (a shared folder) may share any name.
      displayNameNorm: input.origin === 'app' ? `~app~${id}` : displayName.toLowerCase(),
      externalId: input.externalId ?? null,
      scimAttributes: JSON.stringify(input.attributes ?? {}),
      createdAt: now,
      updatedAt: now,
      version: 1,
      ...(input.origin ? { origin: input.origin } : {}),
    };
    return this.store.transaction(async (tx) => {
      await this.requireLive(tx, memberIds); // none deleted meanwhile
      await tx.groups.insert(group, keys);
      await tx.audit.append({ ...ctx, action: 'group.provision', outcome: 'success', targetType: 'group', targetId: id, kekUri });
      const rows = memberIds.map((userId) => ({ groupId: id, userId, memberJwe: sealed.get(userId)!, createdAt: now }));
      await tx.memberships.insertMany(rows);
      await tx.memberships.insertKeys(rows.map((r) => ({ ...r, version: 1 })));
      await this.auditMembers(tx, ctx, id, 'group.member.add', memberIds);
      return commit(tx, { ...group, keys, publicJwk: pair.publicJwk });
    });
  }

  // ---- change -------------------------------------------------------------------------------

  /**
   * Applies a membership change (and `policy`'s rotation) to one group; `commit` runs inside the
   * same transaction (the SCIM layer's row update, audit and outbox event).
   */
  async change<T>(groupId: string, change: MemberChange, ctx: OpContext, policy: RotationPolicy, commit: (tx: Repos, r: GroupChangeResult) => Promise<T>): Promise<T> {
    const mayRotate = policy === 'force' || (policy === 'on-removal' && (change.kind === 'set' || change.remove.length > 0));
    // Rotations of one group take turns in this process: racing, all but one would be overtaken
    // and redo their KMS work. Plain adds never wait (they only conflict with a rotation).
    return mayRotate ? this.oneAtATime([groupId], () => this.changeNow(groupId, change, ctx, policy, commit, true)) : this.changeNow(groupId, change, ctx, policy, commit, false);
  }

  private async changeNow<T>(groupId: string, change: MemberChange, ctx: OpContext, policy: RotationPolicy, commit: (tx: Repos, r: GroupChangeResult) => Promise<T>, ownTurn: boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const p = await this.prepare(groupId, change, policy, ctx);
      try {
        return await this.store.transaction(async (tx) => {
          const r = await this.apply(tx, p, change, policy, ctx);
          if (r === STALE) throw new Overtaken();
          return commit(tx, r);
        });
      } catch (err) {
        if (!(err instanceof Overtaken)) throw err;
      } finally {
        zero(p);
      }
      // Overtaken by a rotation: try again in turn with this process's rotations of the group.
      if (!ownTurn) return this.oneAtATime([groupId], () => this.changeNow(groupId, change, ctx, policy, commit, true));
      if (attempt >= MAX_ATTEMPTS) throw new GroupBusyError(groupId);
    }
  }

  /** Rotates one group now, whatever the mode (the CLI's `groups rotate`). */
  rotate<T>(groupId: string, ctx: OpContext, commit: (tx: Repos, r: GroupChangeResult) => Promise<T>): Promise<T> {
    return this.change(groupId, { kind: 'delta', add: [], remove: [] }, ctx, 'force', commit);
  }

  /**
   * Takes a user out of every group (user deletion), rotating each group per the mode: one KMS
   * wrap per group, all before the transaction; everything commits with `commit` in one transaction.
   */
  async removeUserEverywhere<T>(userId: string, ctx: OpContext, commit: (tx: Repos, r: GroupChangeResult[]) => Promise<T>): Promise<T> {
    const groups = await this.store.repos.memberships.groupIdsOf(userId);
    return this.oneAtATime(this.options.rekey === 'on-removal' ? groups : [], () => this.removeUserNow(userId, ctx, commit));
  }

  private async removeUserNow<T>(userId: string, ctx: OpContext, commit: (tx: Repos, r: GroupChangeResult[]) => Promise<T>): Promise<T> {
    const change: MemberChange = { kind: 'delta', add: [], remove: [userId] };
    const policy = this.options.rekey;
    for (let attempt = 1; ; attempt++) {
      const groupIds = await this.store.repos.memberships.groupIdsOf(userId);
      const prepared: Prepared[] = [];
      try {
        for (const g of groupIds) {
          try {
            prepared.push(await this.prepare(g, change, policy, ctx));
          } catch (err) {
            if (!(err instanceof NotFoundError)) throw err; // the group was deleted meanwhile
          }
        }
        // Groups are locked first (in id order), then `commit` locks the user, like every other path.
        return await this.store.transaction(async (tx) => {
          const results: GroupChangeResult[] = [];
          for (const p of prepared) {
            const r = await this.apply(tx, p, change, policy, ctx, true);
            if (r === STALE) throw new Overtaken();
            results.push(r);
          }
          const value = await commit(tx, results);
          // Joined another group since phase 1 (seen once the user row is locked): not prepared, redo.
          if ((await tx.memberships.groupIdsOf(userId)).length > 0) throw new Overtaken();
          return value;
        });
      } catch (err) {
        if (!(err instanceof Overtaken)) throw err;
      } finally {
        prepared.forEach(zero);
      }
      if (attempt >= MAX_ATTEMPTS) throw new GroupBusyError(groupIds[0] ?? userId);
    }
  }

  /**
   * Runs `fn` holding this process's turn for each group (taken in id order, so holders never wait
   * on each other in a cycle). The turns are given back before it returns: a process that ends
   * right after (the CLI's `groups rotate`, a server shutting down) must not leave a lease row that
   * keeps every other process's rotation of the group waiting until it runs out.
   */
  private async oneAtATime<T>(groupIds: string[], fn: () => Promise<T>): Promise<T> {
    const releases: (() => Promise<void>)[] = [];
    try {
      for (const id of [...new Set(groupIds)].sort()) releases.push(await this.turn(id));
      return await fn();
    } finally {
      for (const release of releases.reverse()) await release();
    }
  }

  private async turn(groupId: string): Promise<() => Promise<void>> {
    const before = this.turns.get(groupId) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.turns.set(groupId, tail);
    await before;
    const done = () => {
      release();
      if (this.turns.get(groupId) === tail) this.turns.delete(groupId);
    };
    let giveBack: () => Promise<void>;
    try {
      giveBack = await this.sharedTurns.take(groupId);
    } catch (err) {
      done();
      throw err;
    }
    // The lease row goes first; if that write fails, the lease runs out by itself.
    return () => giveBack().catch(() => undefined).finally(done);
  }

  // ---- phases -------------------------------------------------------------------------------

  private rotates(policy: RotationPolicy, removed: string[]): boolean {
    return policy === 'force' || (policy === 'on-removal' && removed.length > 0);
  }

  /** Who is added and removed, against the state `r` sees. A delta looks up only the ids it names; a set reads (and returns) every member. */
  private async plan(r: Repos, groupId: string, change: MemberChange): Promise<Plan> {
    if (change.kind === 'delta') {
      const add = unique(change.add);
      const adding = new Set(add);
      const remove = unique(change.remove).filter((u) => !adding.has(u));
      const present = await r.memberships.membersAmong(groupId, [...add, ...remove]);
      return { added: add.filter((u) => !present.has(u)), removed: remove.filter((u) => present.has(u)) };
    }
    const current = await r.memberships.memberIds(groupId);
    const members = new Set(current);
    const want = unique(change.members);
    const wanted = new Set(want);
    return { added: want.filter((u) => !members.has(u)), removed: current.filter((u) => !wanted.has(u)), members: current };
  }

  private async prepare(groupId: string, change: MemberChange, policy: RotationPolicy, ctx: OpContext): Promise<Prepared> {
    const r = this.store.repos;
    const keys = await r.groups.findKeys(groupId);
    if (!keys) throw new NotFoundError(`group ${groupId} not found`);
    const plan = await this.plan(r, groupId, change);
    const p: Prepared = { groupId, base: keys.keyVersion, versions: [], gmks: new Map(), sealed: new Map() };
    try {
      if (plan.added.length > 0) {
        const publicKeys = await this.requireLive(r, plan.added);
        // A new member reads the group's existing data: one KMS unwrap per version.
        p.versions = await r.groups.versions(groupId);
        for (const v of p.versions) {
          const gmk = await audited(this.store, ctx, { action: 'group.member.add', targetType: 'group', targetId: groupId, kekUri: v.kekUri }, () =>
            this.kms.unwrapStored(v.wrappedMembershipKey, binding.membershipKey(groupId, v.version)),
          );
          p.gmks.set(v.version, gmk);
        }
        await this.sealVersions(p, publicKeys);
      }
      if (this.rotates(policy, plan.removed)) p.next = await this.prepareNext(r, keys, plan, ctx);
      return p;
    } catch (err) {
      zero(p);
      throw err;
    }
  }

  /** A new version: new key pair and membership key, ONE KMS wrap, sealed to every remaining member. */
  private async prepareNext(r: Repos, current: GroupKeysRow, plan: Plan, ctx: OpContext): Promise<Prepared['next']> {
    const groupId = current.groupId;
    const version = current.keyVersion + 1;
    const kekUri = this.options.kekUri;
    const pair = await generateKeyPair(this.options.userKeyAlgorithm);
    const gmk = randomBytes(KEY_BYTES);
    try {
      const privateJwe = await sealUnderSymmetricKey(pair.privateJwk, gmk);
      const wrappedMembershipKey = await audited(this.store, ctx, { action: 'group.key.rotate', targetType: 'group', targetId: groupId, kekUri }, () =>
        this.kms.wrap(kekUri, gmk, binding.membershipKey(groupId, version)),
      );
      const removed = new Set(plan.removed);
      const remaining = unique([...(plan.members ?? (await r.memberships.memberIds(groupId))).filter((u) => !removed.has(u)), ...plan.added]);
      const sealed = new Map<string, string>();
      await this.sealTo(gmk, groupId, await r.memberships.livePublicKeys(remaining), sealed);
      const keys: GroupKeysRow = { groupId, keyAlg: this.options.userKeyAlgorithm, publicJwk: JSON.stringify(pair.publicJwk), privateJwe, wrappedMembershipKey, kekUri, createdAt: nowIso(), keyVersion: version };
      return { keys, gmk, publicJwk: pair.publicJwk, sealed };
    } catch (err) {
      gmk.fill(0);
      throw err;
    }
  }

  /**
   * Phase 2, in the transaction: lock, re-read, check the prepared material covers the fresh
   * state, write. No KMS call here — sealing to a public key is local.
   */
  private async apply(tx: Repos, p: Prepared, change: MemberChange, policy: RotationPolicy, ctx: OpContext, tolerateMissing = false): Promise<GroupChangeResult | typeof STALE> {
    const groupId = p.groupId;
    if (!(await tx.groups.findByIdForUpdate(groupId))) {
      if (tolerateMissing) return { groupId, added: [], removed: [], keyVersion: p.base };
      throw new NotFoundError(`group ${groupId} not found`);
    }
    const keys = await tx.groups.findKeys(groupId);
    if (!keys || keys.keyVersion !== p.base) return STALE;
    const plan = await this.plan(tx, groupId, change);
    const rotate = this.rotates(policy, plan.removed);
    if (rotate && !p.next) return STALE;
    if (plan.added.length > 0) {
      const publicKeys = await this.requireLive(tx, plan.added);
      const missing = new Map([...publicKeys].filter(([u]) => !p.sealed.has(u)));
      if (missing.size > 0) {
        if (p.gmks.size === 0) return STALE; // nothing unwrapped to seal with
        await this.sealVersions(p, missing);
      }
    }
    const now = nowIso();
    const removed = [...plan.removed];
    let remaining: string[] = [];
    if (rotate) {
      const next = p.next!;
      const out = new Set(plan.removed);
      const wanted = unique([...(plan.members ?? (await tx.memberships.memberIds(groupId))).filter((u) => !out.has(u)), ...plan.added]);
      const live = await tx.memberships.livePublicKeys(wanted);
      // Members whose user was deleted are not sealed into the new version: they leave now.
      const adding = new Set(plan.added);
      for (const u of wanted) if (!live.has(u) && !adding.has(u)) removed.push(u);
      const unsealed = new Map([...live].filter(([u]) => !next.sealed.has(u)));
      await this.sealTo(next.gmk, groupId, unsealed, next.sealed);
      remaining = [...live.keys()];
    }
    if (removed.length > 0) await tx.memberships.deleteMany(groupId, removed);
    if (plan.added.length > 0) {
      const rows = plan.added.map((userId) => ({ groupId, userId, memberJwe: p.sealed.get(userId)!.get(p.base)!, createdAt: now }));
      await tx.memberships.insertMany(rows);
      const keyRows: GroupMemberKeyRow[] = [];
      for (const userId of plan.added) for (const [version, memberJwe] of p.sealed.get(userId)!) keyRows.push({ groupId, userId, version, memberJwe, createdAt: now });
      await tx.memberships.insertKeys(keyRows);
    }
    await this.auditMembers(tx, ctx, groupId, 'group.member.remove', removed);
    await this.auditMembers(tx, ctx, groupId, 'group.member.add', plan.added);
    const result: GroupChangeResult = { groupId, added: plan.added, removed, keyVersion: keys.keyVersion };
    if (rotate) {
      const next = p.next!;
      await tx.groups.addVersion(next.keys);
      const rows = remaining.map((userId) => ({ groupId, userId, memberJwe: next.sealed.get(userId)!, createdAt: now }));
      await tx.memberships.setCurrentJwes(rows);
      await tx.memberships.insertKeys(rows.map((r) => ({ ...r, version: next.keys.keyVersion })));
      await tx.audit.append({
        ...ctx, action: 'group.key.rotate', outcome: 'success', targetType: 'group', targetId: groupId, kekUri: next.keys.kekUri,
        detail: { version: next.keys.keyVersion, members: rows.length },
      });
      result.keyVersion = next.keys.keyVersion;
      result.rotated = { version: next.keys.keyVersion, keyAlg: next.keys.keyAlg, publicJwk: next.publicJwk, kekUri: next.keys.kekUri, members: rows.length };
    }
    return result;
  }

  // ---- helpers ------------------------------------------------------------------------------

  /** Public keys (JWK text) of these users; every one must be a live, provisioned user. */
  private async requireLive(r: Repos, userIds: string[]): Promise<Map<string, string>> {
    const found = await r.memberships.livePublicKeys(userIds);
    const missing = userIds.find((u) => !found.has(u));
    if (missing !== undefined) throw new BadRequestError(`member "${missing}" is not a provisioned user`);
    return found;
  }

  /** The JWK text as stored: sealToPublicKey keeps the imported key by it. */
  private seal(gmk: Buffer, groupId: string, recipient: string): Promise<string> {
    return sealToPublicKey(gmk, recipient, { keyId: `group:${groupId}` });
  }

  private async sealTo(gmk: Buffer, groupId: string, recipients: Map<string, string>, into: Map<string, string>): Promise<void> {
    await forEachLimited(recipients, SEALS_IN_FLIGHT, async ([userId, jwk]) => void into.set(userId, await this.seal(gmk, groupId, jwk)));
  }

  /** Seals every unwrapped version to each of these (new) members. */
  private async sealVersions(p: Prepared, recipients: Map<string, string>): Promise<void> {
    await forEachLimited(recipients, SEALS_IN_FLIGHT, async ([userId, jwk]) => {
      const byVersion = new Map<number, string>();
      for (const [version, gmk] of p.gmks) byVersion.set(version, await this.seal(gmk, p.groupId, jwk));
      p.sealed.set(userId, byVersion);
    });
  }

  private async auditMembers(tx: Repos, ctx: OpContext, groupId: string, action: string, userIds: string[]): Promise<void> {
    for (const userId of userIds) await tx.audit.append({ ...ctx, action, outcome: 'success', targetType: 'group', targetId: groupId, detail: { user: userId } });
  }
}
