import type { Store } from '../repositories/store';
import type { AuditInput } from '../repositories/audit';

const WINDOW_MS = 60_000;
/** Keys tracked at once; beyond, refusals share one overflow key per reason (a spray of addresses stays bounded). */
const MAX_KEYS = 10_000;

interface Window {
  start: number;
  written: number;
  suppressed: number;
  /** The last suppressed refusal: written, with the count, when the window ends. */
  last?: AuditInput;
}

export interface RefusalBoundOptions {
  /** Rows a minute per key. */
  rowsPerMinute: number;
  now?: () => number;
  /** Given: a failed write is reported here and `record` never rejects. Absent: `record` rejects with it. */
  onError?: (err: unknown) => void;
}

/**
 * Audits refusals without letting a flood of bad requests become a chain-locking write per request:
 * rows go through the group commit, at most `rowsPerMinute` a minute per key (caller, status…) in
 * this process; the rest are counted and carried in the next row for that key (`suppressed: n`),
 * written at the latest when the minute ends. Every refusal is accounted for: Σ (1 + suppressed).
 */
export class RefusalBound {
  private readonly windows = new Map<string, Window>();
  private readonly inFlight = new Set<Promise<void>>();
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(
    private readonly store: Store,
    private readonly opts: RefusalBoundOptions,
  ) {
    this.now = opts.now ?? Date.now;
    // A stopping process writes the counts it holds instead of losing up to a minute of them.
    store.beforeClose(() => this.flush(true));
  }

  /** Records one refusal under `key` (`<who>|<why>`); resolves once its row, if one is due now, is committed. */
  record(key: string, event: AuditInput): Promise<void> {
    const now = this.now();
    if (!this.windows.has(key) && this.windows.size >= MAX_KEYS) key = `overflow|${key.slice(key.lastIndexOf('|') + 1)}`;
    let w = this.windows.get(key);
    let carried = 0;
    if (w && now - w.start >= WINDOW_MS) {
      carried = w.suppressed;
      w = undefined;
    }
    if (!w) this.windows.set(key, (w = { start: now, written: 0, suppressed: 0 }));
    if (w.written >= this.opts.rowsPerMinute) {
      w.suppressed++;
      w.last = event;
      this.schedule();
      return Promise.resolve();
    }
    w.written++;
    return this.write(withSuppressed(event, carried));
  }

  /** Writes the counts of every window that has ended (all of them with `all`), and forgets those windows. */
  async flush(all = false): Promise<void> {
    const now = this.now();
    for (const [key, w] of this.windows) {
      if (!all && now - w.start < WINDOW_MS) continue;
      this.windows.delete(key);
      if (w.suppressed > 0 && w.last) void this.write(withSuppressed(w.last, w.suppressed - 1)).catch(() => undefined);
    }
    await this.idle();
  }

  /** Resolves when every row started so far is committed (or has failed). */
  async idle(): Promise<void> {
    while (this.inFlight.size) await Promise.allSettled([...this.inFlight]);
  }

  private write(e: AuditInput): Promise<void> {
    const written = this.store.auditCommitted(e);
    const p = (this.opts.onError ? written.catch(this.opts.onError) : written).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    return p;
  }

  /** One timer for the earliest window with suppressed refusals; unref'd, so it never keeps the process up. */
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

function withSuppressed(e: AuditInput, suppressed: number): AuditInput {
  return suppressed > 0 ? { ...e, detail: { ...e.detail, suppressed } } : e;
}
