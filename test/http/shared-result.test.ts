import { sharedFor } from '../../server/http/shared-result';

/** The one-result-for-a-while helper behind /readyz's KMS check and the console's KEK health. */
describe('sharedFor', () => {
  test('callers within the time share one run; the next caller after it runs again', async () => {
    let t = 1_000;
    let runs = 0;
    const check = sharedFor(5_000, async () => ++runs, () => t);
    expect(await Promise.all([check(), check()])).toEqual([1, 1]);
    t += 4_999;
    expect(await check()).toBe(1);
    t += 1;
    expect(await check()).toBe(2);
    expect(runs).toBe(2);
  });

  test('a failure is shared too, is never unhandled, and is retried once the time is up', async () => {
    let t = 0;
    let fail = true;
    const unhandled = jest.fn();
    process.on('unhandledRejection', unhandled);
    try {
      const check = sharedFor(1_000, async () => {
        if (fail) throw new Error('KMS down');
        return 'ok';
      }, () => t);
      check(); // nobody awaits this one
      await expect(check()).rejects.toThrow('KMS down');
      fail = false;
      await expect(check()).rejects.toThrow('KMS down'); // still the shared result
      t = 1_000;
      await expect(check()).resolves.toBe('ok');
      await new Promise((r) => setImmediate(r));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});
