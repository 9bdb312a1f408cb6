import type { Request, RequestHandler, Response } from 'express';
import { RateLimitedError } from '../errors';
import { rateLimitHits, type RateLimitHits } from '../repositories/rate-limit-hits';
import type { Store } from '../repositories/store';

export interface RateLimitOptions {
  /** Requests per bucket per minute; 0 disables the limit. */
  perMinute: number;
  /** The bucket a request counts against, e.g. `scim:<token id>` or `signin:<client ip>`. */
  bucket: (req: Request, res: Response) => string;
  /** Says what was limited, for the 429 message. */
  what: string;
  /** The counters (repositories/rate-limit-hits.ts: `rateLimitHits(store)`). */
  hits: RateLimitHits;
  now?: () => number;
}

/**
 * Fixed one-minute windows counted in the database, so every replica shares one limit; `hits` is
 * this request's exact place in its window's count.
 * Over the limit: 429 with Retry-After (seconds to the next window) and RateLimit-* headers.
 */
export function rateLimit(opts: RateLimitOptions): RequestHandler {
  const now = opts.now ?? Date.now;
  let calls = 0;
  return async (req, res, next) => {
    try {
      if (opts.perMinute <= 0) return next();
      const t = now();
      const window = Math.floor(t / 60_000);
      const hits = await opts.hits.hit(opts.bucket(req, res), window);
      if (++calls % 500 === 0) await opts.hits.deleteOlderThan(window - 1);
      res.setHeader('RateLimit-Limit', String(opts.perMinute));
      res.setHeader('RateLimit-Remaining', String(Math.max(0, opts.perMinute - hits)));
      if (hits > opts.perMinute) {
        const retryAfter = Math.max(1, Math.ceil(((window + 1) * 60_000 - t) / 1000));
        throw new RateLimitedError(`more than ${opts.perMinute} requests a minute ${opts.what}; retry later`, { retryAfter });
      }
      next();
    } catch (err) {
      next(err);
    }
  };
}

/**
 * The sign-in endpoints (authorize, SAML ACS, token) are unauthenticated and each authorize writes
 * a pending request: one limit per client address across them (CS_SIGNIN_RATE_LIMIT_PER_MINUTE).
 * Behind a proxy, set CS_TRUST_PROXY so the address is the client's, not the proxy's.
 */
export function signInRateLimit(store: Store, perMinute: number): RequestHandler {
  return rateLimit({
    perMinute,
    what: 'from this address to the sign-in endpoints',
    bucket: (req) => `signin:${req.ip ?? 'unknown'}`,
    hits: rateLimitHits(store),
  });
}
