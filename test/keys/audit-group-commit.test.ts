import { GroupCommit } from '../../server/repositories/group-commit';

/**
 * The group-commit writer behind the key API's audit rows: a caller's promise settles only with
 * the write that held its row, a failed write fails exactly its own callers, and rows added while
 * a write is in flight go together in the next one.
 */
describe('GroupCommit', () => {
  test('rows added together are written in one write; each caller resolves after it', async () => {
    const writes: number[][] = [];
    const g = new GroupCommit<number>(async (rows) => {
      writes.push(rows);
    });
    await Promise.all([1, 2, 3].map((n) => g.add(n)));
    expect(writes).toEqual([[1, 2, 3]]);
  });

  test('no caller resolves before the write holding its row has finished', async () => {
    let finish!: () => void;
    const g = new GroupCommit<number>(() => new Promise<void>((resolve) => (finish = resolve)));
    let done = false;
    const p = g.add(1).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    finish();
    await p;
    expect(done).toBe(true);
  });

  test('a failed write rejects its own callers only; rows added meanwhile go in the next write', async () => {
    const writes: number[][] = [];
    let release!: () => void;
    const g = new GroupCommit<number>((rows) => {
      writes.push(rows);
      if (rows.includes(1)) return new Promise<void>((_, reject) => (release = () => reject(new Error('connection lost'))));
      return Promise.resolve();
    });
    const first = g.add(1);
    await new Promise((r) => setImmediate(r));
    const later = [g.add(2), g.add(3)];
    expect(g.waiting).toBe(2);
    release();
    await expect(first).rejects.toThrow('connection lost');
    await expect(Promise.all(later)).resolves.toBeDefined();
    expect(writes).toEqual([[1], [2, 3]]);
  });

  test('batches are capped', async () => {
    const writes: number[] = [];
    const g = new GroupCommit<number>(async (rows) => void writes.push(rows.length), 4);
    await Promise.all(Array.from({ length: 10 }, (_, i) => g.add(i)));
    expect(writes).toEqual([4, 4, 2]);
  });
});
