import type { NextFunction, Request, RequestHandler, Response } from 'express';

/**
 * Managed CORS for the browser-facing routes (token endpoint, key API, JWKS).
 *
 * - Only origins on the allow-list, compared as exact strings (scheme://host[:port]), get CORS
 *   headers; the request's Origin is echoed only after it matched the list, never otherwise.
 * - Every response carries `Vary: Origin`, so a shared cache never serves one origin's answer
 *   to another.
 * - Preflights are answered here (204) and cached by the browser for `maxAgeSeconds`.
 * - No Access-Control-Allow-Credentials: the API takes Bearer tokens, never cookies.
 */
export interface CorsOptions {
  origins: readonly string[];
  maxAgeSeconds: number;
  methods?: readonly string[];
  headers?: readonly string[];
}

/** Returns why `origin` cannot go on the allow-list, or undefined when it is a valid exact origin. */
export function originProblem(origin: string): string | undefined {
  if (origin === '*' || origin === 'null') return 'wildcards and "null" are not allowed; list exact origins';
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    return 'is not an origin (scheme://host[:port])';
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return 'must use http or https';
  if (u.origin !== origin) return `must be written exactly as its origin "${u.origin}" (no path, no trailing slash, lower-case host, default port omitted)`;
  return undefined;
}

export function corsAllowList(opts: CorsOptions): RequestHandler {
  const allowed = new Set(opts.origins);
  const methods = (opts.methods ?? ['GET', 'POST']).join(', ');
  const headers = (opts.headers ?? ['Authorization', 'Content-Type']).join(', ');
  const maxAge = String(opts.maxAgeSeconds);

  return (req: Request, res: Response, next: NextFunction) => {
    res.vary('Origin');
    const origin = req.headers.origin;
    const ok = typeof origin === 'string' && allowed.has(origin);
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      if (!preflight) res.setHeader('Access-Control-Expose-Headers', 'WWW-Authenticate');
    }
    if (preflight) {
      if (ok) {
        res.setHeader('Access-Control-Allow-Methods', methods);
        res.setHeader('Access-Control-Allow-Headers', headers);
        res.setHeader('Access-Control-Max-Age', maxAge);
      }
      res.status(204).end();
      return;
    }
    next();
  };
}
