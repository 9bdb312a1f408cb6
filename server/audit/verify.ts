import type { DataSource } from 'typeorm';
import type { KmsRegistry } from '../../kms-adapters/registry';
import { chainHash, GENESIS_HASH } from './chain-hash';
import { chainSql, latestCheckpoint, readHead, rowsAfter, sealsAfter, type ChainSql, type StoredChainRow, type StoredSeal } from './chain-sql';
import { sealAuthentic } from './seal-check';

export interface VerifyOptions {
  /** Start at this seq, or at the first row at or after this ISO time; the first row's link is taken on trust. */
  since?: string;
  /** Stop after this seq (prune checks only what it deletes); default: the whole chain, head and trailing seals included. */
  through?: bigint;
  pageSize?: number;
  /**
   * Sealing is on: fail as "unproven tail" when the newest authentic seal (or, with none, the oldest
   * row) is older than this — a tail deleted together with its seals leaves exactly that trace.
   */
  maxSealAgeS?: number;
  /** The sealing interval, named in the unproven-tail line. */
  sealIntervalS?: number;
  /** (seq, hash) pairs recorded outside the database (forwarded events): the chain must still hold them. */
  anchors?: { seq: bigint; hash: string }[];
  /** Called every `pageSize` rows with the last seq checked (progress). */
  progress?: (seq: bigint, rows: number) => void;
}

export interface VerifyResult {
  ok: boolean;
  /** The first broken link, one line (docs/operations.md lists them). */
  problem?: string;
  rows: number;
  seals: number;
  /** First and last seq checked. */
  from?: bigint;
  to?: bigint;
  /** The prune checkpoint the walk started from. */
  checkpoint?: bigint;
  /** The chain verifies but its tail is not proven by a recent seal (maxSealAgeS). */
  unproven?: boolean;
  /** The newest seal checked (seq order). */
  newestSeal?: StoredSeal;
  anchors?: number;
}

class Break extends Error {}

/**
 * Rows checked between two turns of the event loop. On SQLite every read is synchronous, so a
 * walk never gave the loop back: the periodic seal, which verifies every row since the last seal
 * (300 s of audit rows), held it for seconds and every request waited (issue 10: 60,000 rows,
 * 2.7 s without a single timer tick). A turn per 100 rows bounds that to a few milliseconds.
 */
export const ROWS_PER_TURN = 100;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Walks the audit chain in seq order, streaming, and checks every row's hash, every link, every
 * seal and the chain head; stops at the first break (server/audit/chain.ts says how rows join).
 */
export async function verifyAuditChain(ds: DataSource, kms: KmsRegistry, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const sql = chainSql(ds);
  const result: VerifyResult = { ok: true, rows: 0, seals: 0 };
  try {
    await walk(sql, kms, opts, result);
    if (opts.through === undefined) await checkAnchors(sql, opts.anchors ?? [], result);
    if (opts.maxSealAgeS !== undefined && opts.through === undefined) {
      const stale = await staleTail(sql, opts.maxSealAgeS, opts.sealIntervalS, result, opts.since !== undefined);
      if (stale) {
        result.ok = false;
        result.unproven = true;
        result.problem = stale;
      }
    }
  } catch (err) {
    if (!(err instanceof Break)) throw err;
    result.ok = false;
    result.problem = err.message;
  }
  return result;
}

