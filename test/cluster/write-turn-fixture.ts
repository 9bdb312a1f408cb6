/**
 * Two cluster workers on one SQLite file, wired as serve wires them (serveWriteTurns in the primary,
 * openStore's joinWriteTurns in each worker): the "holder" opens a write transaction and keeps it
 * open for HOLD_MS with its event loop free; meanwhile the "waiter" writes (a transaction and a
 * rate-limit hit) and counts its own event-loop ticks until both are committed.
 * With SCENARIO=kill the primary SIGKILLs the holder mid-transaction instead of letting it commit.
 * Prints one JSON line with the waiter's figures; exits 0.
 *
 * node -r test/cluster/ts-register.js test/cluster/write-turn-fixture.ts <sqlite path> <wait|kill>
 */
import cluster from 'node:cluster';
import { createDataSource } from '../../entities/data-source';
import { Store } from '../../server/repositories/store';
import { joinWriteTurns, serveWriteTurns } from '../../server/cluster-write-turn';
import { rateLimitHits } from '../../server/repositories/rate-limit-hits';
import type { DatabaseConfig } from '../../server/config/core';

const [path, scenario] = process.argv.slice(2) as [string, 'wait' | 'kill'];
const HOLD_MS = 400;
const db: DatabaseConfig = { type: 'sqlite', path, embedded: false, migrateOnStart: false, pool: { size: 1, acquireTimeoutMs: 5000 } };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function open(): Promise<Store> {
  const ds = createDataSource(db);
  await ds.initialize();
  const store = new Store(ds, db.pool);
  joinWriteTurns(store, db);
  return store;
}

async function primary(): Promise<void> {
  const setup = await open();
  await setup.migrate();
  await setup.close();
  serveWriteTurns();
  const holder = cluster.fork({ ROLE: 'holder' });
  const waiter = cluster.fork({ ROLE: 'waiter' });
  // Both open their store first: a message to a worker that has no listener yet is lost.
  let ready = 0;
  for (const w of [holder, waiter]) w.on('message', (m: { type?: string }) => m?.type === 'fx:ready' && ++ready === 2 && holder.send({ type: 'fx:start' }));
  holder.on('message', (m: { type?: string }) => {
    if (m?.type !== 'fx:holding') return;
    waiter.send({ type: 'fx:go' });
    if (scenario === 'kill') setTimeout(() => holder.process.kill('SIGKILL'), HOLD_MS);
  });
  waiter.on('message', (m: { type?: string; result?: unknown }) => {
    if (m?.type !== 'fx:done') return;
    console.log(JSON.stringify(m.result));
    for (const w of [holder, waiter]) if (!w.isDead()) w.process.kill('SIGKILL');
    process.exit(0);
  });
}

async function worker(): Promise<void> {
  const store = await open();
  if (process.env.ROLE === 'holder') {
    await new Promise<void>((started) => {
      process.on('message', (m: { type?: string }) => m?.type === 'fx:start' && started());
      process.send!({ type: 'fx:ready' });
    });
    await store.transaction(async (tx) => {
      await tx.manager.query(`INSERT INTO rate_limit_counters (bucket, window_start, hits) VALUES ('holder', 1, 1)`);
      process.send!({ type: 'fx:holding' });
      await sleep(scenario === 'kill' ? 60_000 : HOLD_MS);
    });
    return;
  }
  process.on('message', async (m: { type?: string }) => {
    if (m?.type !== 'fx:go') return;
    await sleep(20); // the holder's transaction is open (it said so before sleeping)
    // The event loop's longest stall while the write waits: ~5 ms when free, the whole wait when asleep.
    let ticks = 0;
    let last = performance.now();
    let maxGapMs = 0;
    const timer = setInterval(() => {
      ticks++;
      maxGapMs = Math.max(maxGapMs, performance.now() - last);
      last = performance.now();
    }, 5);
    const t0 = performance.now();
    await Promise.all([
      store.transaction((tx) => tx.manager.query(`INSERT INTO rate_limit_counters (bucket, window_start, hits) VALUES ('waiter', 1, 1)`)),
      rateLimitHits(store).hit('waiter-hit', 1),
    ]);
    const waitedMs = performance.now() - t0;
    clearInterval(timer);
    maxGapMs = Math.max(maxGapMs, performance.now() - last);
    const rows = (await store.dataSource.query(`SELECT bucket FROM rate_limit_counters ORDER BY bucket`)) as { bucket: string }[];
    process.send!({ type: 'fx:done', result: { waitedMs, ticks, maxGapMs, buckets: rows.map((r) => r.bucket), holdMs: HOLD_MS } });
  });
  process.send!({ type: 'fx:ready' });
}

void (cluster.isPrimary ? primary() : worker()).catch((err) => {
  console.error(err);
  process.exit(1);
});
