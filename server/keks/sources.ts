import { Brackets, type EntityManager, type EntitySchema, type ObjectLiteral, type SelectQueryBuilder } from 'typeorm';
import type { BindingContext } from '../../kms-adapters/types';
import { AuditSealEntity, GroupKeysEntity, GroupKeyVersionEntity, KeyConnectorUserKeyEntity, SigningKeyEntity, UserKeysEntity } from '../../entities';
import { binding } from '../keys/binding';
import { encodeEnvelope } from '../../kms-adapters/envelope';
import { signingKeyBinding } from '../auth/signing-keys';

/**
 * Every stored KMS envelope (cs1.…), by table: what `keks rewrap` moves and `keks status` counts.
 * A new table holding envelopes adds one line to ENVELOPE_SOURCES. JWEs sealed to a user's or a
 * group's own key (private_jwe, group_member_keys.member_jwe) are not here: no KEK opens them.
 */
export type RowKey = readonly (string | number)[];

export interface StoredEnvelope {
  key: RowKey;
  envelope: string;
  /** The associated data the envelope was wrapped with, recomputed from the row (never stored). */
  binding: BindingContext;
  /** Set on password keys: the user a per-user KEK belongs to. */
  userId?: string;
}

/** Which rows a pass selects by their KEK column: all of them, or those still to move. */
export type KekFilter = { all: true } | { from?: string; notUnder: string; notUnderScheme?: boolean };

export interface EnvelopeSource {
  readonly table: string;
  /** Rows in primary-key order after `after` (keyset paging: constant cost per page). */
  page(m: EntityManager, filter: KekFilter, limit: number, after?: RowKey): Promise<StoredEnvelope[]>;
  count(m: EntityManager, filter: KekFilter): Promise<number>;
  /** Compare-and-set on the old envelope: false when a concurrent writer changed the row first. */
  swap(m: EntityManager, row: StoredEnvelope, envelope: string, kekUri: string): Promise<boolean>;
  reread(m: EntityManager, key: RowKey): Promise<StoredEnvelope | undefined>;
}

interface ColumnSpec<R extends ObjectLiteral> {
  table: string;
  entity: EntitySchema<R>;
  keys: readonly (keyof R & string)[];
  envelope: keyof R & string;
  /** The KEK URI column; without one, rows are selected by the envelope's own prefix. */
  kek?: keyof R & string;
  binding: (row: R) => BindingContext;
  /** Further columns `binding` reads, beyond the keys. */
  bindingColumns?: readonly (keyof R & string)[];
  userId?: (row: R) => string;
}

