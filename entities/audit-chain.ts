import { EntitySchema } from 'typeorm';
import { str, text, timestamp } from './columns';

/**
 * The audit chain's head (one row, id 1): the seq and hash of the last committed audit row.
 * Writers lock it right before commit, so seq order is commit order (server/audit/chain.ts).
 */
export interface AuditChainHeadRow {
  id: number;
  /** bigint: a string as drivers return it. */
  seq: string;
  hash: string;
  updatedAt: string;
}

export const AuditChainHeadEntity = new EntitySchema<AuditChainHeadRow>({
  name: 'AuditChainHead',
  tableName: 'audit_chain_head',
  columns: {
    id: { name: 'id', type: 'integer', primary: true },
    seq: { name: 'seq', type: 'bigint' },
    hash: str('hash', 64),
    updatedAt: timestamp('updated_at'),
  },
});

/** `seal`: the chain head at `seq` vouched for by the KMS; `checkpoint`: where pruned rows ended. */
export type AuditSealKind = 'seal' | 'checkpoint';

/**
 * A KMS wrap of `hash` with associated data binding (kind, seq, hash): a database administrator
 * cannot make one (docs/wire-formats.md, `audit-seal`).
 */
export interface AuditSealRow {
  id?: number;
  kind: AuditSealKind;
  seq: string;
  hash: string;
  /** The wrapped hash as an envelope (docs/wire-formats.md §2): names its KEK and key version. */
  envelope: string;
  sealedAt: string;
}

export const AuditSealEntity = new EntitySchema<AuditSealRow>({
  name: 'AuditSeal',
  tableName: 'audit_seals',
  columns: {
    id: { name: 'id', type: 'integer', primary: true, generated: 'increment' },
    kind: str('kind', 16),
    seq: { name: 'seq', type: 'bigint' },
    hash: str('hash', 64),
    envelope: text('envelope'),
    sealedAt: timestamp('sealed_at'),
  },
});
