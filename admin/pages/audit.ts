import { html, table, type Html } from '../html';
import type { ConsoleServices } from '../services';
import { reasonOf } from './sign-ins';

/** The audit filters the console's form offers: the audit search's own (server/audit/search.ts). */
export const AUDIT_FILTERS = ['actor', 'action', 'outcome', 'targetType', 'targetId', 'since', 'until', 'requestId'] as const;

/** Keeps the filled-in filters of a query string, as strings. */
export function auditFiltersOf(query: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of AUDIT_FILTERS) {
    const v = query[k];
    if (typeof v === 'string' && v.trim() !== '') out[k] = v.trim();
  }
  return out;
}

/** Search form, one page of results (newest first, keyset paging) and the export link. */
export async function auditPage(svc: ConsoleServices, query: Record<string, unknown>): Promise<Html> {
  const filters = auditFiltersOf(query);
  const before = typeof query.before === 'string' && query.before !== '' ? query.before : undefined;
  const result = await svc.auditPage(filters, { before, limit: 50 });
  const qs = new URLSearchParams(filters);
  const nextQs = new URLSearchParams({ ...filters, ...(result.next !== null ? { before: String(result.next) } : {}) });
  const field = (name: string, label: string, placeholder = '') =>
    html`<label>${label}<input name="${name}" value="${filters[name] ?? ''}" placeholder="${placeholder}"></label>`;
  return html`<form method="get" action="/admin/audit" class="filters">
${field('actor', 'Actor', 'user:…, scim:…')}${field('action', 'Action', 'saml.login')}
<label>Outcome<select name="outcome"><option value="">any</option>${['success', 'failure', 'refused'].map((o) => html`<option${filters.outcome === o ? html` selected` : ''}>${o}</option>`)}</select></label>
${field('targetType', 'Target type', 'user, group')}${field('targetId', 'Target id')}${field('since', 'Since', '-1h, 2026-12-01')}${field('until', 'Until')}${field('requestId', 'Request id')}
<button type="submit">Search</button></form>
<p><a id="audit-export" href="/admin/audit/export${qs.size ? `?${qs}` : ''}" download>Export these events (JSON Lines)</a> · same as <code>crypto-server audit export</code></p>
${table(
  ['id', 'at', 'actor', 'action', 'outcome', 'target', 'reason / detail', 'request'],
  result.rows.map((e) => [String(e.id), e.at, e.actor, e.action, e.outcome, [e.targetType, e.targetId].filter(Boolean).join(' '), reasonOf(e.detail) || (e.detail ?? ''), e.requestId ?? '']),
  'no events match',
)}
${result.next !== null ? html`<p><a id="audit-next" href="/admin/audit?${nextQs.toString()}">Older events →</a></p>` : ''}`;
}
