import { Router } from 'express';
import type { AppDeps } from '../app';

const READY_TIMEOUT_MS = 5000;
/** /readyz is unauthenticated: its KMS round trip is shared for this long, so probes cannot burn KMS quota. */
const KMS_CHECK_TTL_MS = 10_000;

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} timed out`)), READY_TIMEOUT_MS).unref())]);
}

/** /healthz: the process lives. /readyz: the database and the configured KEK both answer. */
export function healthRoutes(deps: AppDeps): Router {
  const r = Router();
  let kmsCheck: { at: number; result: Promise<void> } | undefined;
  const checkKms = (): Promise<void> => {
    const now = Date.now();
    if (!kmsCheck || now - kmsCheck.at > KMS_CHECK_TTL_MS) {
      kmsCheck = { at: now, result: withTimeout(deps.kms.check(deps.config.kms.kekUri), 'kms') };
      kmsCheck.result.catch(() => undefined); // observed by every caller; never unhandled
    }
    return kmsCheck.result;
  };
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (req, res) => {
    const [db, kms] = await Promise.allSettled([withTimeout(deps.store.ping(), 'database'), checkKms()]);
    const checks = { database: db.status === 'fulfilled' ? 'ok' : 'failing', kms: kms.status === 'fulfilled' ? 'ok' : 'failing' };
    if (db.status === 'rejected' || kms.status === 'rejected') {
      deps.log.warn({ requestId: req.requestId, database: db.status === 'rejected' ? String(db.reason) : 'ok', kms: kms.status === 'rejected' ? String(kms.reason) : 'ok' }, 'not ready');
      res.status(503).setHeader('Retry-After', '5');
    }
    res.setHeader('Cache-Control', 'no-store');
    res.json({ status: res.statusCode === 200 ? 'ready' : 'not ready', checks });
  });
  return r;
}
