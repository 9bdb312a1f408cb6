import { Router } from 'express';
import { collectDefaultMetrics, register } from 'prom-client';
import { clusterMetrics, isWorker } from '../../cluster';

let collecting = false;

/**
 * Prometheus metrics: process figures and per-provider KMS call latency
 * (crypto_server_kms_call_duration_seconds). Identifiers and timings only, never key material.
 * Keep /metrics off the public ingress (it is on the same port as the API).
 */
export function metricsRoutes(): Router {
  if (!collecting) {
    collectDefaultMetrics({ prefix: 'crypto_server_' });
    collecting = true;
  }
  const r = Router();
  r.get('/metrics', async (_req, res) => {
    // Under CS_WORKERS > 1 any worker may get the scrape: it answers for all of them.
    res.type(register.contentType).send(isWorker() ? await clusterMetrics() : await register.metrics());
  });
  return r;
}
