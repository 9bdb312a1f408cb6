import { performance } from 'node:perf_hooks';

export interface Figure {
  name: string;
  opsPerSecond: number;
  p50ms: number;
  p99ms: number;
  count: number;
}

/** Runs `fn` with `concurrency` loops for about `seconds`; returns throughput and latency. */
export async function measure(name: string, fn: () => Promise<unknown>, opts: { seconds?: number; concurrency?: number; maxOps?: number } = {}): Promise<Figure> {
  const seconds = opts.seconds ?? 2;
  const concurrency = opts.concurrency ?? 1;
  const maxOps = opts.maxOps ?? Number.MAX_SAFE_INTEGER;
  await fn(); // warm-up
  const latencies: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline && started < maxOps) {
        started++;
        const t = performance.now();
        await fn();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
  return { name, opsPerSecond: latencies.length / elapsed, p50ms: pct(0.5), p99ms: pct(0.99), count: latencies.length };
}

export function printFigures(title: string, figures: Figure[]): void {
  console.log(`\n## ${title}`);
  console.log('| measurement | ops/s | p50 ms | p99 ms | n |');
  console.log('|---|---:|---:|---:|---:|');
  for (const f of figures) console.log(`| ${f.name} | ${f.opsPerSecond.toFixed(1)} | ${f.p50ms.toFixed(2)} | ${f.p99ms.toFixed(2)} | ${f.count} |`);
}
