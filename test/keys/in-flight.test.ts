import { forEachLimited } from '../../server/keys/in-flight';

/** The bound on concurrent seals of a group rotation (server/keys/group-key-service.ts). */
describe('forEachLimited', () => {
  const tick = () => new Promise<void>((r) => setImmediate(r));

  test('every item runs once, never more than `limit` at a time', async () => {
    let inFlight = 0;
    let most = 0;
    const seen: number[] = [];
    await forEachLimited(Array.from({ length: 100 }, (_, i) => i), 16, async (i) => {
      most = Math.max(most, ++inFlight);
      await tick();
      seen.push(i);
      inFlight--;
    });
    expect(most).toBe(16);
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  test('after a failure no further item starts, and the error is thrown', async () => {
    const started: number[] = [];
    const run = forEachLimited(Array.from({ length: 100 }, (_, i) => i), 4, async (i) => {
      started.push(i);
      await tick();
      if (i === 5) throw new Error('seal failed');
    });
    await expect(run).rejects.toThrow('seal failed');
    await tick();
    await tick();
    // Items 0–5 had started (or were in flight) when item 5 failed; at most the other 3 in flight finish.
    expect(started.length).toBeLessThanOrEqual(9);
    expect(started.length).toBeGreaterThanOrEqual(6);
  });

  test('an empty list runs nothing', async () => {
    const fn = jest.fn(async () => undefined);
    await forEachLimited([], 16, fn);
    expect(fn).not.toHaveBeenCalled();
  });
});
