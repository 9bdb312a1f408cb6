import type { RequestHandler } from 'express';
import { RateLimitedError } from '../server/errors';
import type { RateLimitRepository } from './repositories/rate-limits';
import type { Runner } from './repositories/runner';

export interface RateLimitOptions {
  /** Requests per token per minute; 0 disables the limit. */
  perMinute: number;
  run: Runner<RateLimitRepository>;
  now?: () => number;
}

/**
 * Per-token fixed one-minute windows, counted in the database. Runs after authentication:
 * `res.locals.scimToken.id` names the bucket. Over the limit: 429 with Retry-After (seconds to the
 * next window).
 */
export function rateLimitPerToken(opts: RateLimitOptions): RequestHandler {
  const now = opts.now ?? Date.now;
  let calls = 0;
  return async (_req, res, next) => {
    try {
      if (opts.perMinute <= 0) return next();
      const tokenId = (res.locals.scimToken as { id: string } | undefined)?.id ?? 'anonymous';
      const t = now();
      const window = Math.floor(t / 60_000);
      const hits = await opts.run((repo) => repo.hit(`scim:${tokenId}`, window));
      if (++calls % 500 === 0) await opts.run((repo) => repo.deleteOlderThan(window - 1));
      res.setHeader('RateLimit-Limit', String(opts.perMinute));
      res.setHeader('RateLimit-Remaining', String(Math.max(0, opts.perMinute - hits)));
      if (hits > opts.perMinute) {
        const retryAfter = Math.max(1, Math.ceil(((window + 1) * 60_000 - t) / 1000));
        throw new RateLimitedError(`more than ${opts.perMinute} requests a minute for this token; retry later`, { retryAfter });
      }
      next();
    } catch (err) {
      next(err);
    }
  };
}
