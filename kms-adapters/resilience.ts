import { setTimeout as sleep } from 'node:timers/promises';
import { KmsConfigurationError, KmsError, KmsUnavailableError, UnwrapRefusedError } from './errors';
import { kmsCallDuration } from './metrics';

/**
 * Shared resilience for the cloud KMS adapters: per-attempt timeout, retries with full-jitter
 * exponential back-off on transient faults, an overall deadline that bounds one operation with
 * all its retries (so a client gets its 503 within it), and a circuit breaker so a dead KMS fails
 * fast with KmsUnavailableError (and a Retry-After) instead of tying up request handlers.
 *
 * Each adapter supplies `classify`, which maps its SDK's errors to one of three kinds:
 *  - transient: throttling, 5xx, network, timeout → retried, then KmsUnavailableError;
 *  - refused:   the ciphertext or its binding did not authenticate → UnwrapRefusedError;
 *  - config:    access denied, key disabled or missing, wrong key type → KmsConfigurationError.
 */
export type ErrorClass =
  | { kind: 'transient'; detail: string; retryAfterMs?: number }
  | { kind: 'refused'; detail: string }
  | { kind: 'config'; detail: string };

export interface ResilienceSettings {
  timeoutMs?: number;
  /** Bound on one call including its retries and back-off; default timeoutMs + 1 s. */
  deadlineMs?: number;
  maxRetries?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Consecutive failed calls (after their retries) that open the breaker. */
  breakerThreshold?: number;
  breakerCooldownMs?: number;
}

export class TimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

type BreakerState = 'closed' | 'open' | 'half-open';

export class Resilience {
  readonly timeoutMs: number;
  readonly deadlineMs: number;
  readonly maxRetries: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly threshold: number;
  private readonly cooldownMs: number;
  private state: BreakerState = 'closed';
  private failures = 0;
  private openedAt = 0;
  private trialInFlight = false;

  constructor(
    private readonly provider: string,
    private readonly classify: (err: unknown, op: string) => ErrorClass,
    s: ResilienceSettings = {},
  ) {
    this.timeoutMs = positive(s.timeoutMs, 5000);
    this.deadlineMs = positive(s.deadlineMs, this.timeoutMs + 1000);
    this.maxRetries = nonNegative(s.maxRetries, 3);
    this.baseDelayMs = positive(s.baseDelayMs, 50);
    this.maxDelayMs = positive(s.maxDelayMs, 2000);
    this.threshold = positive(s.breakerThreshold, 5);
    this.cooldownMs = positive(s.breakerCooldownMs, 10_000);
  }

  get breakerState(): BreakerState {
    return this.state;
  }

