import type { Command } from 'commander';
import { withStore } from './with-store';
import { wholeNumber } from './options';
import { OutboxRepository } from '../../scim/repositories/outbox';
import { newWebhookSecret } from '../../scim/outbox/signature';

/** `crypto-server outbox status|list|new-secret`: delivery state of SCIM changes to the cloud service webhook. */
export async function outboxCommand(env: NodeJS.ProcessEnv, print: (line: string) => void, action: { status: true } | { list: { limit: number; pending?: boolean } } | { retry: number }): Promise<number> {
  return withStore(env, async (store, config) => {
    const repo = new OutboxRepository(store.dataSource.manager);
    if ('status' in action) {
      const s = await repo.stats();
      print(`webhook: ${config.scim.webhook ? config.scim.webhook.url : 'not configured (changes are not recorded for delivery)'}`);
      print(`pending: ${s.pending}${s.oldestPendingAt ? ` (oldest from ${s.oldestPendingAt})` : ''}`);
      print(`delivered: ${s.delivered}`);
      if (s.lastError) print(`last error: ${s.lastError}`);
      return s.pending > 0 && s.lastError ? 1 : 0;
    }
    if ('retry' in action) {
      const ok = await repo.retryNow(action.retry, new Date().toISOString());
      print(ok ? `event ${action.retry} is due now; a running server delivers it within CS_OUTBOX_POLL_MS` : `no pending event ${action.retry}`);
      return ok ? 0 : 1;
    }
    const rows = await repo.recent(action.list.limit, action.list.pending ? 'pending' : undefined);
    for (const r of rows) {
      print(`${r.seq}\t${r.event_id}\t${r.event_type}\t${r.resource_id}\t${r.status}\tattempts ${r.attempts}\t${r.status === 'pending' ? `next ${r.next_attempt_at}` : `delivered ${r.delivered_at}`}${r.last_error ? `\t${r.last_error}` : ''}`);
    }
    if (rows.length === 0) print('no events');
    return 0;
  });
}

export function registerOutbox(program: Command): void {
  const outbox = program.command('outbox').description('delivery of SCIM changes to the cloud service webhook');
  outbox
    .command('status')
    .description('pending and delivered counts, oldest pending event, last error (exit 1 while deliveries are failing)')
    .action(async () => {
      process.exitCode = await outboxCommand(process.env, console.log, { status: true });
    });
  outbox
    .command('list')
    .description('recent events, newest first')
    .option('--pending', 'only events not yet delivered')
    .option('--limit <n>', 'how many (1 to 1000)', wholeNumber(1, 1000), 50)
    .action(async (o: { pending?: boolean; limit: number }) => {
      process.exitCode = await outboxCommand(process.env, console.log, { list: o });
    });
  outbox
    .command('retry')
    .description('deliver a pending event now instead of at its next back-off attempt (the console\'s "Retry now")')
    .argument('<seq>', 'the event\'s number (first column of outbox list)', wholeNumber(1, Number.MAX_SAFE_INTEGER))
    .action(async (seq: number) => {
      process.exitCode = await outboxCommand(process.env, console.log, { retry: seq });
    });
  outbox
    .command('new-secret')
    .description('print a new random webhook signing secret (whsec_...) for CS_WEBHOOK_SECRET')
    .action(() => {
      console.log(newWebhookSecret());
    });
}
