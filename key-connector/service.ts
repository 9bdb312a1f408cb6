import type { KmsRegistry } from '../kms-adapters/registry';
import type { Store } from '../server/repositories/store';
import type { Repos } from '../server/repositories/store';
import { uniqueViolation } from '../server/repositories/db-errors';
import { BadRequestError, InactiveUserError, NotFoundError } from '../server/errors';
import { auditFailure, audited } from '../server/keys/audited';
import { binding } from '../server/keys/binding';
import type { OpContext } from '../server/keys/types';
import { nowIso } from '../entities/columns';
import { KeyConnectorRepository } from './repository';

/** Raised when POST finds a key already stored: Key Connector answers 400 and never overwrites. */
export class KeyExistsError extends BadRequestError {
  override readonly code = 'key_exists';
  constructor() {
    super('a key is already stored for this user; use PUT to replace it');
  }
}

const target = (sub: string) => ({ targetType: 'key-connector-user', targetId: sub });

/**
 * The Key Connector user keys: each wrapped by the KEK, bound to purpose key-connector-user-key
 * and the caller's sub, so a row copied to another user fails inside the KMS. KMS work happens
 * before any transaction opens; every outcome is audited with the sub, never the key.
 * Callers zero the plaintext they pass in and the plaintext they get back.
 */
export class KeyConnectorService {
  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly kekUri: string,
    /** CS_KEY_CONNECTOR_REFUSE_DEACTIVATED. */
    private readonly refuseDeactivated = false,
  ) {}

  private repo(r: Repos = this.store.repos): KeyConnectorRepository {
    return new KeyConnectorRepository(r.manager);
  }

  /** The caller's key, unwrapped; its last access time recorded with the audit event. */
  async get(sub: string, ctx: OpContext, email?: string): Promise<Buffer> {
    const e = { action: 'key-connector.get', ...target(sub) };
    if (this.refuseDeactivated && (await this.repo().scimUserInactive(sub, email))) {
      const err = new InactiveUserError();
      await auditFailure(this.store, ctx, e, err);
      throw err;
    }
    const row = await this.repo().find(sub);
    if (!row) {
      const err = new NotFoundError('no key is stored for this user');
      await auditFailure(this.store, ctx, e, err);
      throw err;
    }
    const key = await audited(this.store, ctx, { ...e, kekUri: row.kekUri }, () => this.kms.unwrapStored(row.wrappedKey, binding.keyConnectorUserKey(sub)));
    try {
      await this.store.writeNow(async (t) => {
        await this.repo(t).touch(sub, nowIso());
        await t.audit.append({ ...ctx, ...e, kekUri: row.kekUri, outcome: 'success' });
      });
    } catch (err) {
      key.fill(0); // never hand out a key whose read was not recorded
      throw err;
    }
    return key;
  }

  /** Stores the caller's first key; a second one (or a concurrent first one) is refused. */
  async create(sub: string, key: Uint8Array, ctx: OpContext): Promise<void> {
    const e = { action: 'key-connector.create', ...target(sub), kekUri: this.kekUri };
    if (await this.repo().find(sub)) {
      const err = new KeyExistsError();
      await auditFailure(this.store, ctx, e, err);
      throw err;
    }
    const wrappedKey = await audited(this.store, ctx, e, () => this.kms.wrap(this.kekUri, key, binding.keyConnectorUserKey(sub)));
    try {
      await this.store.transaction(async (t) => {
        await this.repo(t).insert({ sub, wrappedKey, kekUri: this.kekUri, createdAt: nowIso(), revisedAt: null, lastAccessAt: null });
        await t.audit.append({ ...ctx, ...e, outcome: 'success' });
      });
    } catch (err) {
      if (!uniqueViolation(err)) throw err;
      const exists = new KeyExistsError();
      await auditFailure(this.store, ctx, e, exists);
      throw exists;
    }
  }

  /** Creates or replaces the caller's key. */
  async put(sub: string, key: Uint8Array, ctx: OpContext): Promise<void> {
    const e = { ...target(sub), kekUri: this.kekUri };
    const wrappedKey = await audited(this.store, ctx, { action: 'key-connector.replace', ...e }, () => this.kms.wrap(this.kekUri, key, binding.keyConnectorUserKey(sub)));
    const write = () =>
      this.store.transaction(async (t) => {
        const at = nowIso();
        const replaced = await this.repo(t).replace(sub, wrappedKey, this.kekUri, at);
        if (!replaced) await this.repo(t).insert({ sub, wrappedKey, kekUri: this.kekUri, createdAt: at, revisedAt: null, lastAccessAt: null });
        await t.audit.append({ ...ctx, ...e, action: replaced ? 'key-connector.replace' : 'key-connector.create', outcome: 'success' });
      });
    try {
      await write();
    } catch (err) {
      // Another replica inserted between our update and insert: ours replaces it.
      if (!uniqueViolation(err)) throw err;
      await write();
    }
  }
}
