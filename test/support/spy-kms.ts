import { randomBytes } from 'node:crypto';
import { LocalAdapter } from '../../kms-adapters/local';
import type { BindingContext, KmsAdapter, WrapResult } from '../../kms-adapters/types';
import { KmsRegistry } from '../../kms-adapters/registry';

/**
 * A real local adapter with a recorder in front: counts calls, keeps the plaintext buffers it was
 * handed (to prove the caller zeroed them) and can be told to fail like a KMS outage.
 */
export class SpyAdapter implements KmsAdapter {
  readonly scheme = 'local';
  readonly inner = new LocalAdapter(randomBytes(32));
  calls = { wrap: 0, unwrap: 0, createKey: 0, check: 0 };
  wrappedPlaintexts: Uint8Array[] = [];
  failNext: Error | undefined;
  /** While set, unwrap waits for it (a hung KMS); it then fails or goes on as the promise does. */
  holdUnwrap: Promise<void> | undefined;

  private fault(): void {
    const e = this.failNext;
    this.failNext = undefined;
    if (e) throw e;
  }
  async wrap(uri: string, pt: Uint8Array, ctx: BindingContext): Promise<WrapResult> {
    this.calls.wrap++;
    this.wrappedPlaintexts.push(pt);
    this.fault();
    return this.inner.wrap(uri, pt, ctx);
  }
  async unwrap(uri: string, ct: Uint8Array, ctx: BindingContext): Promise<Buffer> {
    this.calls.unwrap++;
    if (this.holdUnwrap) await this.holdUnwrap;
    this.fault();
    return this.inner.unwrap(uri, ct, ctx);
  }
  async check(uri: string): Promise<void> {
    this.calls.check++;
    this.fault();
    return this.inner.check(uri);
  }
  async createKey(label: string): Promise<string> {
    this.calls.createKey++;
    return this.inner.createKey(label);
  }
  async close(): Promise<void> {}

  /** A registry over this adapter; `configured` plays the deployment's CS_KEK_URI and previous KEKs. */
  registry(configured: string[] = ['local://shared', 'local://shared-2026']): KmsRegistry {
    return new KmsRegistry(new Map([['local', this]]), configured);
  }
}
