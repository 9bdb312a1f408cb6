import type { DataSource, EntityManager } from 'typeorm';
import type { AuditEventRow } from '../../entities';
import { chainHash, GENESIS_HASH } from './chain-hash';
import { rowsPerStatement } from '../repositories/bulk-rows';
import { placeholderFor, placeholderList, unnumbered, type Placeholder } from '../repositories/placeholders';

/**
 * How audit rows join the chain (docs/operations.md, "Audit integrity"). Every writer, in one
 * transaction: lock the single chain-head row, take seq = head.seq + 1…, hash each row over the
 * previous one, insert, move the head. The head lock serialises writers across connections,
 * workers and replicas, so seq order is commit order and has no gaps. Writers take it last, right
 * before commit (Store.transaction flushes its audit rows then), to hold it briefly and never
 * before another row lock (no lock-order deadlocks).
 */

export interface ChainHead {
  seq: string;
  hash: string;
}

export interface AuditChainOptions {
  /** CS_AUDIT_CHAIN: off still numbers rows in commit order but leaves prev_hash/hash null (for measuring). */
  enabled: boolean;
}

const options = new WeakMap<DataSource, AuditChainOptions>();

/** Set once at boot (openStore); a data source nobody configured chains. */
export function configureAuditChain(ds: DataSource, o: AuditChainOptions): void {
  options.set(ds, o);
}

export function auditChainEnabled(ds: DataSource): boolean {
  return options.get(ds)?.enabled ?? true;
}

/** Numbers and hashes `rows` after `head`, in place; returns the new head. */
export function chainOnto(head: ChainHead, rows: AuditEventRow[], enabled: boolean): ChainHead {
  let seq = BigInt(head.seq);
  let hash = head.hash;
  for (const r of rows) {
    seq += 1n;
    r.seq = seq.toString();
    if (!enabled) {
      r.prevHash = null;
      r.hash = null;
      continue;
    }
    r.prevHash = hash;
    r.hash = hash = chainHash({ ...r, seq: r.seq, prevHash: hash });
  }
  // Off: the head keeps the last hash, so turning chaining back on links to a chained row's hash
  // (verify still reports the unchained rows in between).
  return { seq: seq.toString(), hash };
}

/** The single chain-head row: read, and read under the writer's lock (PostgreSQL/MariaDB). */
export const HEAD_SELECT = 'SELECT seq, hash FROM audit_chain_head WHERE id = 1';
export const HEAD_FOR_UPDATE = `${HEAD_SELECT} FOR UPDATE`;

/** Moves the head to (seq, hash, updated_at), its placeholders numbered after `after`: every writer's last step. */
export const headMoveSql = (p: Placeholder = unnumbered, after = 0) => `UPDATE audit_chain_head SET seq = ${p(after + 1)}, hash = ${p(after + 2)}, updated_at = ${p(after + 3)} WHERE id = 1`;

/** The audit_events columns every writer inserts, in the order of `auditValues`. */
export const AUDIT_COLUMNS = '(at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail, seq, prev_hash, hash)';
export const AUDIT_WIDTH = 12;
export const auditValues = (e: AuditEventRow) => [e.at, e.requestId, e.actor, e.action, e.targetType, e.targetId, e.kekUri, e.outcome, e.detail, e.seq, e.prevHash, e.hash];

/** One INSERT of `n` audit rows, its placeholders in `auditValues` order row after row. */
export const auditInsertSql = (n: number, p: Placeholder = unnumbered) =>
  `INSERT INTO audit_events ${AUDIT_COLUMNS} VALUES ${Array.from({ length: n }, (_, i) => `(${placeholderList(p, AUDIT_WIDTH, i * AUDIT_WIDTH)})`).join(', ')}`;

export const headOf = (r: Record<string, unknown> | undefined): ChainHead => {
  if (!r) throw new Error('audit_chain_head has no row: run `crypto-server migrate`');
  return { seq: String(r.seq), hash: String(r.hash ?? GENESIS_HASH) };
};

/** SQLite's head lock and read in one statement: the write takes the database's write lock first. */
const HEAD_TOUCH_RETURNING = 'UPDATE audit_chain_head SET updated_at = ? WHERE id = 1 RETURNING seq, hash';

/**
 * Appends `rows` to the chain inside the transaction `m` is bound to (the caller commits).
 * SQLite: a write to the head takes the database's write lock, so the head it returns is the last
 * commit of any other process; PostgreSQL/MariaDB: SELECT … FOR UPDATE (a locking read sees the
 * latest committed head even under MariaDB's REPEATABLE READ). Plain parameterised SQL, like
 * hot-queries.ts (issue 10: TypeORM's insert building was ~6 % of a SCIM create's CPU).
 */
export async function appendChained(m: EntityManager, rows: AuditEventRow[]): Promise<void> {
  if (rows.length === 0) return;
  const type = m.connection.options.type;
  const p = placeholderFor(type);
  const now = new Date().toISOString();
  const [locked] = (type === 'better-sqlite3' ? await m.query(HEAD_TOUCH_RETURNING, [now]) : await m.query(HEAD_FOR_UPDATE)) as Record<string, unknown>[];
  const head = chainOnto(headOf(locked), rows, auditChainEnabled(m.connection));
  // A group write audits each member: thousands of rows would pass the drivers' bound-parameter
  // limits (SQLite 32,766, PostgreSQL 65,535) in one statement, so they go in chunks; the head moves once.
  const per = rowsPerStatement(AUDIT_WIDTH);
  for (let at = 0; at < rows.length; at += per) {
    const chunk = rows.slice(at, at + per);
    const values = chunk.flatMap(auditValues);
    if (type === 'postgres' && at + per >= rows.length) {
      // The last chunk and the head move in one statement: one round trip fewer.
      const n = values.length;
      await m.query(`WITH ins AS (${auditInsertSql(chunk.length, p)} RETURNING 1) ${headMoveSql(p, n)}`, [...values, head.seq, head.hash, now]);
      return;
    }
    await m.query(auditInsertSql(chunk.length, p), values);
  }
  await m.query(headMoveSql(p), [head.seq, head.hash, now]);
}
