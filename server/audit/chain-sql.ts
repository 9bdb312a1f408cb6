import type { DataSource, EntityManager } from 'typeorm';
import { HEAD_SELECT } from './chain';
import { placeholderFor } from '../repositories/placeholders';
import type { ChainedFields } from './chain-hash';

/** Raw reads of the audit chain for verify, seal and prune: placeholders and bigint params per driver. */
export interface ChainSql {
  /** The n-th placeholder. */
  p(n: number): string;
  /** A seq as a statement parameter (SQLite compares numbers; the others take the decimal string). */
  seq(v: bigint): string | number;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

/** On a data source (its own connections), or on a transaction's manager. */
export function chainSql(on: DataSource | EntityManager): ChainSql {
  const type = 'connection' in on ? on.connection.options.type : on.options.type;
  return {
    p: placeholderFor(type),
    seq: (v) => (type === 'better-sqlite3' ? Number(v) : v.toString()),
    query: (sql, params = []) => on.query(sql, params),
  };
}

export const AUDIT_ROW_COLUMNS = 'seq, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail, prev_hash, hash';

/** A stored audit row as the chain sees it. */
export type StoredChainRow = Omit<ChainedFields, 'seq' | 'prevHash'> & { seq: bigint; prevHash: string | null; hash: string | null };

const opt = (v: unknown) => (v == null ? null : String(v));

export function storedRow(r: Record<string, unknown>): StoredChainRow {
  return {
    seq: BigInt(String(r.seq)),
    at: String(r.at),
    requestId: opt(r.request_id),
    actor: String(r.actor),
    action: String(r.action),
    targetType: opt(r.target_type),
    targetId: opt(r.target_id),
    kekUri: opt(r.kek_uri),
    outcome: String(r.outcome),
    detail: opt(r.detail),
    prevHash: opt(r.prev_hash),
    hash: opt(r.hash),
  };
}

/** Rows with seq > `after`, in seq order, a page at a time: constant memory however long the chain. */
export async function* rowsAfter(sql: ChainSql, after: bigint, pageSize = 1000): AsyncGenerator<StoredChainRow> {
  let cursor = after;
  for (;;) {
    const page = await sql.query(`SELECT ${AUDIT_ROW_COLUMNS} FROM audit_events WHERE seq > ${sql.p(1)} ORDER BY seq LIMIT ${pageSize}`, [sql.seq(cursor)]);
    for (const r of page) {
      const row = storedRow(r);
      cursor = row.seq;
      yield row;
    }
    if (page.length < pageSize) return;
  }
}

export interface StoredSeal {
  id: number;
  kind: 'seal' | 'checkpoint';
  seq: bigint;
  hash: string;
  envelope: string;
  /** Bound into the seal's associated data, so a seal's age cannot be forged. */
  sealedAt: string;
}

const sealOf = (r: Record<string, unknown>): StoredSeal => ({
  id: Number(r.id),
  kind: String(r.kind) as StoredSeal['kind'],
  seq: BigInt(String(r.seq)),
  hash: String(r.hash),
  envelope: String(r.envelope),
  sealedAt: String(r.sealed_at),
});

/** Seals of `kind` with seq > `after`, in seq order, a page at a time. */
export async function* sealsAfter(sql: ChainSql, kind: StoredSeal['kind'], after: bigint, pageSize = 500): AsyncGenerator<StoredSeal> {
  let cursor = after;
  for (;;) {
    const page = await sql.query(
      `SELECT id, kind, seq, hash, envelope, sealed_at FROM audit_seals WHERE kind = ${sql.p(1)} AND seq > ${sql.p(2)} ORDER BY seq LIMIT ${pageSize}`,
      [kind, sql.seq(cursor)],
    );
    for (const r of page) {
      const s = sealOf(r);
      cursor = s.seq;
      yield s;
    }
    if (page.length < pageSize) return;
  }
}

/** The latest prune checkpoint, if rows were ever pruned. */
export async function latestCheckpoint(sql: ChainSql): Promise<StoredSeal | undefined> {
  const [r] = await sql.query(`SELECT id, kind, seq, hash, envelope, sealed_at FROM audit_seals WHERE kind = 'checkpoint' ORDER BY seq DESC LIMIT 1`);
  return r ? sealOf(r) : undefined;
}

export async function readHead(sql: ChainSql): Promise<{ seq: bigint; hash: string } | undefined> {
  const [r] = await sql.query(HEAD_SELECT);
  return r ? { seq: BigInt(String(r.seq)), hash: String(r.hash) } : undefined;
}
