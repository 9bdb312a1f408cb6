import { z } from 'zod';
import type { EntityManager, SelectQueryBuilder } from 'typeorm';
import { AuditEventEntity, type AuditEventRow } from '../../entities';
import { ValidationError } from '../errors';
import type { Store } from '../repositories/store';

/**
 * Reading the audit log: filtered search with keyset paging (newest first) for the CLI and the
 * console, and an ascending stream in batches for export. Never OFFSET: a page deep into millions
 * of rows costs what the first one does, and rows appended meanwhile never shift a page.
 */

/** A time bound: an ISO 8601 instant, or relative to now (`-1h`, `7d`, `30m`; a sign is optional). */
const RELATIVE = /^-?(\d{1,6})([smhdw])$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
// Dates need a year, month and day; a time needs a zone (Z or ±hh:mm) so nothing depends on the host's.
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2}))?$/;

/** Parses a time bound to the ISO form stored in `at` (UTC, millisecond precision); undefined when it is neither form. */
export function parseAuditTime(value: string, now: Date = new Date()): string | undefined {
  const v = value.trim();
  const rel = RELATIVE.exec(v);
  if (rel) return new Date(now.getTime() - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS]).toISOString();
  if (!ISO_INSTANT.test(v)) return undefined;
  // Date.parse rolls 2026-02-30 over to March; a calendar date must exist as written.
  const [y, mo, d] = v.slice(0, 10).split('-').map(Number);
  if (new Date(Date.UTC(y, mo - 1, d)).getUTCDate() !== d) return undefined;
  const t = Date.parse(v.length === 10 ? `${v}T00:00:00Z` : v);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

const timeBound = z
  .union([z.string(), z.date()])
  .transform((v, ctx) => {
    const iso = v instanceof Date ? (Number.isNaN(v.getTime()) ? undefined : v.toISOString()) : parseAuditTime(v);
    if (iso === undefined) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 time (2026-12-01T10:00:00Z, 2026-12-01) or relative to now (-1h, 7d, 30m)' });
      return z.NEVER;
    }
    return iso;
  });

const text = (max: number) => z.string().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

export const auditFiltersSchema = z
  .object({
    actor: text(255),
    action: text(64),
    outcome: z.enum(['success', 'failure', 'refused']),
    targetType: text(32),
    targetId: text(255),
    /** Inclusive. */
    since: timeBound,
    /** Exclusive. */
    until: timeBound,
    requestId: text(64),
  })
  .partial()
  .strict()
  .refine((f) => !(f.since && f.until && f.since >= f.until), { message: 'since must be before until', path: ['since'] });

export type AuditFiltersInput = z.input<typeof auditFiltersSchema>;
export type AuditFilters = z.output<typeof auditFiltersSchema>;

export const MAX_PAGE = 500;

export const auditPageSchema = z
  .object({
    /** Only rows with a smaller id: the `next` cursor of the previous page. */
    before: z.coerce.number().int().positive().optional(),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE, `must be at most ${MAX_PAGE}`).default(100),
  })
  .strict();

export type AuditPageInput = z.input<typeof auditPageSchema>;

export interface AuditPage {
  rows: AuditEventRow[];
  /** Pass as `before` for the next (older) page; null when this page is the last. */
  next: number | null;
}

