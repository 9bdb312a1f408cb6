import { Command, InvalidArgumentError, type CommanderError } from 'commander';
import { createWriteStream, renameSync, rmSync, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { withStore } from './with-store';
import { wholeNumber } from './options';
import { describeFailure } from './failure';
import { auditAfterSeq, auditEventJson, committedRead, countAudit, iterateAudit, lastAuditSeq, parseAuditTime, searchAudit, type AuditFiltersInput } from '../audit/search';
import { ForwardCursorRepository } from '../audit/forward-cursors';
import { progressBar } from '../keks/progress';
import { ValidationError } from '../errors';
import type { AuditEventRow } from '../../entities';

/**
 * `crypto-server audit tail|search|export`: the audit log read from the database (docs/operations.md
 * "Reading and forwarding the audit log"). Bad input exits 2 with a message naming the flag.
 */

interface FilterFlags {
  actor?: string;
  action?: string;
  outcome?: 'success' | 'failure' | 'refused';
  target?: { type?: string; id?: string };
  since?: string;
  until?: string;
  requestId?: string;
}

const TIME_HELP = 'ISO 8601 (2026-12-01T10:00:00Z, 2026-12-01) or relative to now (-1h, 7d, 30m)';

const timeArg = (value: string): string => {
  const t = parseAuditTime(value);
  if (t === undefined) throw new InvalidArgumentError(`must be ${TIME_HELP}`);
  return t;
};

const textArg = (max: number) => (value: string): string => {
  if (value.length === 0 || value.length > max) throw new InvalidArgumentError(`must be 1 to ${max} characters`);
  return value;
};

/** `type:id`, `type:` (every target of a type) or an id alone. */
const targetArg = (value: string): { type?: string; id?: string } => {
  const m = /^([a-z][a-z0-9-]{0,31}):(.*)$/s.exec(value);
  const t = m ? { type: m[1], id: m[2] || undefined } : { id: value };
  if (!t.type && !t.id) throw new InvalidArgumentError('must be type:id (user:3f2a…), type: or an id');
  if (t.id !== undefined && t.id.length > 255) throw new InvalidArgumentError('the id must be at most 255 characters');
  return t;
};

const outcomeArg = (value: string): FilterFlags['outcome'] => {
  if (value !== 'success' && value !== 'failure' && value !== 'refused') throw new InvalidArgumentError('must be success, failure or refused');
  return value;
};

function withFilterOptions(c: Command, sinceRequired = false): Command {
  const since: [string, string, typeof timeArg] = ['--since <time>', `from this time on (inclusive); ${TIME_HELP}`, timeArg];
  return (sinceRequired ? c.requiredOption(...since) : c.option(...since))
    .option('--actor <actor>', 'who acted (user id, scim, backend:<token>, system:…)', textArg(255))
    .option('--action <action>', 'e.g. password-key.unwrap, group.rotate', textArg(64))
    .option('--outcome <outcome>', 'success, failure or refused', outcomeArg)
    .option('--target <target>', 'type:id (user:<id>, group:<id>), type: for every target of a type, or an id', targetArg)
    .option('--until <time>', 'before this time (exclusive); same forms', timeArg)
    .option('--request-id <id>', 'the X-Request-Id of one request', textArg(64));
}

function filtersOf(o: FilterFlags): AuditFiltersInput {
  if (o.since && o.until && o.since >= o.until) throw new UsageError('--since must be before --until');
  return { actor: o.actor, action: o.action, outcome: o.outcome, targetType: o.target?.type, targetId: o.target?.id, since: o.since, until: o.until, requestId: o.requestId };
}

/** A usage mistake found after parsing: reported like commander's own, exit 2. */
class UsageError extends Error {}

/** Values come from clients and identity providers: control characters would drive the terminal. */
const printable = (v: string | null | undefined): string => (v == null ? '-' : v.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));

/** One event as a line for people: time, seq, outcome, actor, action, target, request, detail. */
export function auditLine(r: AuditEventRow): string {
  const target = r.targetType || r.targetId ? `${printable(r.targetType)}:${printable(r.targetId)}` : '-';
  return [r.at, `#${r.seq ?? r.id}`, r.outcome, printable(r.actor), printable(r.action), target, `req=${printable(r.requestId)}`, printable(r.detail)].join('\t');
}

const jsonLine = (r: AuditEventRow): string => JSON.stringify(auditEventJson(r));

export interface TailOptions {
  lines: number;
  follow?: boolean;
  json?: boolean;
  /** Follow: how often to look for new events. */
  intervalMs?: number;
  /** Follow: resolves when following should end (a signal). */
  until?: Promise<void>;
}

