/**
 * Background work of the SCIM endpoint, started by `serve`: webhook delivery from the outbox and
 * purging deleted users after their retention period. Both keep their state in the database, so
 * any number of replicas can run them.
 */
import type { AppDeps } from '../server/http/app';
import { OutboxDeliverer } from './outbox/deliverer';
import { OutboxRepository } from './repositories/outbox';
import { ownWrites } from '../server/repositories/runner';
import { scimServiceFor } from './router';

export interface ScimWorkers {
  stop: () => Promise<void>;
}

export function startScimWorkers(deps: AppDeps, opts: { purgeIntervalMs?: number } = {}): ScimWorkers {
  const webhook = deps.config.scim.webhook;
  const deliverer = webhook
    ? new OutboxDeliverer({ url: webhook.url, secret: webhook.secret, timeoutMs: webhook.timeoutMs, run: ownWrites(deps.store, (m) => new OutboxRepository(m)), log: deps.log })
    : undefined;
  deliverer?.start(webhook?.pollMs);
  // Delivered events are kept 30 days for `outbox list`, then removed.
  const housekeeping = setInterval(() => {
    const before = new Date(Date.now() - 30 * 86_400_000).toISOString();
    ownWrites(deps.store, (m) => new OutboxRepository(m))((r) => r.purgeDelivered(before)).catch((err: Error) => deps.log.warn({ error: err.message }, 'outbox housekeeping failed'));
  }, opts.purgeIntervalMs ?? 3_600_000);
  housekeeping.unref();
  let purge: NodeJS.Timeout | undefined;
  if (deps.config.scim.userDeleteRetentionDays !== null) {
    const service = scimServiceFor(deps);
    const run = () => {
      service.purgeExpiredUsers({ actor: 'system:retention' }).catch((err: Error) => deps.log.warn({ error: err.message }, 'purging deleted users failed'));
    };
    purge = setInterval(run, opts.purgeIntervalMs ?? 3_600_000);
    purge.unref();
    run();
  }
  return {
    stop: async () => {
      if (purge) clearInterval(purge);
      clearInterval(housekeeping);
      await deliverer?.stop();
    },
  };
}
