import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Counter, Gauge } from 'prom-client';
import { registeredMetric as metric } from '../metrics';
import type { AuditEventRow } from '../../entities';
import type { AuditForwardConfig, AuditSinkSpec, SyslogSettings } from '../config/audit';
import type { Store } from '../repositories/store';
import { ownWrites } from '../repositories/runner';
import { ForwardCursorRepository } from './forward-cursors';
import { FileSink, StdoutSink, type AuditSink } from './forward-sinks';
import { SyslogTlsSink } from './forward-syslog';
import { auditAfterSeq, lastAuditSeq } from './search';

/**
 * Forwards every committed audit event to each configured sink, at least once, from the database
 * (the outbox pattern: the audit row is the outbox). Per sink a loop reads rows with seq greater
 * than the sink's cursor, sends them, and only then advances the cursor; a restart resumes there.
 * A sink that is down only delays its own events (lag metric, warning log): the audited request
 * never waits for forwarding. A lease on the cursor row lets one process per sink forward.
 */

const lagEvents = metric('crypto_server_audit_forward_lag_events', () => new Gauge({ name: 'crypto_server_audit_forward_lag_events', help: 'Audit events committed but not yet forwarded to the sink', labelNames: ['sink'] as const }));
const lagSeconds = metric('crypto_server_audit_forward_lag_seconds', () => new Gauge({ name: 'crypto_server_audit_forward_lag_seconds', help: 'Age of the oldest audit event not yet forwarded to the sink (0 when caught up)', labelNames: ['sink'] as const }));
const forwarded = metric('crypto_server_audit_forwarded_events_total', () => new Counter({ name: 'crypto_server_audit_forwarded_events_total', help: 'Audit events sent to the sink (a resend after a failure counts again)', labelNames: ['sink'] as const }));
const failures = metric('crypto_server_audit_forward_failures_total', () => new Counter({ name: 'crypto_server_audit_forward_failures_total', help: 'Failed attempts to forward a batch of audit events', labelNames: ['sink'] as const }));

export interface ForwarderOptions extends Pick<AuditForwardConfig, 'pollMs' | 'batch' | 'from'> {
  /** How long a lease lasts without renewal (a crashed holder's sink is taken over after it). */
  leaseMs?: number;
  /** Per batch; a sink that hangs longer fails the attempt. */
  sendTimeoutMs?: number;
  maxBackoffMs?: number;
  /** How long a gap in seq (rows pruned) is waited on before it is skipped. */
  gapWaitMs?: number;
  holder?: string;
}

type Step = 'caught-up' | 'more' | 'not-holder';

/** What the forwarder logs through (a pino logger fits). */
export interface ForwardLog {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export class AuditForwarder {
  private readonly holder: string;
  private readonly cursors: <T>(fn: (r: ForwardCursorRepository) => Promise<T>) => Promise<T>;
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private readonly wake = new Set<() => void>();
  private readonly gapSince = new Map<string, number>();

  constructor(
    private readonly store: Store,
    private readonly sinks: AuditSink[],
    private readonly log: ForwardLog,
    private readonly opts: ForwarderOptions,
  ) {
    this.holder = (opts.holder ?? `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`).slice(0, 64);
    this.cursors = ownWrites(store, (m) => new ForwardCursorRepository(m));
  }

  start(): this {
    for (const sink of this.sinks) this.loops.push(this.loop(sink));
    return this;
  }