/** The last `lines` events, oldest first; with `follow`, then every new one as it is committed (by seq). */
export async function auditTail(env: NodeJS.ProcessEnv, print: (line: string) => void, o: TailOptions): Promise<number> {
  return withStore(env, async (store) => {
    const format = o.json ? jsonLine : auditLine;
    const last: AuditEventRow[] = [];
    let before: number | undefined;
    do {
      const p = await searchAudit(store, {}, { before, limit: Math.min(o.lines - last.length, 500) });
      last.push(...p.rows);
      before = p.next ?? undefined;
    } while (before !== undefined && last.length < o.lines);
    for (const r of last.reverse()) print(format(r));
    if (!o.follow) return 0;
    // Follow by seq, not id: seq is commit order, so an event committed late is not skipped.
    let seq = last.length ? Math.max(...last.map((r) => Number(r.seq ?? 0))) : await lastAuditSeq(store);
    let stop = false;
    void o.until?.then(() => (stop = true));
    while (!stop) {
      const rows = await auditAfterSeq(store, seq, 500);
      for (const r of rows) print(format(r));
      if (rows.length) seq = Number(rows[rows.length - 1].seq);
      if (rows.length < 500) await Promise.race([new Promise((r) => setTimeout(r, o.intervalMs ?? 1000)), o.until]);
    }
    return 0;
  });
}

export interface SearchOptions extends FilterFlags {
  limit: number;
  before?: number;
  json?: boolean;
}

/** One page, newest first; the cursor for the next page goes to `note` (stderr). */
export async function auditSearch(env: NodeJS.ProcessEnv, print: (line: string) => void, note: (line: string) => void, o: SearchOptions): Promise<number> {
  const filters = filtersOf(o);
  return withStore(env, async (store) => {
    const page = await searchAudit(store, filters, { limit: o.limit, before: o.before });
    for (const r of page.rows) print(o.json ? jsonLine(r) : auditLine(r));
    if (page.rows.length === 0) note('no matching events');
    if (page.next !== null) note(`more: add --before ${page.next} for the next page`);
    return 0;
  });
}

export interface ExportOptions extends FilterFlags {
  format: 'jsonl' | 'csv';
  output?: string;
  batchSize?: number;
}

const CSV_COLUMNS = ['seq', 'id', 'at', 'actor', 'action', 'outcome', 'targetType', 'targetId', 'requestId', 'kekUri', 'detail', 'prevHash', 'hash'] as const;

/** RFC 4180: a field with a comma, quote, CR or LF is quoted, quotes doubled. A leading =+-@ is kept as is (the export is data, not a spreadsheet). */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const csvLine = (r: AuditEventRow): string => {
  const j = auditEventJson(r);
  return CSV_COLUMNS.map((c) => csvField(c === 'detail' ? r.detail : j[c])).join(',');
};

/**
 * Streams every matching event, ascending, to `output` (written as `<output>.partial`, renamed
 * when complete: a failed export leaves no file that looks whole) or to `out`. Memory is one batch.
 */
export async function auditExport(env: NodeJS.ProcessEnv, out: NodeJS.WritableStream, err: NodeJS.WriteStream, o: ExportOptions): Promise<{ code: number; rows: number; batches: number }> {
  const filters = filtersOf(o);
  return withStore(env, async (store) => {
    const bar = progressBar(err);
    const total = bar ? await countAudit(store, filters) : 0;
    const partial = o.output ? `${o.output}.partial` : undefined;
    const sink: NodeJS.WritableStream | WriteStream = partial ? createWriteStream(partial, { flags: 'w', mode: 0o600 }) : out;
    let rows = 0;
    let batches = 0;
    try {
      const write = async (line: string) => {
        if (!sink.write(`${line}\n`)) await once(sink, 'drain');
      };
      if (o.format === 'csv') await write(CSV_COLUMNS.join(','));
      const line = o.format === 'csv' ? csvLine : jsonLine;
      for await (const r of iterateAudit(store, filters, {
        batchSize: o.batchSize,
        onBatch: () => {
          batches++;
          bar?.(rows, Math.max(total, rows));
        },
      })) {
        await write(line(r));
        rows++;
      }
      bar?.(rows, rows);
      if (partial) {
        const file = sink as WriteStream;
        await new Promise<void>((resolve, reject) => file.end((e?: Error | null) => (e ? reject(e) : resolve())));
        renameSync(partial, o.output!);
      }
    } catch (e) {
      if (partial) {
        (sink as WriteStream).destroy();
        rmSync(partial, { force: true });
      }
      throw e;
    }
    if (o.output) err.write(`exported ${rows} events to ${o.output}\n`);
    return { code: 0, rows, batches };
  });
}

