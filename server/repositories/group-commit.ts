/**
 * Group commit (issue 10): rows that concurrent requests add while a write is in flight are
 * written together by the next one, so the database does one commit for many requests instead of
 * one each. `add` resolves only once its own row is committed, and rejects with the batch's error
 * if that batch failed — a caller never goes on before its row is durable.
 * One write at a time; an idle writer starts at once (after the current turn of the event loop,
 * so requests that arrive together share it), so there is no added wait when there is no load.
 */
export class GroupCommit<T> {
  private pending: { row: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private running = false;
  private drained = Promise.resolve();

  constructor(
    private readonly write: (rows: T[]) => Promise<void>,
    private readonly maxBatch = 256,
  ) {}

  add(row: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      if (!this.running) {
        this.running = true;
        this.drained = new Promise<void>((done) => setImmediate(() => void this.drain().then(done)));
      }
    });
  }

  /** Resolves once no write is in flight and no row waits (shutdown: close the pool only after it). */
  idle(): Promise<void> {
    return this.drained;
  }

  /** Rows waiting for the next write (for tests and metrics). */
  get waiting(): number {
    return this.pending.length;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        await this.write(batch.map((b) => b.row));
        for (const b of batch) b.resolve();
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    this.running = false;
  }
}