  /**
   * Ends the loops, gives the leases back, closes the sinks. A batch still being sent after
   * `boundMs` (a hung sink) is cut by closing its sink; its events stay behind the cursor.
   */
  async stop(boundMs = 2000): Promise<void> {
    this.stopped = true;
    for (const w of this.wake) w();
    let t: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.loops), new Promise((r) => (t = setTimeout(r, boundMs)))]);
    clearTimeout(t);
    await Promise.all(
      this.sinks.map(async (s) => {
        await this.cursors((r) => r.release(s.name, this.holder)).catch(() => undefined);
        await s.close().catch(() => undefined);
      }),
    );
  }

  private async loop(sink: AuditSink): Promise<void> {
    let failed = 0;
    while (!this.stopped) {
      let wait = this.opts.pollMs;
      try {
        const step = await this.step(sink);
        if (failed > 0) this.log.info({ sink: sink.name, failedAttempts: failed }, 'audit forwarding resumed');
        failed = 0;
        if (step === 'more') continue;
      } catch (err) {
        failed++;
        failures.inc({ sink: sink.name });
        const reason = describe(err);
        // Warn when it starts failing, then every 10th attempt: an outage of hours must not flood the log.
        if (failed === 1 || failed % 10 === 0) this.log.warn({ sink: sink.name, attempts: failed, error: reason }, 'audit forwarding failed; events wait in the database and are sent once the sink is back');
        await this.cursors((r) => r.failed(sink.name, this.holder, reason, new Date().toISOString())).catch(() => undefined);
        wait = Math.min(this.opts.maxBackoffMs ?? 30_000, this.opts.pollMs * 2 ** Math.min(failed - 1, 10));
      }
      await this.sleep(wait);
    }
  }

  /** One round for one sink: hold the lease, read after the cursor, send, advance. */
  async step(sink: AuditSink): Promise<Step> {
    const now = Date.now();
    const cursor = await this.cursors((r) =>
      r.hold(sink.name, this.holder, new Date(now).toISOString(), new Date(now + (this.opts.leaseMs ?? 30_000)).toISOString(), async () => (this.opts.from === 'now' ? lastAuditSeq(this.store) : 0)),
    );
    if (cursor === null) {
      lagEvents.remove({ sink: sink.name });
      lagSeconds.remove({ sink: sink.name });
      return 'not-holder';
    }
    const rows = this.contiguous(sink.name, cursor, await auditAfterSeq(this.store, cursor, this.opts.batch));
    await this.observeLag(sink.name, cursor, rows);
    if (rows.length === 0) return 'caught-up';
    await withTimeout(sink.send(rows), this.opts.sendTimeoutMs ?? 30_000, `sending to ${sink.name}`);
    forwarded.inc({ sink: sink.name }, rows.length);
    const last = Number(rows[rows.length - 1].seq);
    if (!(await this.cursors((r) => r.advance(sink.name, this.holder, last, new Date().toISOString())))) return 'not-holder';
    lagEvents.set({ sink: sink.name }, Math.max(0, (await lastAuditSeq(this.store)) - last));
    return rows.length === this.opts.batch ? 'more' : 'caught-up';
  }

  /**
   * Seq is gapless in commit order, so a row after a missing seq means rows were deleted (audit
   * prune) — or, were that ever to change, one not yet committed. Sends up to the first gap, and
   * past a gap only once it has stood for gapWaitMs.
   */
  private contiguous(sink: string, cursor: number, rows: AuditEventRow[]): AuditEventRow[] {
    let expected = cursor + 1;
    let i = 0;
    while (i < rows.length && Number(rows[i].seq) === expected) (i++, expected++);
    if (i === rows.length) {
      this.gapSince.delete(sink);
      return rows;
    }
    if (i > 0) return rows.slice(0, i);
    const since = this.gapSince.get(sink) ?? Date.now();
    this.gapSince.set(sink, since);
    if (Date.now() - since < (this.opts.gapWaitMs ?? 5000)) return [];
    this.gapSince.delete(sink);
    this.log.warn({ sink, missing: `${expected}-${Number(rows[0].seq) - 1}` }, 'audit events missing from the database (pruned?) were skipped by forwarding');
    return rows;
  }

  private async observeLag(sink: string, cursor: number, pending: AuditEventRow[]): Promise<void> {
    if (pending.length === 0) {
      lagEvents.set({ sink }, 0);
      lagSeconds.set({ sink }, 0);
      return;
    }
    lagEvents.set({ sink }, Math.max(0, (await lastAuditSeq(this.store)) - cursor));
    lagSeconds.set({ sink }, Math.max(0, (Date.now() - Date.parse(pending[0].at)) / 1000));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wake.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake.add(done);
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** The system code and the first line of the message, short enough for the cursor row and a log line. */
function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return [e?.code, e?.message?.split('\n')[0]].filter(Boolean).join(': ').slice(0, 255) || 'error';
}

export function createSink(spec: AuditSinkSpec, syslog: SyslogSettings): AuditSink {
  if (spec.kind === 'stdout') return new StdoutSink();
  if (spec.kind === 'file') return new FileSink(spec.name, spec.path);
  return new SyslogTlsSink(spec.name, spec.host, spec.port, syslog);
}

/** Started by `serve` when CS_AUDIT_FORWARD names sinks; every worker and replica may start it (leases decide). */
export function startAuditForwarding(store: Store, config: AuditForwardConfig, log: ForwardLog): AuditForwarder | undefined {
  if (config.sinks.length === 0) return undefined;
  return new AuditForwarder(store, config.sinks.map((s) => createSink(s, config.syslog)), log, config).start();
}
