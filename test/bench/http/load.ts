import { join } from 'node:path';
import { runNode, treeCpuMsByProcess, treeRss } from './processes';
import { wrkLoad } from './wrk-load';

export type Generator = 'autocannon' | 'wrk';

/** What the load generator process is asked to do. */
export interface LoadSpec {
  /** Origin of the target, e.g. http://127.0.0.1:8080. */
  url: string;
  method: 'GET' | 'POST' | 'PATCH';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
  /** Stop after this many requests even if time is left (e.g. one removal per prepared member). */
  maxRequests?: number;
  /** Offered load in requests per second across all connections (default: as fast as answered). */
  rate?: number;
  /** With `rate`: evenly spaced, open-loop requests (paced-load.ts) instead of autocannon's per-second bursts. */
  paced?: boolean;
  /**
   * Who sends a closed-loop load (default autocannon). wrk (wrk-load.ts) only for loads without
   * `rate` or `maxRequests`: those stay on the Node generators, which pace and count requests.
   */
  generator?: Generator;
  timeoutSeconds?: number;
  /** Requests cycle through these; `{{seq}}` in a path or body becomes `<runId>-<request number>`. */
  variants: { path: string; body?: string }[];
  runId: string;
}

export interface LoadResult {
  ok: number;
  failed: number;
  statuses: Record<string, number>;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** Every 2xx response time, ms, sorted (empty from wrk, which reports percentiles only). */
  latencies: number[];
  /** CPU time the load generator process used per answered request, ms. */
  generatorCpuMsPerRequest?: number;
  /** Highest resident memory of the target process tree seen while the load ran, bytes. */
  rssBytes?: number;
  /** CPU time the target process tree used per answered request (2xx or not), ms. */
  cpuMsPerRequest?: number;
  /** CPU ms each process of the target tree used over the run (primary first, then workers). */
  cpuMsByProcess?: number[];
  /** CPU time the database's PostgreSQL backends used per answered request, ms. */
  dbCpuMsPerRequest?: number;
  /** PostgreSQL transactions committed in the database (autocommit reads included) per answered request. */
  dbCommitsPerRequest?: number;
}

/** Throughput and percentiles from the 2xx response times (any order) of a run of `seconds`. */
export function summarize(latencies: number[], o: { failed: number; statuses: Record<string, number>; seconds: number }): LoadResult {
  const sorted = [...latencies].sort((a, b) => a - b);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
  return { ok: sorted.length, failed: o.failed, statuses: o.statuses, seconds: o.seconds, rps: sorted.length / o.seconds, p50ms: pct(0.5), p99ms: pct(0.99), maxms: sorted[sorted.length - 1] ?? NaN, latencies: sorted };
}

/** Two runs of one scenario as one result. */
export function combine(a: LoadResult, b: LoadResult): LoadResult {
  const statuses = { ...a.statuses };
  for (const [code, n] of Object.entries(b.statuses)) statuses[code] = (statuses[code] ?? 0) + n;
  const r = summarize([...a.latencies, ...b.latencies], { failed: a.failed + b.failed, statuses, seconds: a.seconds + b.seconds });
  const n = (x: LoadResult) => x.ok + x.failed;
  const cpu = a.cpuMsPerRequest !== undefined && b.cpuMsPerRequest !== undefined && n(a) + n(b) > 0 ? (a.cpuMsPerRequest * n(a) + b.cpuMsPerRequest * n(b)) / (n(a) + n(b)) : undefined;
  return { ...r, rssBytes: Math.max(a.rssBytes ?? 0, b.rssBytes ?? 0) || undefined, cpuMsPerRequest: cpu };
}

/** Runs the load generator as its own process against `spec`, sampling the RSS of `targetPid`. */
export async function runLoad(spec: LoadSpec, targetPid?: number): Promise<LoadResult> {
  let rss = targetPid ? treeRss(targetPid) : 0;
  const cpuBefore = targetPid ? treeCpuMsByProcess(targetPid) : new Map<number, number>();
  const sampler = targetPid ? setInterval(() => (rss = Math.max(rss, treeRss(targetPid))), 250) : undefined;
  try {
    const result = spec.generator === 'wrk' && !spec.rate && !spec.maxRequests ? await wrkLoad(spec) : (JSON.parse(await runNode(join(__dirname, 'load-generator.js'), [], process.env, JSON.stringify(spec))) as LoadResult);
    if (!targetPid) return result;
    const answered = result.ok + result.failed;
    const cpuMsByProcess = [...treeCpuMsByProcess(targetPid)].map(([pid, ms]) => ms - (cpuBefore.get(pid) ?? 0));
    const cpuMs = cpuMsByProcess.reduce((a, b) => a + b, 0);
    return { ...result, rssBytes: Math.max(rss, treeRss(targetPid)), cpuMsPerRequest: answered ? cpuMs / answered : undefined, cpuMsByProcess };
  } finally {
    if (sampler) clearInterval(sampler);
  }
}