  /** Runs `fn` under timeout, retry and breaker; `fn` gets an AbortSignal to pass to its SDK. */
  async call<T>(op: string, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const end = kmsCallDuration.startTimer({ provider: this.provider, op });
    const retryAfter = this.admit();
    if (retryAfter !== undefined) {
      end({ outcome: 'breaker_open' });
      throw new KmsUnavailableError(`${this.provider}: circuit breaker open after ${this.threshold} failed calls`, { retryAfter });
    }
    let last: ErrorClass | undefined;
    let lastErr: unknown;
    const deadline = Date.now() + this.deadlineMs;
    let attempts = 0;
    for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
      try {
        attempts++;
        // The last attempt gets only what is left of the deadline.
        const out = await this.attempt(fn, Math.max(1, Math.min(this.timeoutMs, deadline - Date.now())));
        this.onSuccess();
        end({ outcome: 'ok' });
        return out;
      } catch (err) {
        lastErr = err;
        // Our own typed errors (e.g. a sealed-digest mismatch found by the adapter) pass through.
        if (err instanceof KmsError) {
          this.onSuccess(); // the KMS answered; it is not unhealthy
          end({ outcome: err instanceof UnwrapRefusedError ? 'refused' : 'misconfigured' });
          throw err;
        }
        last = this.classify(err, op);
        if (last.kind !== 'transient') break;
        if (attempt === this.maxRetries) break;
        const wait = this.backoff(attempt, last.retryAfterMs);
        // No time for a useful next attempt: give the client its 503 now rather than after the deadline.
        if (Date.now() + wait >= deadline - 1) break;
        await sleep(wait);
      }
    }
    const c = last!;
    if (c.kind === 'refused') {
      this.onSuccess();
      end({ outcome: 'refused' });
      throw new UnwrapRefusedError(`${this.provider} ${op}: ${c.detail}`);
    }
    if (c.kind === 'config') {
      this.onSuccess();
      end({ outcome: 'misconfigured' });
      throw new KmsConfigurationError(`${this.provider} ${op}: ${c.detail}`, { cause: lastErr });
    }
    this.onFailure();
    end({ outcome: 'unavailable' });
    throw new KmsUnavailableError(`${this.provider} ${op}: ${c.detail} (after ${attempts} attempt(s) within the ${this.deadlineMs} ms deadline)`, {
      retryAfter: this.state === 'open' ? Math.ceil(this.cooldownMs / 1000) : undefined,
      cause: lastErr,
    });
  }

  private async attempt<T>(fn: (signal: AbortSignal) => Promise<T>, timeoutMs: number): Promise<T> {
    const ac = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new TimeoutError(timeoutMs);
        ac.abort(err);
        reject(err);
      }, timeoutMs);
    });
    const work = fn(ac.signal);
    // A result that arrives after we gave up may be a plaintext key nobody will read: zero it.
    work.then(
      (late) => ac.signal.aborted && zeroBytes(late),
      () => undefined,
    );
    try {
      // Race as well as abort: not every SDK honours the signal promptly.
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** undefined = go ahead; a number = breaker is open, retry after that many seconds. */
  private admit(): number | undefined {
    if (this.state === 'closed') return undefined;
    const waited = Date.now() - this.openedAt;
    if (this.state === 'open' && waited >= this.cooldownMs) this.state = 'half-open';
    if (this.state === 'half-open' && !this.trialInFlight) {
      this.trialInFlight = true; // one trial call decides whether to close again
      return undefined;
    }
    return Math.max(1, Math.ceil((this.cooldownMs - waited) / 1000));
  }

  private onSuccess(): void {
    this.failures = 0;
    this.state = 'closed';
    this.trialInFlight = false;
  }

  private onFailure(): void {
    this.failures++;
    this.trialInFlight = false;
    if (this.state === 'half-open' || this.failures >= this.threshold) {
      this.state = 'open';
      this.openedAt = Date.now();
    }
  }

  private backoff(attempt: number, hintMs?: number): number {
    const cap = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** attempt);
    const jittered = Math.random() * cap; // full jitter spreads a thundering herd
    return hintMs !== undefined ? Math.min(this.maxDelayMs, Math.max(hintMs, jittered)) : jittered;
  }
}

/** Network-level failures every HTTP client shares: refused, reset, DNS, our own timeout. */
export function isNetworkError(err: unknown): boolean {
  if (err instanceof TimeoutError) return true;
  const e = err as { code?: string; name?: string; cause?: { code?: string } } | undefined;
  const code = e?.code ?? e?.cause?.code;
  return (
    e?.name === 'AbortError' ||
    e?.name === 'TimeoutError' ||
    (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|UND_ERR_\w+|ECONNABORTED)$/.test(code))
  );
}

export function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string } | undefined;
  return `${e?.name ?? 'Error'}: ${String(e?.message ?? err).slice(0, 300)}`;
}

/** Reads timeoutMs / maxRetries etc. from adapter settings (CS_KMS_*; see server/config/kms.ts). */
export function resilienceSettings(settings: Readonly<Record<string, unknown>>): ResilienceSettings {
  const num = (v: unknown): number | undefined => (v === undefined || v === '' ? undefined : Number(v));
  return {
    timeoutMs: num(settings.timeoutMs),
    deadlineMs: num(settings.deadlineMs),
    maxRetries: num(settings.maxRetries),
    baseDelayMs: num(settings.baseDelayMs),
    maxDelayMs: num(settings.maxDelayMs),
    breakerThreshold: num(settings.breakerThreshold),
    breakerCooldownMs: num(settings.breakerCooldownMs),
  };
}

function positive(v: number | undefined, d: number): number {
  return v !== undefined && Number.isFinite(v) && v > 0 ? v : d;
}
function nonNegative(v: number | undefined, d: number): number {
  return v !== undefined && Number.isFinite(v) && v >= 0 ? Math.floor(v) : d;
}

/**
 * Zeroes a late SDK result's bytes: a Uint8Array itself, or the Uint8Array fields of a response
 * object (AWS `{ Plaintext }`, Azure `{ result }`). Strings (Vault's base64) cannot be zeroed.
 */
export function zeroBytes(value: unknown): void {
  if (value instanceof Uint8Array) {
    value.fill(0);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) if (v instanceof Uint8Array) v.fill(0);
  }
}
