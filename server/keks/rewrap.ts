import type { KmsRegistry } from '../../kms-adapters/registry';
import { decodeEnvelope, encodeEnvelope } from '../../kms-adapters/envelope';
import { validateContext } from '../../kms-adapters/associated-data';
import { schemeOf, type WrapResult } from '../../kms-adapters/types';
import { KmsConfigurationError, MalformedEnvelopeError, UnwrapRefusedError } from '../errors';
import { nowIso } from '../../entities/columns';
import type { Store } from '../repositories/store';
import { ENVELOPE_SOURCES, type EnvelopeSource, type KekFilter, type RowKey, type StoredEnvelope } from './sources';

/**
 * `keks rewrap`: moves every stored envelope onto one KEK, online. Per batch: KMS work first with
 * no transaction open (provider-native re-encrypt when it can, else unwrap + wrap with the
 * plaintext zeroed), then one short transaction of compare-and-set updates on the old envelope
 * plus the batch's audit row. A row a concurrent writer changed meanwhile is re-read and retried.
 * The envelope names its KEK, so a re-run after a crash skips what already moved: no progress table.
 */
export interface RewrapOptions {
  to: string;
  from?: string;
  dryRun?: boolean;
  batch?: number;
  /** CS_KEK_URI and CS_PREVIOUS_KEK_URIS: --to must be among them, or servers could not open what moved. */
  configuredKeks: readonly string[];
  /** CS_KEK_MODE=per-user: each password key moves to a new per-user KEK created on --to's provider. */
  perUser?: boolean;
  /** Aborted (SIGINT): the current batch finishes, then the run stops with its summary. */
  signal?: AbortSignal;
  progress?: (done: number, total: number) => void;
  /** KMS calls in flight at once, per batch. */
  concurrency?: number;
  /** Batches in flight at once on PostgreSQL/MariaDB (default 4; SQLite: 1). */
  lanes?: number;
  actor?: string;
  sources?: readonly EnvelopeSource[];
}

export interface TableSummary {
  table: string;
  /** Rows to move when the run started (the dry run's answer). */
  pending: number;
  moved: number;
  /** Moved inside the provider (AWS ReEncrypt, Vault rewrap): no plaintext left the KMS. */
  native: number;
  /** Found already under --to (a concurrent writer, or an earlier run) when their turn came. */
  skipped: number;
  failed: { key: string; reason: string }[];
}

export interface RewrapSummary {
  tables: TableSummary[];
  interrupted: boolean;
  /** Why the run stopped early (a KMS outage or misconfiguration), naming the KEK. */
  stopped?: string;
}

/** A refusal before any work: bad --to, unusable KEK. */
export class RewrapError extends Error {}

/** Stops the whole run (as opposed to one row failing). */
class StopRun extends Error {}

const RETRIES = 3;

