import { csrfField, html, table, widget, type Html } from '../html';
import { lineChart, type Series } from '../svg-chart';
import type { ConsoleServices } from '../services';
import { detailObject, reasonOf } from './sign-ins';

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;

/** Refusals folded into this row by the SCIM refusal audit's rate bound (scim/refusal-audit.ts). */
function suppressedOf(detail: string | null): number {
  const n = detailObject(detail).suppressed;
  return typeof n === 'number' && n > 0 ? n : 0;
}

/** SCIM activity per token (from the audit trail), refused SCIM requests, and the webhook outbox. */
export async function provisioningPage(svc: ConsoleServices, csrf: string): Promise<Html> {
  const now = Date.now();
  const activity = await widget('SCIM activity', async () => {
    const [tokens, events] = await Promise.all([svc.tokens.list(), svc.queries.scimEvents(new Date(now - DAY_MS).toISOString(), 20_000)]);
    const byToken = new Map<string, { changes: number; errors: number; hours: Map<number, number> }>();
    for (const e of events) {
      const id = e.actor.slice('scim:'.length);
      const t = byToken.get(id) ?? { changes: 0, errors: 0, hours: new Map() };
      if (e.outcome === 'success') t.changes++;
      else t.errors += 1 + suppressedOf(e.detail);
      const hour = Math.floor(Date.parse(e.at) / HOUR_MS) * HOUR_MS;
      t.hours.set(hour, (t.hours.get(hour) ?? 0) + 1);
      byToken.set(id, t);
    }
    const scimTokens = tokens.filter((t) => t.scope === 'scim');
    const rows = scimTokens.map((t) => {
      const a = byToken.get(t.id);
      return [t.name, t.id, t.revoked_at ? 'revoked' : 'active', String(a?.changes ?? 0), String(a?.errors ?? 0), t.last_used_at ?? 'never'];
    });
    const series: Series[] = scimTokens
      .filter((t) => byToken.has(t.id))
      .map((t) => ({ name: t.name, points: [...byToken.get(t.id)!.hours].sort((a, b) => a[0] - b[0]).map(([h, n]) => ({ t: Math.min(h + HOUR_MS / 2, now), v: n })) }));
    return html`${table(['token', 'id', 'state', 'changes (24 h)', 'errors (24 h)', 'last seen'], rows, 'no SCIM tokens yet: crypto-server token create --scope scim')}
${lineChart({ title: 'Audited SCIM events per hour (changes and refusals), last 24 hours', unit: 'events', series, from: now - DAY_MS, to: now })}`;
  });
  const refused = await widget('Refused SCIM requests', async () => {
    const [rows, tokens] = await Promise.all([svc.queries.scimRefusals(20), svc.tokens.list()]);
    const names = new Map(tokens.map((t) => [t.id, t.name]));
    return table(
      ['at', 'caller', 'request', 'status', 'reason', 'more like it'],
      rows.map((e) => {
        const d = detailObject(e.detail);
        const id = e.actor.startsWith('scim:') ? e.actor.slice('scim:'.length) : undefined;
        const caller = id ? `${names.get(id) ?? 'token'} (${id})` : `anonymous${d.from ? ` from ${String(d.from)}` : ''}`;
        const request = e.action === 'scim.refused' ? `${String(d.method ?? '')} ${String(d.path ?? '')}` : e.action;
        const status = d.status !== undefined ? `${String(d.status)}${d.scimType ? ` ${String(d.scimType)}` : ''}` : e.outcome;
        const more = suppressedOf(e.detail);
        return [e.at, caller, request, status, reasonOf(e.detail), more ? html`<span data-suppressed="${String(more)}">+${String(more)} not recorded one by one</span>` : ''];
      }),
      'none',
    );
  });
  const outbox = await widget('Outbox', async () => {
    const webhook = svc.deps.config.scim.webhook;
    const [stats, failed] = await Promise.all([svc.queries.outboxStats(), svc.queries.failedDeliveries(20)]);
    return html`<p>Webhook: ${webhook ? html`<code>${webhook.url}</code>` : 'not configured (CS_WEBHOOK_URL); changes are not recorded for delivery'}</p>
${table(['pending', 'delivered', 'oldest pending', 'last error'], [[String(stats.pending), String(stats.delivered), stats.oldestPendingAt ?? '—', stats.lastError ?? '—']])}
<h3>Failed deliveries</h3>
${table(
  ['seq', 'event', 'resource', 'attempts', 'next attempt', 'error', ''],
  failed.map((r) => [
    String(r.seq),
    r.event_type,
    r.resource_id,
    String(r.attempts),
    r.next_attempt_at,
    r.last_error ?? '',
    html`<form method="post" action="/admin/outbox/${String(r.seq)}/retry">${csrfField(csrf)}<button type="submit">Retry now</button></form>`,
  ]),
  'none',
)}`;
  });
  return html`<h2>SCIM activity per token</h2>${activity}<h2>Last refused SCIM requests</h2>${refused}<h2>Webhook outbox</h2>${outbox}`;
}
