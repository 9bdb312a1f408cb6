/**
 * Idempotency-Key on the backend API's POSTs (the IETF httpapi Idempotency-Key draft, as Stripe
 * does it): the first request with a key claims it in the database (so every replica sees the
 * claim) and its response is stored for 24 hours; a retry with the same body gets that response
 * again, a different body 422, and a retry while the first still runs 409 + Retry-After.
 *
 * Crashes: a claim carries a random id and, while in progress, a short lease. A writing request
 * stores its response inside its write's own transaction (`completeIn`), with a compare-and-set on
 * its claim id: the write and its stored response commit together or not at all. So a process that
 * dies before its commit left nothing but the claim, and once the lease runs out a retry takes the
 * key over (compare-and-set on the old claim id: one retry wins) and runs the request; one that dies
 * after its commit left the response, which the retry replays. A request that outlives its lease and
 * was taken over finds its claim gone at completion and rolls back (409): the write never runs twice.
 * A request that fails releases its claim (it wrote nothing), so a retry runs at once.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { Runner } from '../server/repositories/runner';
import { uniqueViolation } from '../server/repositories/db-errors';
import { ValidationError } from '../server/errors';
import { IdempotencyClaimLostError, IdempotencyInProgressError, IdempotencyMismatchError } from './errors';
import { IdempotencyRepository } from './repositories/idempotency';

/** How long a finished request's response is replayed. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
/**
 * Lease of an in-progress claim: how long the key of a request whose process died answers 409
 * before a retry may run it again. Far longer than a request runs once it holds its claim (its body
 * is already read): a group or user create makes one KMS call, bounded by CS_KMS_DEADLINE_MS
 * (default 6 s), waits at most CS_DB_ACQUIRE_TIMEOUT_MS (default 5 s) per database connection, and
 * seals to each member in memory. Correctness does not rest on it: a request still running when a
 * retry takes over rolls back at completion, so a too-short lease costs a 409, never a double write.
 */
export const CLAIM_LEASE_MS = 5 * 60_000;
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

export interface Execute {
  kind: 'execute';
  /** Frees the key after a failure: only while this request still holds it and stored no response. */
  release: () => Promise<void>;
  /**
   * Stores the response of a request that wrote nothing (a read, an existing user), after the fact.
   * If a retry took the key over meanwhile, the retry's response will be stored instead.
   */
  complete: (status: number, body: unknown) => Promise<void>;
  /**
   * Stores the response inside the write's own transaction `tx`. Throws IdempotencyClaimLostError
   * when a retry took the key over, so that the write rolls back and runs only once.
   */
  completeIn: (tx: EntityManager, status: number, body: unknown) => Promise<void>;
}

export type Claim = Execute | { kind: 'replay'; status: number; body: unknown };

/** How often a process deletes expired records (on the next claim after this long). */
const PURGE_EVERY_MS = 3_600_000;

/** A claim younger than this is most likely live and about to finish: its retry waits 1 s. */
const YOUNG_CLAIM_S = 5;

/**
 * Retry-After for a claim still in progress: 1 s while it is young; an older one is likely stuck or
 * dead, so about as long as it has run so far (fewer retries of a dead key), and never past the end
 * of its lease, when a retry may take it over.
 */
function retryAfterSeconds(row: { createdAt: string; expiresAt: string }, now: Date): number {
  const left = Math.ceil((Date.parse(row.expiresAt) - now.getTime()) / 1000);
  const age = Math.floor((now.getTime() - Date.parse(row.createdAt)) / 1000);
  return Math.max(1, Math.min(left, age < YOUNG_CLAIM_S ? 1 : age));
}

export class Idempotency {
  private lastPurge = 0;

  constructor(
    private readonly run: Runner<IdempotencyRepository>,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async claim(tokenId: string, key: string, hash: string, now: Date = this.clock()): Promise<Claim> {
    if (!KEY_RE.test(key)) throw new ValidationError('Idempotency-Key must be 1 to 255 printable ASCII characters');
    if (now.getTime() - this.lastPurge >= PURGE_EVERY_MS) {
      this.lastPurge = now.getTime();
      await this.purgeExpired(now);
    }
    const nowIso = now.toISOString();
    for (let attempt = 0; attempt < 3; attempt++) {
      const claimId = randomBytes(16).toString('hex');
      const row = { tokenId, idemKey: key, requestHash: hash, claimId, status: null, response: null, createdAt: nowIso, expiresAt: new Date(now.getTime() + CLAIM_LEASE_MS).toISOString() };
      try {
        await this.run((r) => r.claim(row));
        return this.execute(tokenId, key, claimId);
      } catch (err) {
        if (!uniqueViolation(err)) throw err;
      }
      const found = await this.run((r) => r.find(tokenId, key));
      if (!found) continue; // released meanwhile: claim again
      if (found.expiresAt <= nowIso) {
        // Expired: a finished record past its 24 h, or a claim whose process died. One retry takes it over.
        if (await this.run((r) => r.takeOver(found.claimId, nowIso, row))) return this.execute(tokenId, key, claimId);
        continue; // another request changed it first: read it again
      }
      if (found.requestHash !== hash) throw new IdempotencyMismatchError();
      if (found.status === null || found.response === null) throw new IdempotencyInProgressError(retryAfterSeconds(found, now));
      return { kind: 'replay', status: found.status, body: JSON.parse(found.response) as unknown };
    }
    throw new IdempotencyInProgressError();
  }

  purgeExpired(now: Date = this.clock()): Promise<number> {
    return this.run((r) => r.purgeExpired(now.toISOString()));
  }

  private execute(tokenId: string, key: string, claimId: string): Execute {
    const expiresAt = () => new Date(this.clock().getTime() + IDEMPOTENCY_TTL_MS).toISOString();
    return {
      kind: 'execute',
      release: () => this.run((r) => r.release(tokenId, key, claimId)),
      complete: async (status, body) => {
        await this.run((r) => r.complete(tokenId, key, claimId, status, JSON.stringify(body), expiresAt()));
      },
      completeIn: async (tx, status, body) => {
        if (!(await new IdempotencyRepository(tx).complete(tokenId, key, claimId, status, JSON.stringify(body), expiresAt()))) throw new IdempotencyClaimLostError();
      },
    };
  }
}