export async function rewrapEnvelopes(store: Store, kms: KmsRegistry, o: RewrapOptions): Promise<RewrapSummary> {
  const sources = o.sources ?? ENVELOPE_SOURCES;
  const batch = o.batch ?? 200;
  if (!o.configuredKeks.includes(o.to)) {
    throw new RewrapError(`--to ${o.to} is not a configured KEK: add it to CS_PREVIOUS_KEK_URIS (or make it CS_KEK_URI) on this command and on every server first, so they open what is moved`);
  }
  if (o.from === o.to) throw new RewrapError('--from and --to name the same KEK: nothing to move');
  const target = kms.forUri(o.to);
  if (o.perUser && !target.createKey) throw new RewrapError(`CS_KEK_MODE=per-user moves password keys to new per-user KEKs, but ${target.scheme} (--to) cannot create keys`);
  try {
    await kms.check(o.to);
  } catch (err) {
    throw new RewrapError(`the KEK ${o.to} (--to) is not usable: ${(err as Error).message}`);
  }

  const filterFor = (s: EnvelopeSource): KekFilter =>
    o.perUser && s.table === 'user_keys' ? { from: o.from, notUnder: `${schemeOf(o.to)}:`, notUnderScheme: true } : { from: o.from, notUnder: o.to };
  const tables: TableSummary[] = [];
  for (const s of sources) tables.push({ table: s.table, pending: await s.count(store.repos.manager, filterFor(s)), moved: 0, native: 0, skipped: 0, failed: [] });
  const summary: RewrapSummary = { tables, interrupted: false };
  if (o.dryRun) return summary;

  const total = tables.reduce((n, t) => n + t.pending, 0);
  let done = 0;
  o.progress?.(0, total);
  const mover = new Mover(store, kms, o);
  // Batches touch disjoint rows, so on a pooled database a few run at once (SQLite has one writer).
  const lanes = store.driver === 'better-sqlite3' ? 1 : (o.lanes ?? 4);
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  const launch = (work: Promise<number>) => {
    const p: Promise<void> = work
      .then((n) => {
        done += n;
        o.progress?.(Math.min(done, total), total);
      })
      .catch((err: unknown) => void (failure ??= { err }))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  const halted = () => o.signal?.aborted || mover.stop !== undefined || failure !== undefined;
  outer: for (const [i, source] of sources.entries()) {
    let after: RowKey | undefined;
    for (;;) {
      if (halted()) break outer;
      const rows = await source.page(store.repos.manager, filterFor(source), batch, after);
      if (rows.length === 0) break;
      after = rows[rows.length - 1].key;
      launch(moveBatch(store, source, rows, mover, tables[i], o));
      while (inFlight.size >= lanes) await Promise.race(inFlight);
    }
    // A table's rows are done before the next table's start (the summary reads in order).
    await Promise.all(inFlight);
  }
  await Promise.all(inFlight);
  if (failure) throw failure.err;
  if (mover.stop) {
    summary.stopped = mover.stop;
    await store.audit({ actor: o.actor ?? 'cli', action: 'kek.rewrap', outcome: 'failure', kekUri: o.to, detail: { to: o.to, from: o.from ?? 'any', reason: mover.stop.slice(0, 400) } });
  } else if (o.signal?.aborted) summary.interrupted = true;
  return summary;
}

/** One batch: KMS (no transaction), then compare-and-set in one transaction; conflicts retried. */
async function moveBatch(store: Store, source: EnvelopeSource, rows: StoredEnvelope[], mover: Mover, t: TableSummary, o: RewrapOptions): Promise<number> {
  let handled = 0;
  let todo = rows;
  for (let attempt = 0; todo.length > 0 && attempt < RETRIES; attempt++) {
    const prepared = await mover.prepare(todo, t);
    const conflicts: StoredEnvelope[] = [];
    let moved = 0;
    let native = 0;
    const froms = new Set<string>();
    if (prepared.length > 0) {
      await store.transaction(async (tx) => {
        for (const p of prepared) {
          if (await source.swap(tx.manager, p.row, p.envelope, p.kekUri)) {
            moved++;
            if (p.native) native++;
            froms.add(p.fromKek);
            if (p.perUserKek) {
              await tx.keks.setState(p.perUserKek, 'active');
              await tx.keks.setState(p.fromKek, 'retired');
            }
          } else conflicts.push(p.row);
        }
        if (moved > 0) {
          await tx.audit.append({
            actor: o.actor ?? 'cli',
            action: 'kek.rewrap',
            outcome: 'success',
            targetType: 'envelopes',
            targetId: source.table,
            kekUri: o.to,
            detail: { table: source.table, count: moved, native, from: clip([...froms].join(',')), to: o.to },
          });
        }
      });
    }
    t.moved += moved;
    t.native += native;
    handled += todo.length - conflicts.length;
    // A concurrent writer won: read the row again; it may already be under --to (or gone).
    const again: StoredEnvelope[] = [];
    for (const c of conflicts) {
      const now = await source.reread(store.repos.manager, c.key);
      if (!now || mover.isMoved(now, source)) {
        t.skipped++;
        handled++;
      } else again.push(now);
    }
    todo = again;
    if (mover.stop) break;
  }
  for (const r of todo) t.failed.push({ key: r.key.join('/'), reason: `changed concurrently ${RETRIES} times; run again` });
  return handled + todo.length;
}

interface Prepared {
  row: StoredEnvelope;
  envelope: string;
  kekUri: string;
  fromKek: string;
  native: boolean;
  /** A per-user KEK created for this row (recorded pending, made active with the row). */
  perUserKek?: string;
}

/** The KMS side: never called with a transaction open. */
class Mover {
  /** Set when a KMS fault stops the run; rows prepared before it are still committed. */
  stop?: string;
  /** (from → to) pairs whose provider refused native re-encryption: unwrap + wrap from then on. */
  private readonly notNative = new Set<string>();

  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly o: RewrapOptions,
  ) {}

  isMoved(row: StoredEnvelope, source: EnvelopeSource): boolean {
    let kek: string;
    try {
      kek = decodeEnvelope(row.envelope).kekUri;
    } catch {
      return false; // retried, then reported as that row's failure
    }
    if (this.o.perUser && source.table === 'user_keys') return schemeOf(kek) === schemeOf(this.o.to);
    return kek === this.o.to || (this.o.from !== undefined && kek !== this.o.from);
  }

  async prepare(rows: StoredEnvelope[], t: TableSummary): Promise<Prepared[]> {
    const out: Prepared[] = [];
    let next = 0;
    const worker = async () => {
      while (next < rows.length && !this.stop) {
        const row = rows[next++];
        try {
          const p = await this.one(row, t.table);
          if (p) out.push(p);
          else t.skipped++;
        } catch (err) {
          if (err instanceof UnwrapRefusedError || err instanceof MalformedEnvelopeError) {
            t.failed.push({ key: row.key.join('/'), reason: err.message });
          } else {
            this.stop ??= err instanceof StopRun ? err.message : `stopped at ${t.table} ${row.key.join('/')}: ${(err as Error).message}`;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency ?? 8, rows.length) }, worker));
    return out;
  }

  private async one(row: StoredEnvelope, table: string): Promise<Prepared | undefined> {
    const e = decodeEnvelope(row.envelope);
    validateContext(row.binding);
    const perUser = this.o.perUser && table === 'user_keys';
    if (perUser ? schemeOf(e.kekUri) === schemeOf(this.o.to) : e.kekUri === this.o.to) return undefined;
    let to = this.o.to;
    let perUserKek: string | undefined;
    if (perUser) {
      perUserKek = to = await this.guard(to, () => this.kms.forUri(this.o.to).createKey!(`user-${row.userId}-r${Date.now().toString(36)}`));
      await this.recordPending(perUserKek, row.userId!);
    }
    const { result, native } = await this.moveOne(e.kekUri, e.ciphertext, e.keyVersion, row, to);
    return { row, envelope: encodeEnvelope({ kekUri: to, keyVersion: result.keyVersion, ciphertext: result.ciphertext }), kekUri: to, fromKek: e.kekUri, native, perUserKek };
  }

  private async moveOne(from: string, ciphertext: Buffer, keyVersion: string | undefined, row: StoredEnvelope, to: string): Promise<{ result: WrapResult; native: boolean }> {
    const source = this.guardAdapter(from);
    const pair = `${from} ${to}`;
    if (schemeOf(from) === schemeOf(to) && source.rewrap && !this.notNative.has(pair)) {
      try {
        return { result: await this.guard(from, () => source.rewrap!(from, ciphertext, row.binding, to, keyVersion)), native: true };
      } catch (err) {
        if (!(err instanceof StopRun && err.cause instanceof KmsConfigurationError)) throw err;
        this.notNative.add(pair);
      }
    }
    const plaintext = await this.guard(from, () => source.unwrap(from, ciphertext, row.binding, keyVersion));
    try {
      return { result: await this.guard(to, () => this.kms.forUri(to).wrap(to, plaintext, row.binding)), native: false };
    } finally {
      plaintext.fill(0);
    }
  }

  private guardAdapter(kekUri: string) {
    try {
      return this.kms.forUri(kekUri);
    } catch (err) {
      throw new StopRun(`envelopes under ${kekUri} cannot be opened: ${(err as Error).message} (configure that KEK's adapter for this command)`);
    }
  }

  /** A row-level refusal stays one row's failure; anything else stops the run, naming the KEK. */
  private async guard<T>(kekUri: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof UnwrapRefusedError) throw err;
      throw new StopRun(`the KMS of ${kekUri} failed: ${(err as Error).message}; nothing half-written — run the same command again to resume`, { cause: err });
    }
  }

  /** Recorded before use, as provisioning does: a crash from here on leaves a listed orphan (`keks orphans`). */
  private async recordPending(uri: string, userId: string): Promise<void> {
    await this.store.writeNow((t) => t.keks.insert({ uri, scheme: schemeOf(uri) ?? 'unknown', ownerType: 'user', ownerId: userId, state: 'pending', createdAt: nowIso() }));
  }
}

function clip(s: string): string {
  return s.length <= 500 ? s : `${s.slice(0, 497)}...`;
}