async function walk(sql: ChainSql, kms: KmsRegistry, opts: VerifyOptions, result: VerifyResult): Promise<void> {
  const checkpoint = await latestCheckpoint(sql);
  if (checkpoint) {
    if (!(await sealAuthentic(kms, checkpoint))) throw new Break(`checkpoint at seq ${checkpoint.seq}: does not verify under the KMS (forged or edited)`);
    result.checkpoint = checkpoint.seq;
    const [early] = await sql.query(`SELECT MIN(seq) AS seq FROM audit_events WHERE seq <= ${sql.p(1)}`, [sql.seq(checkpoint.seq)]);
    if (early?.seq != null) throw new Break(`seq ${String(early.seq)}: row at or before the prune checkpoint at seq ${checkpoint.seq} (rows reappeared or inserted)`);
  }
  // Where the walk starts: the row after the checkpoint (or seq 1), or the row --since names.
  let expectedSeq = (checkpoint?.seq ?? 0n) + 1n;
  let expectedPrev: string | undefined = checkpoint?.hash ?? GENESIS_HASH;
  if (opts.since !== undefined) {
    const start = await startOf(sql, opts.since);
    if (start === undefined) return; // no row at or after that time: nothing to check
    if (start > expectedSeq) {
      expectedSeq = start;
      expectedPrev = undefined;
    }
  }
  const pageSize = opts.pageSize ?? 1000;
  const seals = peekable(sealsAfter(sql, 'seal', expectedSeq - 1n));
  const rows = peekable(rowsAfter(sql, expectedSeq - 1n, pageSize));
  let last: StoredChainRow | undefined;
  for (let r = await rows.next(); r !== undefined; r = await rows.next()) {
    if (opts.through !== undefined && r.seq > opts.through) break;
    if (r.seq !== expectedSeq) {
      if (expectedPrev === undefined) expectedSeq = r.seq; // --since named a seq that no longer exists
      else throw new Break(`gap after seq ${expectedSeq - 1n}: next row is seq ${r.seq} (rows deleted)`);
    }
    if (r.hash === null || r.prevHash === null) throw new Break(`seq ${r.seq}: not chained (no hash: written with CS_AUDIT_CHAIN=off, or the hash was removed)`);
    if (expectedPrev !== undefined && r.prevHash !== expectedPrev) {
      const n = await rows.peek();
      if (n && n.seq === r.seq + 1n && n.prevHash === expectedPrev && r.prevHash === n.hash) {
        throw new Break(`seq ${r.seq}: rows reordered (the rows at seq ${r.seq} and ${n.seq} are swapped)`);
      }
      throw new Break(`seq ${r.seq}: link mismatch (prev_hash is not the hash of seq ${r.seq - 1n}: row inserted, or rows rewritten)`);
    }
    if (chainHash({ ...r, seq: r.seq.toString(), prevHash: r.prevHash }) !== r.hash) throw new Break(`seq ${r.seq}: hash mismatch (row modified)`);
    for (let s = await seals.peek(); s !== undefined && s.seq <= r.seq; s = await seals.peek()) {
      await seals.next();
      await checkSeal(kms, s, r, result);
    }
    result.from ??= r.seq;
    result.to = r.seq;
    result.rows += 1;
    if (result.rows % pageSize === 0) opts.progress?.(r.seq, result.rows);
    if (result.rows % ROWS_PER_TURN === 0) await nextTurn();
    last = r;
    expectedPrev = r.hash;
    expectedSeq = r.seq + 1n;
  }
  if (opts.through !== undefined) return;
  // Past the last row: any remaining seal vouches for rows that are gone.
  const endSeq = last?.seq ?? expectedSeq - 1n;
  const dangling = await seals.next();
  if (dangling) {
    if (!(await sealAuthentic(kms, dangling))) throw new Break(`seal at seq ${dangling.seq}: does not verify under the KMS (forged or edited)`);
    throw new Break(`seal at seq ${dangling.seq}: no row with that seq, the chain ends at seq ${endSeq} (tail truncated)`);
  }
  const head = await readHead(sql);
  if (!head) throw new Break('the chain head row is missing (audit_chain_head)');
  if (head.seq > endSeq) throw new Break(`the chain head is at seq ${head.seq} but the last row is seq ${endSeq} (tail truncated)`);
  if (head.seq < endSeq) throw new Break(`seq ${endSeq}: beyond the chain head at seq ${head.seq} (row inserted)`);
  if (last && head.hash !== last.hash) throw new Break(`the chain head's hash is not the hash of seq ${endSeq} (head or last row edited)`);
}

