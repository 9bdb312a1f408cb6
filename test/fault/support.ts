import { SpyAdapter } from '../support/spy-kms';
import { KmsUnavailableError } from '../../server/errors';
import type { BindingContext, WrapResult } from '../../kms-adapters/types';
import type { Store } from '../../server/repositories/store';

/**
 * A local KMS that can be switched down (every call fails like an outage) or hung (calls wait
 * until `resume()`), and that records whether a database transaction was open at each call:
 * property 7 says it never is.
 */
export class SwitchableKms extends SpyAdapter {
  down = false;
  private hang?: { until: Promise<void>; release: () => void };
  /** One entry per KMS call: was a transaction of `store` open at that moment? */
  readonly duringTransaction: boolean[] = [];

  constructor(private readonly store?: Store) {
    super();
  }

  /** From now on calls wait (like a KMS that accepted the connection and never answers). */
  hangCalls(): void {
    let release!: () => void;
    const until = new Promise<void>((r) => (release = r));
    this.hang = { until, release };
  }

  /** Lets waiting calls through and stops hanging. */
  resume(): void {
    this.hang?.release();
    this.hang = undefined;
  }

  private async gate(): Promise<void> {
    if (this.store) this.duringTransaction.push(this.store.inTransaction);
    if (this.hang) await this.hang.until;
    if (this.down) throw new KmsUnavailableError('test: KMS switched off');
  }
  override async wrap(uri: string, pt: Uint8Array, ctx: BindingContext): Promise<WrapResult> {
    await this.gate();
    return super.wrap(uri, pt, ctx);
  }
  override async unwrap(uri: string, ct: Uint8Array, ctx: BindingContext): Promise<Buffer> {
    await this.gate();
    return super.unwrap(uri, ct, ctx);
  }
  override async check(uri: string): Promise<void> {
    await this.gate();
    return super.check(uri);
  }

  get total(): number {
    return this.calls.wrap + this.calls.unwrap + this.calls.check + this.calls.createKey;
  }
}

/** Milliseconds `p` took to settle, and how it settled. */
export async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const start = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}
