import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LoadResult, LoadSpec } from './load';

/**
 * The load as wrk (C, Debian package `wrk`) sends it: a closed loop over `spec.connections`
 * keep-alive connections from one thread. It costs far less CPU per request than autocannon (a
 * Node process), which matters on a 2-core machine where the generator's CPU is taken from the
 * server. wrk gives percentiles, not every response time, and counts only statuses ≥ 400 apart.
 */
export const WRK = '/usr/bin/wrk';

export function wrkAvailable(): boolean {
  return existsSync(WRK);
}

export async function wrkLoad(spec: LoadSpec): Promise<LoadResult> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-bench-wrk-'));
  try {
    const script = join(dir, 'load.lua');
    writeFileSync(script, wrkScript(spec));
    // One thread: `{{seq}}` numbers stay unique without a per-thread prefix, and one wrk thread
    // sends far more than this server answers (≈ 50,000 req/s on the bare limit).
    const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, `--timeout`, `${spec.timeoutSeconds ?? 30}s`, '--latency', '-s', script, `${spec.url}${spec.variants[0]!.path}`];
    const child = spawn(WRK, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    const [code] = (await once(child, 'exit')) as [number | null];
    const text = Buffer.concat(out).toString('utf8');
    if (code !== 0) throw new Error(`wrk ${args.join(' ')} exited ${code}: ${text}${Buffer.concat(err).toString('utf8')}`.slice(-2000));
    return wrkResult(parseWrkOutput(text));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What wrk printed (with `--latency` and our script's `done`), in the bench's units. */
export interface WrkOutput {
  /** Every response, whatever its status. */
  requests: number;
  seconds: number;
  /** "Non-2xx or 3xx responses": wrk counts statuses ≥ 400. */
  statusErrors: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  p50ms: number;
  p99ms: number;
  maxms: number;
  /** CPU time wrk itself used (user + system), from the script's done(). */
  cpuMs?: number;
}

const TIME_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function timeMs(v: string, u: string): number {
  return Number(v) * TIME_MS[u]!;
}

/** Parses wrk 4's text report; throws if a figure the bench needs is missing. */
export function parseWrkOutput(text: string): WrkOutput {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(text);
    if (!m) throw new Error(`wrk output has no ${what}:\n${text}`);
    return m;
  };
  const total = need(/^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),/m, 'request count');
  const pct = (p: number) => {
    const m = need(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm'), `${p}% latency (run with --latency)`);
    return timeMs(m[1]!, m[2]!);
  };
  const max = need(/^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)/m, 'latency max');
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const cpu = /^generator cpu: (\d+) ticks$/m.exec(text);
  return {
    requests: Number(total[1]),
    seconds: timeMs(total[2]!, total[3]!) / 1000,
    statusErrors: Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0),
    socketErrors: { connect: Number(socket?.[1] ?? 0), read: Number(socket?.[2] ?? 0), write: Number(socket?.[3] ?? 0), timeout: Number(socket?.[4] ?? 0) },
    p50ms: pct(50),
    p99ms: pct(99),
    maxms: timeMs(max[1]!, max[2]!),
    cpuMs: cpu ? Number(cpu[1]) * 10 : undefined, // USER_HZ = 100
  };
}

/** wrk's figures as the bench's LoadResult: a status ≥ 400 or a socket error is a failure, as with autocannon. */
export function wrkResult(w: WrkOutput): LoadResult {
  const ok = w.requests - w.statusErrors;
  const s = w.socketErrors;
  const failed = w.statusErrors + s.connect + s.read + s.write + s.timeout;
  const statuses: Record<string, number> = { '2xx': ok };
  if (w.statusErrors) statuses['≥400'] = w.statusErrors;
  if (failed > w.statusErrors) statuses['socket error'] = failed - w.statusErrors;
  const answered = ok + failed;
  return {
    ok,
    failed,
    statuses,
    seconds: w.seconds,
    rps: ok / w.seconds,
    p50ms: w.p50ms,
    p99ms: w.p99ms,
    maxms: w.maxms,
    latencies: [],
    generatorCpuMsPerRequest: w.cpuMs !== undefined && answered ? w.cpuMs / answered : undefined,
  };
}

/** A Lua string literal holding exactly `s`'s UTF-8 bytes. */
function lua(s: string): string {
  let out = '"';
  for (const b of Buffer.from(s, 'utf8')) out += b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c ? String.fromCharCode(b) : `\\${String(b).padStart(3, '0')}`;
  return `${out}"`;
}

/**
 * The wrk script for `spec`: requests cycle through the variants, made once in init() unless they
 * hold `{{seq}}` (then per request, numbered like the autocannon generator's); one variant without
 * `{{seq}}` is wrk's static request (no Lua call per request). done() prints wrk's own CPU time.
 */
export function wrkScript(spec: LoadSpec): string {
  const headers = `{ ${Object.entries(spec.headers).map(([k, v]) => `[${lua(k)}] = ${lua(v)}`).join(', ')} }`;
  const variants = spec.variants.map((v) => `{ path = ${lua(v.path)}, body = ${v.body === undefined ? 'nil' : lua(v.body)}, seq = ${`${v.path}${v.body ?? ''}`.includes('{{seq}}')} }`);
  const isStatic = spec.variants.length === 1 && !spec.variants[0]!.path.includes('{{seq}}') && !spec.variants[0]!.body?.includes('{{seq}}');
  const perRequest = `
local fixed = {}
local n = 0
function init(args)
  for i, v in ipairs(variants) do
    if not v.seq then fixed[i] = wrk.format(method, v.path, copy(headers), v.body) end
  end
end
function request()
  local i = n % #variants + 1
  local r = fixed[i]
  if not r then
    local v, seq = variants[i], run_id .. "-" .. n
    r = wrk.format(method, (v.path:gsub("{{seq}}", seq)), copy(headers), v.body and (v.body:gsub("{{seq}}", seq)))
  end
  n = n + 1
  return r
end`;
  const staticRequest = `
wrk.method, wrk.path, wrk.body = method, variants[1].path, variants[1].body
for k, v in pairs(headers) do wrk.headers[k] = v end`;
  return `-- Generated by test/bench/http/wrk-load.ts
local method = ${lua(spec.method)}
local headers = ${headers}
local variants = {
  ${variants.join(',\n  ')}
}
local run_id = ${lua(spec.runId)}
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end
${isStatic ? staticRequest : perRequest}
function done(summary, latency, requests)
  local f = io.open("/proc/self/stat")
  local stat = f:read("*a")
  f:close()
  local fields = {}
  for x in stat:match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = x end
  io.write(string.format("generator cpu: %d ticks\\n", tonumber(fields[12]) + tonumber(fields[13])))
end
`;
}