async function checkSeal(kms: KmsRegistry, s: StoredSeal, r: StoredChainRow, result: VerifyResult): Promise<void> {
  if (!(await sealAuthentic(kms, s))) throw new Break(`seal at seq ${s.seq}: does not verify under the KMS (forged or edited)`);
  // A seal between two rows means the row it sealed is gone (a gap would have been reported first).
  if (s.seq !== r.seq) throw new Break(`seal at seq ${s.seq}: no row with that seq (rows deleted)`);
  if (s.hash !== r.hash) throw new Break(`seq ${r.seq}: hash differs from the KMS seal at seq ${s.seq} (rows rewritten)`);
  result.seals += 1;
  result.newestSeal = s;
}

/** Every anchor must still be in the chain with its hash (anchors at or before a prune checkpoint are gone by design). */
async function checkAnchors(sql: ChainSql, anchors: { seq: bigint; hash: string }[], result: VerifyResult): Promise<void> {
  for (const a of anchors) {
    if (result.checkpoint !== undefined && a.seq <= result.checkpoint) continue;
    const [r] = await sql.query(`SELECT hash FROM audit_events WHERE seq = ${sql.p(1)}`, [sql.seq(a.seq)]);
    if (!r) throw new Break(`anchor at seq ${a.seq}: no row with that seq, the chain ends at seq ${result.to ?? 0n} (tail truncated)`);
    if (String(r.hash) !== a.hash) throw new Break(`anchor at seq ${a.seq}: the row's hash differs from the anchor (rows rewritten)`);
    result.anchors = (result.anchors ?? 0) + 1;
  }
}

const age = (ms: number) => (ms >= 7_200_000 ? `${Math.floor(ms / 3_600_000)} h` : ms >= 120_000 ? `${Math.floor(ms / 60_000)} min` : `${Math.floor(ms / 1000)} s`);

/** The unproven-tail line, or undefined when the newest seal is recent enough. */
async function staleTail(sql: ChainSql, maxSealAgeS: number, intervalS: number | undefined, result: VerifyResult, partial: boolean): Promise<string | undefined> {
  const interval = intervalS === undefined ? '' : `; sealing interval ${intervalS} s`;
  const now = Date.now();
  if (result.newestSeal) {
    const old = now - Date.parse(result.newestSeal.sealedAt);
    return old > maxSealAgeS * 1000 ? `unproven tail: newest seal at seq ${result.newestSeal.seq} is ${age(old)} old${interval}` : undefined;
  }
  // With --since, seals before the start were not looked at: "no seal" would not be known.
  if (result.from === undefined || partial) return undefined;
  const [r] = await sql.query(`SELECT at FROM audit_events WHERE seq = ${sql.p(1)}`, [sql.seq(result.from)]);
  const old = r ? now - Date.parse(String(r.at)) : 0;
  return old > maxSealAgeS * 1000 ? `unproven tail: no seal, but the row at seq ${result.from} is ${age(old)} old${interval}` : undefined;
}

/** The first seq at or after `since` (a seq or an ISO time). */
async function startOf(sql: ChainSql, since: string): Promise<bigint | undefined> {
  if (/^\d+$/.test(since)) return BigInt(since);
  const [r] = await sql.query(`SELECT MIN(seq) AS seq FROM audit_events WHERE at >= ${sql.p(1)}`, [new Date(since).toISOString()]);
  return r?.seq == null ? undefined : BigInt(String(r.seq));
}

interface Peekable<T> {
  next(): Promise<T | undefined>;
  peek(): Promise<T | undefined>;
}

function peekable<T>(it: AsyncGenerator<T>): Peekable<T> {
  let buffered: { v: T | undefined } | undefined;
  const pull = async () => {
    const n = await it.next();
    return n.done ? undefined : n.value;
  };
  return {
    next: async () => {
      if (buffered) {
        const v = buffered.v;
        buffered = undefined;
        return v;
      }
      return pull();
    },
    peek: async () => (buffered ??= { v: await pull() }).v,
  };
}
