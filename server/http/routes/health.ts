import { Router } from 'express';
import type { AppDeps } from '../app';
import { maxLagSince, startLagSampler } from '../event-loop-lag';
import { sharedFor } from '../shared-result';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * /healthz (liveness): fails when this process is wedged — the event loop was blocked longer than
 * CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS since the last probe, or requests have waited for a database
 * connection with none handed out for CS_HEALTH_MAX_POOL_STALL_MS — so the orchestrator restarts it.
 * It never fails because the database or KMS is down: a restart would not fix that.
 * /readyz (readiness): the database and the configured KEK each answer within CS_READY_TIMEOUT_MS.
 */
export function healthRoutes(deps: AppDeps): Router {
  const r = Router();
  const h = deps.config.health;
  startLagSampler();
  let lastProbe = Date.now();

  // /readyz is unauthenticated: one KMS round trip is shared for a few seconds so probes cannot
  // burn KMS quota, but never longer than a probe interval, so a hung KMS shows on the next probe.
  const checkKms = sharedFor(h.readyKmsCacheMs, () => withTimeout(deps.kms.check(deps.config.kms.kekUri), h.readyTimeoutMs, 'kms'));

  r.get('/healthz', (req, res) => {
    const delayMs = maxLagSince(lastProbe);
    lastProbe = Date.now();
    const stallMs = deps.store.poolWatch.stalledForMs();
    const checks = { eventLoop: delayMs > h.maxEventLoopDelayMs ? 'failing' : 'ok', databasePool: stallMs > h.maxPoolStallMs ? 'failing' : 'ok' };
    res.setHeader('Cache-Control', 'no-store');
    if (checks.eventLoop === 'failing' || checks.databasePool === 'failing') {
      deps.log.error({ requestId: req.requestId, eventLoopDelayMs: delayMs, poolStalledMs: stallMs, poolWaiters: deps.store.poolWatch.waiters }, 'liveness failing: process is wedged');
      res.status(503).json({ status: 'failing', checks });
      return;
    }
    res.json({ status: 'ok' });
  });

  r.get('/readyz', async (req, res) => {
    const [db, kms] = await Promise.allSettled([withTimeout(deps.store.ping(), h.readyTimeoutMs, 'database'), checkKms()]);
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
