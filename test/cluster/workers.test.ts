import { createServer } from 'node:net';
import { once } from 'node:events';
import { DATABASE_FACTORIES, testDatabaseNames } from '../support/databases';
import { ENTRA_DISABLE_USER } from '../scim/idp-bodies';
import { alive, connectionsOnTwoWorkers, Conn, listening, oneTimeCode, printed, provisionUser, scimToken, servingPid, sleep, startServe, tokenRequestBody, type ClusterProcess } from './support';

/**
 * `serve` with CS_WORKERS=2 as real processes (the CLI from source): requests land on both
 * workers, state shared through the database holds across them, a dead worker is replaced, SIGTERM
 * stops every process, and a start-up failure is reported once.
 */
jest.setTimeout(180_000);

const started: ClusterProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.close()));
});

async function start(opts: Parameters<typeof startServe>[0]): Promise<ClusterProcess> {
  const p = await startServe(opts);
  started.push(p);
  if (!(await listening(p))) throw new Error(`serve exited: ${p.stdout()}\n${p.stderr()}`);
  return p;
}

describe('CS_WORKERS=2 on the embedded SQLite default', () => {
  it('serves from two worker pids, prints start-up output once, aggregates /metrics, and stops every process on SIGTERM', async () => {
    const p = await start({ workers: 2 });
    const workers = p.workerPids();
    expect(workers).toHaveLength(2);
    expect(p.stdout().match(/listening on/g)).toHaveLength(1);
    expect(p.stdout()).toContain('(2 workers;');
    expect(p.stdout().match(/created local master key/g)).toHaveLength(1);
    expect(p.stdout().match(/applied \d+ database migration/g)).toHaveLength(1);

    // Each connection is handed to one worker; a few connections reach both.
    const [a, b, pidA, pidB] = await connectionsOnTwoWorkers(p);
    expect(new Set([pidA, pidB])).toEqual(new Set(workers));
    expect((await a.request('GET', '/healthz')).status).toBe(200);
    expect((await b.request('GET', '/readyz')).status).toBe(200);

    // /metrics from either worker counts both: resident memory summed over the two processes.
    const metrics = await fetch(`${p.url}/metrics`).then((r) => r.text());
    const rss = Number(/^crypto_server_process_resident_memory_bytes (\d+)/m.exec(metrics)?.[1]);
    const own = workers.map((w) => Number(/VmRSS:\s+(\d+)/.exec(require('node:fs').readFileSync(`/proc/${w}/status`, 'utf8'))![1]) * 1024);
    expect(rss).toBeGreaterThan(Math.max(...own) * 1.5);

    expect(await p.signal('SIGTERM')).toBe(0);
    for (const w of [p.pid, ...workers]) expect(alive(w)).toBe(false);
    expect(p.stderr()).toBe('');
  });

  it('lets an in-flight request finish on SIGTERM before the worker exits', async () => {
    const p = await start({ workers: 2 });
    const conn = await Conn.open(p.port);
    const pid = await servingPid(p.port, conn.localPort, p.workerPids());
    // Half a request: the worker is now serving it. SIGTERM stops accepting, not answering.
    const chunks: Buffer[] = [];
    const socket = (conn as unknown as { socket: import('node:net').Socket }).socket;
    socket.on('data', (c: Buffer) => chunks.push(c));
    const body = 'x'.repeat(10);
    socket.write(`POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n`);
    await sleep(300);
    const exit = p.signal('SIGTERM');
    await sleep(500);
    expect(alive(pid)).toBe(true);
    socket.write(body);
    await once(socket, 'end');
    expect(Buffer.concat(chunks).toString('utf8')).toMatch(/^HTTP\/1\.1 400/);
    expect(await exit).toBe(0);
    expect(alive(pid)).toBe(false);
  });

  it('replaces a worker that was killed', async () => {
    const p = await start({ workers: 2 });
    const [victim, survivor] = p.workerPids();
    process.kill(victim!, 'SIGKILL');
    let now: number[] = [];
    for (let i = 0; i < 200 && !(now.length === 2 && !now.includes(victim!)); i++) {
      await sleep(100);
      now = p.workerPids();
    }
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    const replacement = now.find((w) => w !== survivor)!;
    // The replacement serves once it has started (it compiles from source: give it time).
    for (let i = 0; i < 300; i++) {
      const c = await Conn.open(p.port);
      const pid = await servingPid(p.port, c.localPort, p.workerPids());
      const r = await c.request('GET', '/healthz');
      if (pid === replacement && r.status === 200) break;
      await sleep(100);
      if (i === 299) throw new Error('the replacement never served');
    }
    expect(p.stdout().match(/listening on/g)).toHaveLength(1);
  });

  it('says once that the port is in use and exits 2, leaving no process behind', async () => {
    const blocker = createServer().listen(0, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const port = (blocker.address() as { port: number }).port;
      const p = await startServe({ workers: 2, port });
      started.push(p);
      expect(await listening(p)).toBe(false);
      expect(p.child.exitCode).toBe(2);
      const lines = p.stderr().trim().split('\n');
      expect(lines).toEqual([`crypto-server: CS_PORT: port ${port} on CS_HOST 127.0.0.1 is already in use; stop the other process or choose another port`]);
      expect(p.stdout()).not.toMatch(/listening on/);
      await sleep(200);
      expect(p.workerPids()).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('CS_WORKERS=1 runs one process, as before', async () => {
    const p = await start({ workers: 1 });
    expect(p.workerPids()).toEqual([]);
    expect(p.stdout()).not.toMatch(/workers/);
    expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
    expect(await p.signal('SIGTERM')).toBe(0);
  });
});

describe('CS_WORKERS unset', () => {
  it('runs one process on SQLite and says why', async () => {
    const p = await start({ workers: 1, env: { CS_WORKERS: '' } });
    expect(p.workerPids()).toEqual([]);
    // Printed right after the listening line, which is what start() waited for.
    expect(await printed(p, /on SQLite CS_WORKERS defaults to 1/, 10_000)).toBe(true);
    expect(await p.signal('SIGTERM')).toBe(0);
  });

  it('a SIGTERM while it starts ends it with 0, not by the signal (handlers are in place before boot)', async () => {
    const p = await startServe({ workers: 1, env: { CS_WORKERS: '' } });
    started.push(p);
    // Migrations are announced during boot, before it listens: signal at once on seeing that line.
    const code = new Promise<number | null>((resolve) => p.child.once('exit', (c) => resolve(c)));
    await new Promise<void>((resolve) => {
      const onData = () => {
        if (!/applied \d+ database migration/.test(p.stdout())) return;
        p.child.stdout!.off('data', onData);
        p.child.kill('SIGTERM');
        resolve();
      };
      p.child.stdout!.on('data', onData);
    });
    expect(await code).toBe(0);
  });

  it('runs one worker per CPU on PostgreSQL', async () => {
    const p = await start({ workers: 1, db: await DATABASE_FACTORIES.postgres(), env: { CS_WORKERS: '' } });
    const cpus = require('node:os').availableParallelism() as number;
    if (cpus > 1) expect(p.stdout()).toContain(`(${cpus} workers;`);
    expect(p.workerPids()).toHaveLength(cpus > 1 ? cpus : 0);
    expect(p.stdout()).not.toMatch(/defaults to 1/);
    expect(await p.signal('SIGTERM')).toBe(0);
  });
});

describe.each(testDatabaseNames())('one-time codes and rate limits across workers (%s)', (name) => {
  it('a code redeemed on one worker is refused on the other, concurrent redemptions on both yield one token, and the SCIM rate limit counts both workers together', async () => {
    const p = await start({ workers: 2, db: await DATABASE_FACTORIES[name](), env: { CS_SCIM_RATE_LIMIT_PER_MINUTE: '20' } });

    const alice = await provisionUser(p, 'alice');
    const first = await oneTimeCode(p, alice);
    const [a, b] = await connectionsOnTwoWorkers(p);
    const redeemed = await a.request('POST', '/oauth/token', tokenRequestBody(first.code, first.verifier));
    expect(redeemed.status).toBe(200);
    expect(JSON.parse(redeemed.body).access_token).toEqual(expect.any(String));
    const replay = await b.request('POST', '/oauth/token', tokenRequestBody(first.code, first.verifier));
    expect(replay.status).toBe(400);
    expect(JSON.parse(replay.body).error).toBe('invalid_grant');

    for (let round = 0; round < 3; round++) {
      const { code, verifier } = await oneTimeCode(p, alice);
      const [c, d] = await connectionsOnTwoWorkers(p);
      const results = await Promise.all([c, d].map((conn) => conn.request('POST', '/oauth/token', tokenRequestBody(code, verifier))));
      expect(results.map((r) => r.status).sort()).toEqual([200, 400]);
    }

    // The SCIM limit (20 a minute per token) is counted in the database: 30 requests alternating
    // over both workers get 20 answers, then 429s. Started early in a minute, so one window holds all.
    const token = await scimToken(p);
    if (new Date().getSeconds() > 45) await sleep((61 - new Date().getSeconds()) * 1000);
    const statuses: number[] = [];
    const servedBy = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const c = await Conn.open(p.port);
      servedBy.add(await servingPid(p.port, c.localPort, p.workerPids()));
      statuses.push((await c.request('GET', '/scim/v2/Users?count=1', undefined, { authorization: `Bearer ${token}` })).status);
    }
    expect(servedBy.size).toBe(2);
    expect(statuses).toEqual([...Array(20).fill(200), ...Array(10).fill(429)]);
  });
});

describe.each(testDatabaseNames())('the key API fast path on two workers (%s)', (name) => {
  it('unwraps on both workers, and a SCIM deactivation through one refuses the next request on each', async () => {
    const p = await start({ workers: 2, db: await DATABASE_FACTORIES[name]() });
    const alice = await provisionUser(p, 'alice');
    const { code, verifier } = await oneTimeCode(p, alice);
    const [t] = await connectionsOnTwoWorkers(p);
    const token = JSON.parse((await t.request('POST', '/oauth/token', tokenRequestBody(code, verifier))).body).access_token as string;
    const bearer = { authorization: `Bearer ${token}` };
    const [m] = await connectionsOnTwoWorkers(p);
    const me = JSON.parse((await m.request('GET', '/api/keys/me', undefined, bearer)).body) as { userId: string; wrappedPasswordKey: string };
    const unwrapBody = { type: 'application/json', text: JSON.stringify({ wrappedPasswordKey: me.wrappedPasswordKey }) };

    const [a, b] = await connectionsOnTwoWorkers(p);
    const before = await Promise.all([a, b].map((c) => c.request('POST', '/api/keys/password-key/unwrap', unwrapBody, bearer)));
    expect(before.map((r) => r.status)).toEqual([200, 200]);
    expect(JSON.parse(before[0]!.body).passwordKey).toBe(JSON.parse(before[1]!.body).passwordKey);

    // The token first: an open connection that stays silent meanwhile would time out (408).
    const scim = { authorization: `Bearer ${await scimToken(p)}` };
    const [s] = await connectionsOnTwoWorkers(p);
    const disable = await s.request('PATCH', `/scim/v2/Users/${me.userId}`, { type: 'application/scim+json', text: ENTRA_DISABLE_USER }, scim);
    expect(disable.status).toBe(200);

    const [c, d] = await connectionsOnTwoWorkers(p);
    const after = await Promise.all([c, d].map((conn) => conn.request('POST', '/api/keys/password-key/unwrap', unwrapBody, bearer)));
    expect(after.map((r) => r.status)).toEqual([403, 403]);
    for (const r of after) expect(JSON.parse(r.body)).toMatchObject({ code: 'user_inactive' });
  });
});
