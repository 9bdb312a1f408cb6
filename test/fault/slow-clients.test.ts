import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Running } from '../../server/cli/serve';

/**
 * Silent and slow clients cannot hold a connection open: the served process closes a socket that
 * never sends a byte (CS_HEADERS_TIMEOUT_MS), one that trickles its body (CS_REQUEST_TIMEOUT_MS)
 * and an idle keep-alive connection (CS_KEEP_ALIVE_TIMEOUT_MS).
 */
describe('server timeouts for slow clients', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-slow-'));
  let running: Running;
  let port: number;
  const sockets: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  beforeAll(async () => {
    running = await serve(
      { CS_DATA_DIR: dir, CS_PORT: '0', CS_LOG_LEVEL: 'silent', CS_HEADERS_TIMEOUT_MS: '1000', CS_REQUEST_TIMEOUT_MS: '2000', CS_KEEP_ALIVE_TIMEOUT_MS: '1000' },
      () => undefined,
    );
    port = Number(new URL(running.url).port);
  });
  afterAll(async () => {
    timers.forEach(clearInterval);
    sockets.forEach((s) => s.destroy());
    await running?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Connects; resolves with what the server sent and when (ms after connecting) it closed, or 'open' after `waitMs`. */
  function watch(onConnect: (s: net.Socket) => void, waitMs: number): Promise<{ closedAfterMs: number | 'open'; received: string }> {
    return new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      sockets.push(s);
      let received = '';
      const start = performance.now();
      const giveUp = setTimeout(() => resolve({ closedAfterMs: 'open', received }), waitMs);
      s.on('connect', () => onConnect(s));
      s.on('data', (d) => (received += d.toString('latin1')));
      s.on('error', () => undefined);
      s.on('close', () => {
        clearTimeout(giveUp);
        resolve({ closedAfterMs: performance.now() - start, received });
      });
    });
  }

  test('a connection that never sends a byte is closed within the headers timeout (+ sweep interval)', async () => {
    const r = await watch(() => undefined, 6000);
    expect(r.closedAfterMs).not.toBe('open');
    expect(r.closedAfterMs).toBeLessThan(1000 + 500 + 1000);
  });

  test('headers sent one byte at a time never complete: closed within the headers timeout', async () => {
    const head = 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ' + 'a'.repeat(200);
    let i = 0;
    const r = await watch((s) => {
      timers.push(setInterval(() => i < head.length && s.write(head[i++]), 100));
    }, 6000);
    expect(r.closedAfterMs).not.toBe('open');
    expect(r.closedAfterMs).toBeLessThan(1000 + 500 + 1000);
  });

  test('a body trickled slower than the request timeout allows gets 408 and the socket is closed', async () => {
    let sent = 0;
    const r = await watch((s) => {
      s.write('POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n');
      timers.push(setInterval(() => sent++ < 1000 && s.write('a'), 100));
    }, 8000);
    expect(r.closedAfterMs).not.toBe('open');
    expect(r.closedAfterMs).toBeLessThan(2000 + 500 + 1000);
    expect(r.received).toMatch(/^HTTP\/1\.1 408/);
  });

  test('an idle keep-alive connection is closed after the keep-alive timeout', async () => {
    const r = await watch((s) => s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'), 6000);
    expect(r.received).toMatch(/^HTTP\/1\.1 200/);
    expect(r.closedAfterMs).not.toBe('open');
    expect(r.closedAfterMs).toBeLessThan(1000 + 500 + 1000);
  });
});
