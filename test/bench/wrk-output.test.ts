import { parseWrkOutput, wrkResult } from './http/wrk-load';
import { parseHttpBenchArgs } from './http-bench';

/**
 * The bench's wrk figures come from wrk's text report: a misread unit or a missed error line would
 * silently skew every ratio. Captured verbatim from wrk 4.1.0 (Debian 4.1.0-3+b2) against the bench's
 * limit server, with a script made by wrkScript() cycling a good unwrap, a bad blob (400) and a path
 * the limit does not serve (404):
 *   wrk -t1 -c4 -d2s --timeout 30s --latency -s load.lua http://127.0.0.1:42791/unwrap
 */
const SAMPLE = `Running 2s test @ http://127.0.0.1:42791/unwrap
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.67ms   15.64ms  97.60ms   87.90%
    Req/Sec   783.20      1.06k    4.12k    90.00%
  Latency Distribution
     50%    3.93ms
     75%   14.15ms
     90%   29.15ms
     99%   74.79ms
  1586 requests in 2.04s, 342.27KB read
  Non-2xx or 3xx responses: 1058
Requests/sec:    776.86
Transfer/sec:    167.65KB
generator cpu: 9 ticks
`;

describe('bench wrk output', () => {
  it('reads requests, duration, percentiles, max, status errors and wrk CPU from the report', () => {
    const w = parseWrkOutput(SAMPLE);
    expect(w).toEqual({ requests: 1586, seconds: 2.04, statusErrors: 1058, socketErrors: { connect: 0, read: 0, write: 0, timeout: 0 }, p50ms: 3.93, p99ms: 74.79, maxms: 97.6, cpuMs: 90 });
  });

  it('counts statuses ≥ 400 and socket errors as failures, and req/s from the 2xx only (as with autocannon)', () => {
    const withSockets = SAMPLE.replace('  Non-2xx', '  Socket errors: connect 0, read 3, write 1, timeout 2\n  Non-2xx');
    const r = wrkResult(parseWrkOutput(withSockets));
    expect(r.ok).toBe(528);
    expect(r.failed).toBe(1058 + 6);
    expect(r.statuses).toEqual({ '2xx': 528, '≥400': 1058, 'socket error': 6 });
    expect(r.rps).toBeCloseTo(528 / 2.04, 6);
    expect(r.generatorCpuMsPerRequest).toBeCloseTo(90 / (528 + 1064), 9);
  });

  it('converts microsecond, second and minute figures', () => {
    const w = parseWrkOutput(SAMPLE.replace('97.60ms', '1.50s').replace('3.93ms', '812.00us').replace('2.04s,', '1.00m,'));
    expect([w.p50ms, w.maxms, w.seconds]).toEqual([0.812, 1500, 60]);
  });

  it('refuses a report without the latency distribution (wrk run without --latency)', () => {
    expect(() => parseWrkOutput(SAMPLE.replace(/ {2}Latency Distribution[\s\S]*?99%.*\n/, ''))).toThrow(/50% latency/);
  });
});

describe('bench:http --generator', () => {
  it('defaults to autocannon, so runs without the option measure as before', () => {
    expect(parseHttpBenchArgs([]).generator).toBe('autocannon');
  });

  it('refuses a generator it does not know', () => {
    expect(() => parseHttpBenchArgs(['--generator', 'ab'])).toThrow(/must be autocannon or wrk/);
  });
});

describe('bench:http --server-node-args', () => {
  it('splits the options on spaces for the measured server; none by default', () => {
    expect(parseHttpBenchArgs(['--server-node-args', ' --max-semi-space-size=32  --trace-gc ']).serverNodeArgs).toEqual(['--max-semi-space-size=32', '--trace-gc']);
    expect(parseHttpBenchArgs([]).serverNodeArgs).toBeUndefined();
  });
});
