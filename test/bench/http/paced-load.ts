import http from 'node:http';
import { summarize, type LoadResult, type LoadSpec } from './load';

/**
 * An open-loop load at `spec.rate`: one request every 1/rate s, evenly spaced, over at most
 * `spec.connections` keep-alive connections, whatever the answers' speed. autocannon's
 * `overallRate` is not that: each connection sends back to back until it has made its share of
 * the second, then waits for the next second, so "1,000 req/s" is a burst at full concurrency at
 * the start of every second and its p99 is the saturated p99. Here a request that finds every
 * connection busy waits in the client's queue, and that wait counts in its latency (measured from
 * the moment it was issued to the last byte of the answer; a timer that fires late delays the
 * issue, which is the generator's own lateness and not counted).
 */
export async function pacedLoad(spec: LoadSpec): Promise<LoadResult> {
  const rate = spec.rate!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: spec.connections });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let failed = 0;
  let n = 0;
  let inFlight = 0;
  const send = () => {
    const v = spec.variants[n % spec.variants.length]!;
    const seq = `${spec.runId}-${n++}`;
    const body = v.body?.replaceAll('{{seq}}', seq);
    const headers = { ...spec.headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) };
    const start = performance.now();
    inFlight++;
    const req = http.request(`${spec.url}${v.path.replaceAll('{{seq}}', seq)}`, { method: spec.method, headers, agent }, (res) => {
      res.resume();
      res.once('end', () => {
        inFlight--;
        const code = res.statusCode ?? 0;
        statuses[code] = (statuses[code] ?? 0) + 1;
        if (code >= 200 && code < 300) latencies.push(Math.round((performance.now() - start) * 1000) / 1000);
        else failed++;
      });
    });
    req.once('error', () => {
      inFlight--;
      failed++;
    });
    req.end(body);
  };
  const t0 = performance.now();
  const total = Math.round(rate * spec.seconds);
  await new Promise<void>((resolve) => {
    const tick = () => {
      // Every request due by now (timers fire late under load: catch up, never skip).
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000) + 1);
      while (n < due) send();
      if (n < total) setTimeout(tick, Math.max(0, t0 + (n * 1000) / rate - performance.now()));
      else resolve();
    };
    tick();
  });
  const deadline = performance.now() + (spec.timeoutSeconds ?? 30) * 1000;
  while (inFlight > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  agent.destroy();
  return summarize(latencies, { failed: failed + inFlight, statuses, seconds: (performance.now() - t0) / 1000 });
}
