import { Worker } from 'node:worker_threads';

/**
 * SQLite's WAL checkpoints on a thread of their own (issue 10). With synchronous=NORMAL a commit
 * only appends to the WAL; the fsyncs happen at a checkpoint, which SQLite by default runs inside
 * the commit that takes the WAL past 1,000 pages — on the connection that committed, so on the
 * event loop: every request in flight waited for two fsyncs (in a profile under key-API load, a
 * fifth of the event loop's time was inside the audit commit). Here a worker thread with its own
 * connection runs a PASSIVE checkpoint every `intervalMs` (copies committed pages to the database
 * file and fsyncs, without blocking the writer or readers), and the writer's own automatic
 * checkpoint moves up to `writerPages`: it still runs if the WAL grows that far (the worker cannot
 * finish a checkpoint while commits keep arriving, and only a complete one lets the WAL start
 * over), and then has little left to copy. Durability is SQLite's synchronous=NORMAL as before (a
 * commit survives a crash of this process; an OS crash can drop what no checkpoint has synced
 * yet), now synced at least every `intervalMs` rather than every 1,000 pages. If the thread cannot
 * open the database or dies, the writer's default comes back.
 */

export interface CheckpointerOptions {
  intervalMs?: number;
  writerPages?: number;
  /** Each checkpoint's result, PRAGMA wal_checkpoint's: WAL frames and frames checkpointed (tests, metrics). */
  onCheckpoint?: (r: { log: number; checkpointed: number }) => void;
}

export interface Checkpointer {
  /** Stops the thread after a last checkpoint; resolves once it has closed its connection. */
  close(): Promise<void>;
}

/** SQLite's default wal_autocheckpoint, restored on the writer when the worker is gone. */
export const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

// Plain JavaScript evaluated in the worker (the thread cannot load this TypeScript module under
// every runner); better-sqlite3 is resolved by the parent and passed in.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const checkpoint = () => {
  const [r] = db.pragma('wal_checkpoint(PASSIVE)');
  if (workerData.report) parentPort.postMessage({ log: r.log, checkpointed: r.checkpointed });
};
// A checkpoint that fails (the file locked by another process) is tried again at the next tick;
// meanwhile the writer's own automatic checkpoint bounds the WAL.
const tick = () => { try { checkpoint(); } catch {} };
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  tick();
  db.close();
  parentPort.close();
});
`;

interface Pragmas {
  pragma(p: string): unknown;
  readonly open: boolean;
}

export function startCheckpointer(path: string, writer: Pragmas, o: CheckpointerOptions = {}): Checkpointer {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    // Results cross threads only for a listener: otherwise ten messages a second for nobody.
    workerData: { path, module: require.resolve('better-sqlite3'), intervalMs: o.intervalMs ?? 100, report: o.onCheckpoint !== undefined },
  });
  worker.unref(); // never what keeps the process alive
  writer.pragma(`wal_autocheckpoint = ${o.writerPages ?? 4000}`);
  const exited = new Promise<void>((resolve) =>
    worker.once('exit', () => {
      if (writer.open) writer.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
      resolve();
    }),
  );
  worker.on('message', (r: { log: number; checkpointed: number }) => o.onCheckpoint?.(r));
  // A thread that cannot open the database ends (the exit handler gives the writer its default
  // back); the next commits checkpoint as SQLite always did.
  worker.on('error', () => undefined);
  return {
    close: () => {
      worker.postMessage('close');
      return exited;
    },
  };
}
