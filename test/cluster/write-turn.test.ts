import { WriteTurnArbiter, workerWriteTurn, type TurnChannel, type TurnNotice, type TurnRequest } from '../../server/cluster-write-turn';

/**
 * The write token between serve's workers (server/cluster-write-turn.ts), primary and workers wired
 * through in-process channels that deliver like IPC: in order, asynchronously.
 */
class FakeWorker {
  connected = true;
  readonly sent: TurnNotice[] = [];
  private listener?: (m: TurnNotice) => void;
  constructor(readonly arbiter: WriteTurnArbiter<FakeWorker>) {}
  // the primary's side
  send(m: TurnNotice): boolean {
    this.sent.push(m);
    setImmediate(() => this.listener?.(m));
    return true;
  }
  isConnected(): boolean {
    return this.connected;
  }
  // the worker's side
  readonly channel: TurnChannel = {
    send: (m: TurnRequest) => setImmediate(() => this.arbiter.onMessage(this, m)),
    onNotice: (l) => (this.listener = l),
    connected: () => this.connected,
  };
}

const tick = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 10; i++) await tick();
};

function cluster(n: number, waitMs = 5000) {
  const arbiter = new WriteTurnArbiter<FakeWorker>();
  const workers = Array.from({ length: n }, () => new FakeWorker(arbiter));
  return { arbiter, workers, turns: workers.map((w) => workerWriteTurn(waitMs, w.channel)) };
}

describe('the cluster write turn', () => {
  it('one worker at a time: the second gets the token only once the first gave it back', async () => {
    const { arbiter, workers, turns } = cluster(2);
    const releaseA = await turns[0]!.acquire();
    let bHolds = false;
    const b = turns[1]!.acquire().then((r) => ((bHolds = true), r));
    await settle();
    expect(bHolds).toBe(false);
    expect(arbiter.state).toEqual({ holder: workers[0], waiting: 1 });
    releaseA();
    const releaseB = await b;
    expect(arbiter.state.holder).toBe(workers[1]);
    releaseB();
  });

  it('a worker alone keeps the token between writes (no round trip per write) until another asks', async () => {
    const { arbiter, workers, turns } = cluster(2);
    (await turns[0]!.acquire())();
    await settle();
    const grants = workers[0]!.sent.length;
    for (let i = 0; i < 5; i++) (await turns[0]!.acquire())();
    expect(workers[0]!.sent.length).toBe(grants);
    expect(arbiter.state.holder).toBe(workers[0]);
    // Idle holder, another worker asks: handed over at once.
    (await turns[1]!.acquire())();
    expect(arbiter.state.holder).toBe(workers[1]);
  });

  it('first come, first served: a holder told another waits finishes its writes, then passes; its new writes queue behind', async () => {
    const { workers, turns } = cluster(3);
    const order: string[] = [];
    const hold = async (i: number, label: string) => {
      const release = await turns[i]!.acquire();
      order.push(label);
      await settle();
      release();
    };
    const releaseA = await turns[0]!.acquire();
    const b = hold(1, 'b');
    await settle();
    const c = hold(2, 'c');
    await settle();
    const a2 = hold(0, 'a2'); // asked after b and c
    await settle();
    releaseA();
    await Promise.all([b, c, a2]);
    expect(order).toEqual(['b', 'c', 'a2']);
    expect(workers[0]!.sent.filter((m) => m.type === 'cs:turn-wanted').length).toBeGreaterThan(0);
  });

  it('frees the token of a worker that died holding it, and drops a dead worker from the queue', async () => {
    const { arbiter, workers, turns } = cluster(3);
    await turns[0]!.acquire(); // never released: the worker is killed
    const b = turns[1]!.acquire();
    const c = turns[2]!.acquire();
    await settle();
    workers[1]!.connected = false;
    arbiter.onExit(workers[1]!);
    workers[0]!.connected = false;
    arbiter.onExit(workers[0]!);
    (await c)();
    expect(arbiter.state.holder).toBe(workers[2]);
    void b;
  });

  it('after waiting the pool timeout it goes ahead without the token (SQLite busy_timeout is the fallback)', async () => {
    const { turns } = cluster(2, 50);
    await turns[0]!.acquire(); // held far past the other's wait
    const t0 = Date.now();
    const release = await turns[1]!.acquire();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    release(); // a no-op: it never held the token
  });

  it('with no primary to ask (IPC closed) it does not wait', async () => {
    const { workers, turns } = cluster(1);
    workers[0]!.connected = false;
    await expect(turns[0]!.acquire()).resolves.toEqual(expect.any(Function));
  });
});
