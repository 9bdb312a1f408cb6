import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Two real cluster workers on one SQLite file (write-turn-fixture.ts). A worker waiting for the
 * other's write transaction used to wait in SQLite's busy handler, asleep with its event loop
 * (0 ticks in 400 ms); with the primary's write token it keeps serving meanwhile.
 */
jest.setTimeout(120_000);

type Result = { waitedMs: number; ticks: number; maxGapMs: number; buckets: string[]; holdMs: number };

async function run(scenario: 'wait' | 'kill'): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), 'cs-turn-'));
  const child = spawn(process.execPath, ['--disable-warning=ExperimentalWarning', '-r', join(__dirname, 'ts-register.js'), join(__dirname, 'write-turn-fixture.ts'), join(dir, 't.db'), scenario], {
    detached: true, // its own process group: stopped by group id whatever happens
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  try {
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`fixture exited ${code}: ${out}\n${err}`);
    return JSON.parse(out.trim().split('\n').pop()!) as Result;
  } finally {
    clearTimeout(timer);
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the SQLite write turn across two workers', () => {
  it('a worker whose write waits for the other worker’s open transaction keeps its event loop running, then commits', async () => {
    const r = await run('wait');
    expect(r.waitedMs).toBeGreaterThan(r.holdMs / 2); // it did wait for the other's transaction
    // A 5 ms timer: ~70 ticks when the loop is free; 0 when asleep in busy_timeout, one stall as long as the wait.
    expect(r.ticks).toBeGreaterThanOrEqual(2);
    expect(r.maxGapMs).toBeLessThan(r.waitedMs / 2);
    expect(r.buckets).toEqual(['holder', 'waiter', 'waiter-hit']);
  });

  it('a worker killed while holding the token does not wedge the other: its write completes after the kill', async () => {
    const r = await run('kill');
    expect(r.waitedMs).toBeGreaterThan(r.holdMs / 2);
    expect(r.waitedMs).toBeLessThan(4000); // not the 5 s fallback: the primary freed the dead worker's token
    expect(r.ticks).toBeGreaterThanOrEqual(2);
    expect(r.maxGapMs).toBeLessThan(r.waitedMs / 2);
    expect(r.buckets).toEqual(['waiter', 'waiter-hit']); // the killed transaction left nothing
  });
});
