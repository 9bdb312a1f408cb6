import { kmsCallDuration } from '../kms-adapters/metrics';
import type { Series } from './svg-chart';

/**
 * The last hour of KMS latency, in memory: every 10 s the KMS call histogram the server already
 * keeps for /metrics is sampled, and the mean latency of the calls made since the previous sample
 * is kept per provider and operation. The console's own KEK checks are added as they run (the
 * local and PKCS#11 adapters report no call metrics). Per process: under CS_WORKERS > 1 each
 * worker shows what it saw.
 */
const HOUR_MS = 3_600_000;
const MAX_POINTS = 2_000;

interface Point {
  t: number;
  key: string;
  v: number;
}

export class LatencyHistory {
  private points: Point[] = [];
  private readonly totals = new Map<string, { count: number; sum: number }>();
  private timer?: NodeJS.Timeout;

  start(intervalMs = 10_000): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), intervalMs);
    this.timer.unref();
  }

  async sample(now = Date.now()): Promise<void> {
    const { values } = await kmsCallDuration.get();
    const current = new Map<string, { count: number; sum: number }>();
    for (const v of values) {
      const kind = v.metricName?.endsWith('_sum') ? 'sum' : v.metricName?.endsWith('_count') ? 'count' : undefined;
      if (!kind) continue;
      const key = `${String(v.labels.provider)} ${String(v.labels.op)}`;
      const c = current.get(key) ?? { count: 0, sum: 0 };
      c[kind] += v.value;
      current.set(key, c);
    }
    for (const [key, c] of current) {
      const before = this.totals.get(key);
      this.totals.set(key, c);
      const calls = c.count - (before?.count ?? 0);
      // A first sight counts too: calls made before the first sample belong to the last hour.
      if (calls > 0) this.add({ t: now, key, v: ((c.sum - (before?.sum ?? 0)) / calls) * 1000 });
    }
  }

  /** A latency the console measured itself (its KEK checks). */
  record(key: string, ms: number, now = Date.now()): void {
    this.add({ t: now, key, v: ms });
  }

  series(now = Date.now()): Series[] {
    const byKey = new Map<string, Series>();
    for (const p of this.points) {
      if (p.t < now - HOUR_MS) continue;
      const s = byKey.get(p.key) ?? { name: p.key, points: [] };
      s.points.push({ t: p.t, v: p.v });
      byKey.set(p.key, s);
    }
    return [...byKey.values()];
  }

  private add(p: Point): void {
    this.points.push(p);
    const cutoff = p.t - HOUR_MS;
    while (this.points.length > MAX_POINTS || (this.points.length > 0 && this.points[0].t < cutoff)) this.points.shift();
  }
}

/** One per process: the histogram it samples is process-wide too. */
export const latencyHistory = new LatencyHistory();
