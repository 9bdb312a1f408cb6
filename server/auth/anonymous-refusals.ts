import type { Store } from '../repositories/store';
import type { AuditInput } from '../repositories/audit';

/** Rows a minute per (client address, error code); the rest are counted into the next row. */
export const ANONYMOUS_ROWS_PER_MINUTE = 10;
const WINDOW_MS = 60_000;
/** Keys tracked at once; beyond, refusals share one key per error code (an address spray stays bounded). */
const MAX_KEYS = 10_000;

interface Window {
  start: number;
  written: number;
  suppressed: number;
  last?: AuditInput;
}

/**
 * Audits refusals of requests that never authenticated (a junk Bearer token on the key API) without
 * letting a flood take the audit-chain lock once per request: rows go through the group commit (one
 * lock per batch) and at most `rowsPerMinute` a minute per client address and error code; the rest
 * are counted (`suppressed: n`) in the next row for that key, written at the latest when the minute
 * ends. Every refusal is accounted for: Σ (1 + suppressed) over the rows. Same scheme as SCIM's
 * refusals (scim/refusal-audit.ts).
 */
export class AnonymousRefusalAudit {
  private readonly windows = new Map<string, Window>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly store: Store,
    private readonly rowsPerMinute = ANONYMOUS_ROWS_PER_MINUTE,
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves once the refusal's row (if one is due now) is committed; rejects when that write fails. */
  refused(client: string | undefined, code: string, event: AuditInput): Promise<void> {
    let key = `${client ?? '?'}|${code}`;
    if (!this.windows.has(key) && this.windows.size >= MAX_KEYS) key = `overflow|${code}`;
    const now = this.now();
    let w = this.windows.get(key);
    let carried = 0;
    if (w && now - w.start >= WINDOW_MS) {
      carried = w.suppressed;
      w = undefined;
    }
    if (!w) this.windows.set(key, (w = { start: now, written: 0, suppressed: 0 }));
    if (w.written >= this.rowsPerMinute) {
      w.suppressed++;
      w.last = event;
      this.schedule();
      return Promise.resolve();
    }
    w.written++;
    return this.write(carried ? suppressed(event, carried) : event);
  }

  /** Writes the counts of every ended window (every window with `all`) and forgets them. */
  async flush(all = false): Promise<void> {
    const now = this.now();
    for (const [key, w] of this.windows) {
      if (!all && now - w.start < WINDOW_MS) continue;
      this.windows.delete(key);
      if (w.suppressed > 0 && w.last) void this.write(suppressed(w.last, w.suppressed - 1)).catch(() => undefined);
    }
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private write(e: AuditInput): Promise<void> {
    const p = this.store.auditCommitted(e).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return p;
  }

  private schedule(): void {
    if (this.timer) return;
    let earliest = Infinity;
    for (const w of this.windows.values()) if (w.suppressed > 0) earliest = Math.min(earliest, w.start);
    if (earliest === Infinity) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().then(() => this.schedule());
    }, Math.max(0, earliest + WINDOW_MS - this.now()));
    this.timer.unref();
  }
}

const suppressed = (e: AuditInput, n: number): AuditInput => (n > 0 ? { ...e, detail: { ...e.detail, suppressed: n } } : e);
