import type { RequestHandler } from 'express';
import { rateLimit } from '../server/http/rate-limit';
import type { RateLimitHits } from '../server/repositories/rate-limit-hits';

export interface ScimRateLimitOptions {
  /** Requests per token per minute; 0 disables the limit. */
  perMinute: number;
  hits: RateLimitHits;
  now?: () => number;
}

/** Per-token limit; runs after authentication (`res.locals.scimToken.id` names the bucket). */
export function rateLimitPerToken(opts: ScimRateLimitOptions): RequestHandler {
  return rateLimit({
    ...opts,
    what: 'for this token',
    bucket: (_req, res) => `scim:${(res.locals.scimToken as { id: string } | undefined)?.id ?? 'anonymous'}`,
  });
}
