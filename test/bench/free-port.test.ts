import { createServer } from 'node:net';
import { once } from 'node:events';
import { freePort } from './http/processes';

/**
 * The port a test server is told to use comes from below Linux's ephemeral range (32768–60999), so
 * an outgoing connection cannot take it in the moment before the server binds it.
 */
describe('freePort', () => {
  it('gives ports below the ephemeral range that a server can then bind', async () => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(20_000);
      expect(port).toBeLessThan(32_768);
      const s = createServer().listen(port, '127.0.0.1');
      await once(s, 'listening');
      await new Promise((r) => s.close(r));
    }
  });

  it('skips a port that is taken', async () => {
    // Hold many ports of the range: every port given must still be free.
    const held = [];
    for (let i = 0; i < 200; i++) {
      const s = createServer().listen(20_000 + i * 60, '127.0.0.1');
      await once(s, 'listening').catch(() => undefined);
      held.push(s);
    }
    try {
      const taken = new Set(held.filter((s) => s.listening).map((s) => (s.address() as { port: number }).port));
      for (let i = 0; i < 50; i++) expect(taken.has(await freePort())).toBe(false);
    } finally {
      await Promise.all(held.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    }
  });
});
