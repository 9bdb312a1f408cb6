/**
 * Delivers outbox events to the configured webhook, signed per Standard Webhooks, at least once,
 * in order per resource, with exponential back-off and no give-up (a cloud service that is down
 * for a day gets everything when it is back). State is only in the database, so a restart or
 * another replica carries on where this one stopped.
 */
import type { OutboxRow } from '../../entities/scim';
import type { OutboxRepository } from '../repositories/outbox';
import type { Runner } from '../../server/repositories/runner';
import { signedHeaders } from './signature';

export interface DelivererOptions {
  url: string;
  secret: string;
  run: Runner<OutboxRepository>;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** First retry delay; doubles per attempt up to maxBackoffMs. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  batchSize?: number;
  fetch?: typeof fetch;
  now?: () => Date;
  log?: { warn: (obj: object, msg: string) => void; info?: (obj: object, msg: string) => void };
}

export class OutboxDeliverer {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;

  constructor(private readonly opts: DelivererOptions) {}

  backoffMs(attempts: number): number {
    const base = this.opts.baseBackoffMs ?? 1000;
    const max = this.opts.maxBackoffMs ?? 3_600_000;
    return Math.min(max, base * 2 ** Math.min(attempts - 1, 30));
  }

  /** One pass: delivers every due head-of-line event. Returns how many were delivered. */
  async runOnce(): Promise<number> {
    const now = this.opts.now ?? (() => new Date());
    const run = this.opts.run;
    let delivered = 0;
    // Resources whose head event failed in this pass wait for their back-off, not the next round.
    const failed = new Set<string>();
    // Loop so the next event of a resource goes out in the same pass once its predecessor is done.
    for (let round = 0; round < 100; round++) {
      const due = (await run((r) => r.due(now().toISOString(), this.opts.batchSize ?? 50))).filter((r) => !failed.has(r.resource_id));
      if (due.length === 0) break;
      let progressed = false;
      for (const row of due) {
        const leaseUntil = new Date(now().getTime() + (this.opts.timeoutMs ?? 10_000) * 2).toISOString();
        if (!(await run((r) => r.claim(row, leaseUntil)))) continue;
        const ok = await this.deliver(row);
        if (ok === true) {
          await run((r) => r.markDelivered(row.seq, now().toISOString(), row.attempts + 1));
          delivered++;
          progressed = true;
        } else {
          failed.add(row.resource_id);
          const attempts = row.attempts + 1;
          await run((r) => r.markFailed(row.seq, attempts, new Date(now().getTime() + this.backoffMs(attempts)).toISOString(), ok));
          this.opts.log?.warn({ eventId: row.event_id, attempts, error: ok }, 'webhook delivery failed; will retry');
        }
      }
      if (!progressed) break;
    }
    return delivered;
  }

  /** true, or the reason it failed. */
  private async deliver(row: OutboxRow): Promise<true | string> {
    const f = this.opts.fetch ?? fetch;
    const headers = signedHeaders(this.opts.secret, row.event_id, row.payload, (this.opts.now ?? (() => new Date()))());
    try {
      const res = await f(this.opts.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'crypto-server-outbox/1', ...headers },
        body: row.payload,
        redirect: 'error',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 10_000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 200 && res.status < 300) return true;
      return `HTTP ${res.status}`;
    } catch (err) {
      // Stored, logged and shown by the CLI: the error's name and system code only, never its
      // message (fetch errors can quote the URL, credentials included).
      const e = err as Error & { cause?: { code?: string } };
      return `request failed: ${e.name === 'TimeoutError' ? 'timeout' : [e.name, e.cause?.code].filter(Boolean).join(' ')}`;
    }
  }

  start(intervalMs = 1000): void {
    if (!this.stopped) return;
    this.stopped = false;
    const tick = () => {
      if (this.stopped) return;
      this.running = this.runOnce()
        .catch((err: Error) => this.opts.log?.warn({ error: err.message }, 'outbox pass failed'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }
}
