import { Histogram, register } from 'prom-client';

/**
 * Latency of every cloud KMS call, by provider, operation and outcome
 * (ok | refused | misconfigured | unavailable | breaker_open). Registered on prom-client's default
 * registry so the server's /metrics picks it up without wiring. Reused if already registered
 * (several adapters, or a module loaded twice by a test runner).
 */
const NAME = 'crypto_server_kms_call_duration_seconds';

export const kmsCallDuration: Histogram<'provider' | 'op' | 'outcome'> =
  (register.getSingleMetric(NAME) as Histogram<'provider' | 'op' | 'outcome'> | undefined) ??
  new Histogram({
    name: NAME,
    help: 'Duration of calls to a cloud KMS or Vault, including retries',
    labelNames: ['provider', 'op', 'outcome'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