/**
 * Where forwarding stands per sink: configured sinks and cursors left by earlier settings, how far
 * each has got, who holds it, the last error. Exit 1 while a configured sink is failing and behind.
 */
export async function auditForwardStatus(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  return withStore(env, async (store, config) => {
    const head = await lastAuditSeq(store);
    const cursors = new Map((await committedRead(store, (m) => new ForwardCursorRepository(m).list())).map((c) => [c.sink, c]));
    const configured = config.audit.forward.sinks.map((s) => s.name);
    if (configured.length === 0) print('forwarding: not configured (CS_AUDIT_FORWARD)');
    let failing = false;
    for (const name of [...new Set([...configured, ...cursors.keys()])]) {
      const c = cursors.get(name);
      const done = c ? Number(c.lastSeq) : 0;
      const lease = c?.holder && c.leaseExpiresAt && c.leaseExpiresAt > new Date().toISOString() ? `held by ${c.holder}` : 'not held';
      const state = configured.includes(name) ? (c ? lease : 'not started') : 'not configured any more';
      if (configured.includes(name) && c?.lastError && done < head) failing = true;
      print(`${name}	${state}	forwarded up to seq ${done} of ${head} (${Math.max(0, head - done)} behind)${c?.lastError ? `	last error: ${printable(c.lastError)}` : ''}`);
    }
    return failing ? 1 : 0;
  });
}

/** Reports a failure of an audit command: a usage mistake exits 2, anything else 1. */
async function run(fn: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await fn();
  } catch (err) {
    // The reader went away (`… | head`): nothing more to say to it, and nothing went wrong here.
    if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
    if (err instanceof UsageError || err instanceof ValidationError) {
      console.error(`crypto-server: ${err.message}`);
      process.exitCode = 2;
      return;
    }
    console.error(`crypto-server: ${describeFailure(err)}`);
    process.exitCode = 1;
  }
}

/** Until Ctrl-C or SIGTERM. */
const signalled = () => new Promise<void>((resolve) => ['SIGINT', 'SIGTERM'].forEach((s) => process.once(s, () => resolve())));

export function registerAudit(program: Command): Command {
  const audit = program
    .command('audit')
    .description('read and export the audit log')
    // Usage errors (an unknown flag, a bad value) exit 2, as the other usage mistakes of these commands.
    .exitOverride((e: CommanderError) => process.exit(e.exitCode === 0 ? 0 : 2));
  audit
    .command('tail')
    .description('the last events, oldest first; -f keeps printing new ones as they are committed')
    .option('-n, --lines <n>', 'how many (1 to 10000)', wholeNumber(1, 10_000), 20)
    .option('-f, --follow', 'keep printing new events (Ctrl-C ends)')
    .option('--json', 'one JSON object per line')
    .action((o: { lines: number; follow?: boolean; json?: boolean }) => run(() => auditTail(process.env, console.log, { ...o, until: o.follow ? signalled() : undefined })));
  withFilterOptions(audit.command('search').description('matching events, newest first, a page at a time'))
    .option('--limit <n>', 'events per page (1 to 500)', wholeNumber(1, 500), 50)
    .option('--before <id>', 'the page after this cursor (printed at the end of a page)', wholeNumber(1, Number.MAX_SAFE_INTEGER))
    .option('--json', 'one JSON object per line')
    .action((o: SearchOptions) => run(() => auditSearch(process.env, console.log, (l) => console.error(l), o)));
  withFilterOptions(audit.command('export').description('every matching event, oldest first, streamed (any number, constant memory)'), true)
    .option('--format <format>', 'jsonl or csv', (v: string) => {
      if (v !== 'jsonl' && v !== 'csv') throw new InvalidArgumentError('must be jsonl or csv');
      return v;
    }, 'jsonl')
    .option('--output <file>', 'write to this file (default: standard output)')
    .action((o: ExportOptions) => run(async () => (await auditExport(process.env, process.stdout, process.stderr, o)).code));
  audit
    .command('forward-status')
    .description('how far forwarding to each CS_AUDIT_FORWARD sink has got, who forwards, the last error (exit 1 while a sink is failing)')
    .action(() => run(() => auditForwardStatus(process.env, console.log)));
  return audit;
}