/** A source where the envelope and its KEK URI are two columns of one row. */
export function columnSource<R extends ObjectLiteral>(spec: ColumnSpec<R>): EnvelopeSource {
  const view = (r: R): StoredEnvelope => ({
    key: spec.keys.map((k) => r[k] as string | number),
    envelope: r[spec.envelope] as string,
    binding: spec.binding(r),
    userId: spec.userId?.(r),
  });
  const select = (m: EntityManager): SelectQueryBuilder<R> =>
    m.createQueryBuilder(spec.entity, 't').select([...spec.keys, ...(spec.bindingColumns ?? []), spec.envelope].map((c) => `t.${c}`));
  const filtered = (q: SelectQueryBuilder<R>, f: KekFilter): SelectQueryBuilder<R> => {
    if ('all' in f) return q;
    if (!spec.kek) {
      if (f.from !== undefined) q.andWhere(`t.${spec.envelope} LIKE :from ESCAPE '!'`, { from: envelopePrefix(f.from) });
      return q.andWhere(`t.${spec.envelope} NOT LIKE :to ESCAPE '!'`, { to: envelopePrefix(f.notUnder) });
    }
    if (f.from !== undefined) q.andWhere(`t.${spec.kek} = :from`, { from: f.from });
    // Per-user targets move between providers: a row on the target's scheme is already there.
    return f.notUnderScheme ? q.andWhere(`t.${spec.kek} NOT LIKE :scheme`, { scheme: `${f.notUnder}%` }) : q.andWhere(`t.${spec.kek} <> :to`, { to: f.notUnder });
  };
  const byKey = (q: SelectQueryBuilder<R>, key: RowKey) => spec.keys.reduce((qq, k, i) => qq.andWhere(`t.${k} = :k${i}`, { [`k${i}`]: key[i] }), q);
  return {
    table: spec.table,
    async page(m, filter, limit, after) {
      const q = filtered(select(m).where('1 = 1'), filter);
      if (after) {
        // (k0 > a0) OR (k0 = a0 AND k1 > a1) ... — the rows after the cursor in key order.
        q.andWhere(
          new Brackets((or) => {
            spec.keys.forEach((_, i) => {
              or.orWhere(
                new Brackets((and) => {
                  for (let j = 0; j < i; j++) and.andWhere(`t.${spec.keys[j]} = :a${j}`, { [`a${j}`]: after[j] });
                  and.andWhere(`t.${spec.keys[i]} > :a${i}`, { [`a${i}`]: after[i] });
                }),
              );
            });
          }),
        );
      }
      spec.keys.forEach((k) => q.addOrderBy(`t.${k}`, 'ASC'));
      return (await q.take(limit).getMany()).map(view);
    },
    count: (m, filter) => filtered(select(m).where('1 = 1'), filter).getCount(),
    async swap(m, row, envelope, kekUri) {
      const where = Object.fromEntries([...spec.keys.map((k, i) => [k, row.key[i]]), [spec.envelope, row.envelope]]);
      const r = await m.update(spec.entity, where, (spec.kek ? { [spec.envelope]: envelope, [spec.kek]: kekUri } : { [spec.envelope]: envelope }) as never);
      return (r.affected ?? 0) === 1;
    },
    async reread(m, key) {
      const r = await byKey(select(m).where('1 = 1'), key).getOne();
      return r ? view(r) : undefined;
    },
  };
}

/** `LIKE` pattern of every envelope under `kekUri` (the URI is the envelope's second field), `!` escaping. */
function envelopePrefix(kekUri: string): string {
  return `${encodeEnvelope({ kekUri, ciphertext: Buffer.from([0]) }).split('.').slice(0, 2).join('.')}.`.replace(/[!%_]/g, '!$&') + '%';
}

export const ENVELOPE_SOURCES: readonly EnvelopeSource[] = [
  columnSource({ table: 'user_keys', entity: UserKeysEntity, keys: ['userId'], envelope: 'wrappedPasswordKey', kek: 'kekUri', binding: (r) => binding.passwordKey(r.userId), userId: (r) => r.userId }),
  columnSource({ table: 'group_key_versions', entity: GroupKeyVersionEntity, keys: ['groupId', 'version'], envelope: 'wrappedMembershipKey', kek: 'kekUri', binding: (r) => binding.membershipKey(r.groupId, Number(r.version)) }),
  // The current version's mirror: `keyVersion` must be read for its binding.
  columnSource({ table: 'group_keys', entity: GroupKeysEntity, keys: ['groupId', 'keyVersion'], envelope: 'wrappedMembershipKey', kek: 'kekUri', binding: (r) => binding.membershipKey(r.groupId, Number(r.keyVersion)) }),
  columnSource({ table: 'signing_keys', entity: SigningKeyEntity, keys: ['kid'], envelope: 'wrappedPrivateJwk', kek: 'kekUri', binding: (r) => signingKeyBinding(r.kid) }),
  columnSource({ table: 'audit_seals', entity: AuditSealEntity, keys: ['id'], envelope: 'envelope', bindingColumns: ['kind', 'seq', 'hash', 'sealedAt'], binding: (r) => binding.auditSeal(r.kind, String(r.seq), r.hash, r.sealedAt) }),
  columnSource({ table: 'key_connector_user_keys', entity: KeyConnectorUserKeyEntity, keys: ['sub'], envelope: 'wrappedKey', kek: 'kekUri', binding: (r) => binding.keyConnectorUserKey(r.sub) }),
];
