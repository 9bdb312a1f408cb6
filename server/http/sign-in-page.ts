import type { ErrorRequestHandler } from 'express';
import type { Logger } from '../log';
import { logError, toAppError } from './problem';

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The browser-facing sign-in routes (authorize, SAML assertion consumer) answer refusals with a
 * page a person can read instead of problem+json. Same mapping and logging as the API
 * (toAppError, logError); only the presentation differs. Never redirects.
 */
export function signInErrorPage(log: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const e = toAppError(err);
    logError(log, req, err, e);
    const title = e.status >= 500 ? 'Sign-in is unavailable' : e.status === 429 ? 'Too many sign-in attempts' : 'Sign-in refused';
    if (e.retryAfter) res.setHeader('Retry-After', String(e.retryAfter));
    const message = e.status >= 500 ? 'Crypto Server could not complete the sign-in. Try again later; if it persists, give your administrator the reference below.' : e.message;
    res
      .status(e.status)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>` +
          `<meta name="viewport" content="width=device-width, initial-scale=1"></head>` +
          `<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem">` +
          `<h1>${title}</h1><p id="reason">${esc(message)}</p>` +
          `<p style="color:#555">Error: <code id="code">${esc(e.code)}</code> · Reference: <code>${esc(req.requestId ?? '')}</code></p>` +
          `</body></html>`,
      );
  };
}
