import { KmsUnavailableError, UnwrapRefusedError } from './errors';

/**
 * A small pool of open, logged-in sessions for one token. A PKCS#11 session runs one operation at
 * a time (C_DecryptInit … C_Decrypt must not interleave with another caller's), so each caller
 * borrows a session exclusively; callers beyond `size` wait in FIFO order. Sessions are reused:
 * opening and logging in are far more expensive than an AES-GCM operation.
 *
 * A session that saw an error is closed instead of returned (its operation state is unknown;
 * SoftHSM2, for one, leaves the operation active after CKR_ARGUMENTS_BAD), except after a verified
 * unwrap refusal, which the standard says terminates the operation. `reset()` drops every session
 * after a token-level fault (device removed, session handle invalid) so the next call starts clean.
 */
export class SessionPool<S> {
  private idle: S[] = [];
  private open = 0;
  private generation = 0;
  private readonly born = new Map<S, number>();
  private waiters: { resolve: (s: S) => void; reject: (e: unknown) => void }[] = [];
  private closed = false;
  private drained?: () => void;

  constructor(
    private readonly size: number,
    private readonly openSession: () => S,
    private readonly closeSession: (s: S) => void,
  ) {}

  get openCount(): number {
    return this.open;
  }

  async run<T>(fn: (session: S) => Promise<T>): Promise<T> {
    const session = await this.acquire();
    let keep = true;
    try {
      return await fn(session);
    } catch (err) {
      keep = err instanceof UnwrapRefusedError;
      throw err;
    } finally {
      this.release(session, keep);
    }
  }

  /** Forgets every session: idle ones are closed now, borrowed ones when they come back. */
  reset(): void {
    this.generation++;
    for (const s of this.idle.splice(0)) this.discard(s);
  }

  /** Closes idle sessions, fails waiters, and resolves once borrowed sessions are back and closed. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiters.splice(0)) w.reject(new KmsUnavailableError('pkcs11: adapter is closing'));
    this.reset();
    if (this.open > 0) await new Promise<void>((resolve) => (this.drained = resolve));
  }

  private acquire(): Promise<S> {
    if (this.closed) return Promise.reject(new KmsUnavailableError('pkcs11: adapter is closed'));
    const s = this.idle.pop();
    if (s !== undefined) return Promise.resolve(s);
    if (this.open < this.size) return new Promise((resolve, reject) => this.openFor({ resolve, reject }));
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private openFor(waiter: { resolve: (s: S) => void; reject: (e: unknown) => void }): void {
    this.open++;
    try {
      const s = this.openSession();
      this.born.set(s, this.generation);
      waiter.resolve(s);
    } catch (err) {
      this.open--;
      waiter.reject(err);
    }
  }

  private release(session: S, keep: boolean): void {
    if (keep && !this.closed && this.born.get(session) === this.generation) {
      const next = this.waiters.shift();
      if (next) next.resolve(session);
      else this.idle.push(session);
      return;
    }
    this.discard(session);
    // Every waiter gets its own attempt: if reopening fails for one, the next must not hang.
    while (this.waiters.length > 0 && this.open < this.size && !this.closed) this.openFor(this.waiters.shift()!);
  }

  private discard(session: S): void {
    this.born.delete(session);
    try {
      this.closeSession(session);
    } catch {
      // Already gone with the token; nothing left to release.
    }
    this.open--;
    if (this.open === 0) this.drained?.();
  }
}