/** Validates with zod and names the offending field in one message. */
function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: i.path.join('.') || what, message: i.code === 'unrecognized_keys' ? `unknown ${what}: ${i.keys.join(', ')}` : i.message }));
  throw new ValidationError(`invalid audit ${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues);
}

export const parseAuditFilters = (input: unknown): AuditFilters => parse(auditFiltersSchema, input, 'filter');

/** Newest first, `limit` rows older than `before`. */
export async function searchAudit(store: Store, filters: AuditFiltersInput, page: AuditPageInput = {}): Promise<AuditPage> {
  const f = parseAuditFilters(filters);
  const p = parse(auditPageSchema, page, 'page');
  // One extra row tells whether an older page exists without a COUNT.
  const rows = await committedRead(store, (m) => {
    const q = filtered(m, f).orderBy('a.id', 'DESC').limit(p.limit + 1);
    if (p.before !== undefined) q.andWhere('a.id < :before', { before: p.before });
    return q.getMany();
  });
  const more = rows.length > p.limit;
  if (more) rows.length = p.limit;
  return { rows: rows.map(normalised), next: more ? Number(rows[rows.length - 1].id) : null };
}

export interface StreamOptions {
  /** Rows per query (default 1,000): memory is bounded by one batch whatever the total. */
  batchSize?: number;
  /** Only rows with a larger id (resume). */
  afterId?: number;
  /** Told after each batch: rows so far. */
  onBatch?: (rowsSoFar: number) => void;
}

/** Every matching row in ascending id order, read in batches by keyset; constant memory. */
export async function* iterateAudit(store: Store, filters: AuditFiltersInput, opts: StreamOptions = {}): AsyncGenerator<AuditEventRow> {
  const f = parseAuditFilters(filters);
  const batch = opts.batchSize ?? 1000;
  if (!Number.isInteger(batch) || batch < 1 || batch > 10_000) throw new ValidationError('invalid audit stream: batchSize must be a whole number from 1 to 10000');
  let after = opts.afterId ?? 0;
  let count = 0;
  for (;;) {
    const rows = await committedRead(store, (m) => filtered(m, f).andWhere('a.id > :after', { after }).orderBy('a.id', 'ASC').limit(batch).getMany());
    for (const r of rows) yield normalised(r);
    count += rows.length;
    opts.onBatch?.(count);
    if (rows.length < batch) return;
    after = Number(rows[rows.length - 1].id);
  }
}

/** Calls `onRow` for every matching row in ascending order (awaiting it: back-pressure); returns the count. */
export async function streamAudit(store: Store, filters: AuditFiltersInput, onRow: (row: AuditEventRow) => unknown, opts: StreamOptions = {}): Promise<number> {
  let n = 0;
  for await (const row of iterateAudit(store, filters, opts)) {
    await onRow(row);
    n++;
  }
  return n;
}

/** How many rows match (for a progress bar's total). */
export async function countAudit(store: Store, filters: AuditFiltersInput): Promise<number> {
  const f = parseAuditFilters(filters);
  return committedRead(store, (m) => filtered(m, f).getCount());
}

/**
 * Up to `limit` rows after `afterSeq` in seq order — commit order (server/audit/chain.ts): a row
 * with a larger seq is committed after every smaller one, so a reader that follows seq misses none.
 */
export async function auditAfterSeq(store: Store, afterSeq: number, limit: number): Promise<AuditEventRow[]> {
  const rows = await committedRead(store, (m) => m.createQueryBuilder(AuditEventEntity, 'a').where('a.seq > :afterSeq', { afterSeq }).orderBy('a.seq', 'ASC').limit(limit).getMany());
  return rows.map(normalised);
}

/** The largest seq stored, 0 when there is none. */
export async function lastAuditSeq(store: Store): Promise<number> {
  const r = await committedRead(store, (m) => m.createQueryBuilder(AuditEventEntity, 'a').select('MAX(a.seq)', 'max').getRawOne<{ max: string | number | null }>());
  return Number(r?.max ?? 0);
}

/**
 * The JSON form of an event, the same in exports, `tail --json` and forwarding: stable field
 * names, detail as an object, and the chain fields (seq, prevHash, hash) for a SIEM to check.
 */
export function auditEventJson(r: AuditEventRow): Record<string, unknown> {
  let detail: unknown = r.detail;
  if (r.detail !== null) {
    try {
      detail = JSON.parse(r.detail);
    } catch {
      // Stored as written; a row edited by hand may hold anything.
    }
  }
  return {
    seq: r.seq === undefined || r.seq === null ? null : Number(r.seq),
    id: Number(r.id),
    at: r.at,
    actor: r.actor,
    action: r.action,
    outcome: r.outcome,
    targetType: r.targetType,
    targetId: r.targetId,
    requestId: r.requestId,
    kekUri: r.kekUri,
    detail,
    prevHash: r.prevHash ?? null,
    hash: r.hash ?? null,
  };
}

function filtered(m: EntityManager, f: AuditFilters): SelectQueryBuilder<AuditEventRow> {
  const q = m.createQueryBuilder(AuditEventEntity, 'a').where('1 = 1');
  if (f.actor !== undefined) q.andWhere('a.actor = :actor', { actor: f.actor });
  if (f.action !== undefined) q.andWhere('a.action = :action', { action: f.action });
  if (f.outcome !== undefined) q.andWhere('a.outcome = :outcome', { outcome: f.outcome });
  if (f.targetType !== undefined) q.andWhere('a.targetType = :targetType', { targetType: f.targetType });
  if (f.targetId !== undefined) q.andWhere('a.targetId = :targetId', { targetId: f.targetId });
  if (f.requestId !== undefined) q.andWhere('a.requestId = :requestId', { requestId: f.requestId });
  // `at` is fixed-width ISO UTC text: it compares chronologically as text on every engine.
  if (f.since !== undefined) q.andWhere('a.at >= :since', { since: f.since });
  if (f.until !== undefined) q.andWhere('a.at < :until', { until: f.until });
  return q;
}

/**
 * On SQLite the server's single connection may be inside another call chain's open transaction; a
 * plain read there would see rows that may yet roll back, so it reads in the store's turn (as
 * `ownWrites` does) — unless the caller already holds that turn, where waiting for it would
 * deadlock. Other engines read on a pooled connection of their own.
 */
export const committedRead = <T>(store: Store, fn: (m: EntityManager) => Promise<T>): Promise<T> =>
  store.driver === 'better-sqlite3' && !store.inTransaction ? store.transaction((tx) => fn(tx.manager)) : fn(store.repos.manager);

/** The same types whatever the engine: id a number; seq (BIGINT) a string, as PostgreSQL and MariaDB return it. */
function normalised(r: AuditEventRow): AuditEventRow {
  const o = r as Omit<AuditEventRow, 'id' | 'seq'> & { id?: unknown; seq?: unknown };
  if (typeof o.id === 'string') o.id = Number(o.id);
  if (typeof o.seq === 'number') o.seq = String(o.seq);
  return o as AuditEventRow;
}
