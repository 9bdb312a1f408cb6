/**
 * Idempotency-Key on the backend API's POSTs (the IETF httpapi Idempotency-Key draft, as Stripe
 * does it): the first request with a key claims it in the database (so every replica sees the
 * claim) and its response is stored for 24 hours; a retry with the same body gets that response
 * again, a different body 422, and a retry while the first still runs 409 + Retry-After. A
 * request that fails before its write commits (4xx/5xx) releases its key: it wrote nothing, so it
 * may simply run again; once the write has committed the key is never released.
 */
import { createHash } from 'node:crypto';
import type { Runner } from '../server/repositories/runner';
import { uniqueViolation } from '../server/repositories/db-errors';
import { ValidationError } from '../server/errors';
import { IdempotencyInProgressError, IdempotencyMismatchError } from './errors';
import type { IdempotencyRepository } from './repositories/idempotency';

const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
const KEY_RE = /^[\x21-\x7e]{1,255}$/;

/** JSON with object keys sorted, so the same body sent with keys in another order is the same request. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v as object).sort().map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export function requestHash(method: string, path: string, body: unknown): string {
  return createHash('sha256').update(`${method} ${path}\n${canonical(body ?? null)}`).digest('hex');
}

export type Claim = { kind: 'execute'; release: () => Promise<void>; complete: (status: number, body: unknown) => Promise<void> } | { kind: 'replay'; status: number; body: unknown };

/** How often a process deletes expired records (on the next claim after this long). */
const PURGE_EVERY_MS = 3_600_000;

export class Idempotency {
  private lastPurge = 0;

  constructor(private readonly run: Runner<IdempotencyRepository>) {}

  async claim(tokenId: string, key: string, hash: string, now: Date = new Date()): Promise<Claim> {
    if (!KEY_RE.test(key)) throw new ValidationError('Idempotency-Key must be 1 to 255 printable ASCII characters');
    if (now.getTime() - this.lastPurge >= PURGE_EVERY_MS) {
      this.lastPurge = now.getTime();
      await this.purgeExpired(now);
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.run((r) =>
          r.claim({ tokenId, idemKey: key, requestHash: hash, status: null, response: null, createdAt: now.toISOString(), expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS).toISOString() }),
        );
        return {
          kind: 'execute',
          release: () => this.run((r) => r.remove(tokenId, key)),
          complete: (status, body) => this.run((r) => r.complete(tokenId, key, status, JSON.stringify(body))),
        };
      } catch (err) {
        if (!uniqueViolation(err)) throw err;
      }
      const row = await this.run((r) => r.find(tokenId, key));
      if (!row) continue; // released meanwhile: claim again
      if (row.expiresAt <= now.toISOString()) {
        await this.run((r) => r.remove(tokenId, key));
        continue;
      }
      if (row.requestHash !== hash) throw new IdempotencyMismatchError();
      if (row.status === null || row.response === null) throw new IdempotencyInProgressError();
      return { kind: 'replay', status: row.status, body: JSON.parse(row.response) as unknown };
    }
    throw new IdempotencyInProgressError();
  }

  purgeExpired(now: Date = new Date()): Promise<number> {
    return this.run((r) => r.purgeExpired(now.toISOString()));
  }
}
