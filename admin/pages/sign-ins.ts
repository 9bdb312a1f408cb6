import { html, table, widget, type Html } from '../html';
import type { ConsoleServices } from '../services';

/** An audit event's detail as an object ({} when absent or not JSON). */
export function detailObject(detail: string | null): Record<string, unknown> {
  try {
    const d = JSON.parse(detail ?? '{}') as unknown;
    return d && typeof d === 'object' ? (d as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** The reason an audit event's detail gives, as stored (the exact words the refusal recorded). */
export function reasonOf(detail: string | null): string {
  const d = detailObject(detail);
  return [d.reason, d.error].filter((x) => typeof x === 'string' && x).join(' — ');
}

function detailOf(detail: string | null, key: string): string {
  const v = detailObject(detail)[key];
  return typeof v === 'string' ? v : '';
}

/** Recent sign-ins and refusals with their reason, from the audit trail. */
export async function signInsPage(svc: ConsoleServices): Promise<Html> {
  const names = new Map<string, string>();
  const load = async (outcome?: 'refused') => {
    const events = await svc.queries.signIns(50, outcome);
    for (const [id, name] of await svc.queries.userNames(events.flatMap((e) => (e.targetType === 'user' && e.targetId ? [e.targetId] : [])))) names.set(id, name);
    return events.map(row);
  };
  const row = (e: { at: string; action: string; outcome: string; actor: string; targetType: string | null; targetId: string | null; detail: string | null }) => [
    e.at,
    e.action,
    html`<span class="${e.outcome === 'success' ? 'ok' : 'missing'}">${e.outcome}</span>`,
    (e.targetType === 'user' && e.targetId ? names.get(e.targetId) : undefined) ?? e.targetId ?? e.actor,
    detailOf(e.detail, 'client') || detailOf(e.detail, 'nameId'),
    reasonOf(e.detail),
  ];
  const refused = await widget('Refused sign-ins', async () => table(['at', 'step', 'outcome', 'who', 'client / NameID', 'reason'], await load('refused'), 'none'));
  const recent = await widget('Recent sign-ins', async () => table(['at', 'step', 'outcome', 'who', 'client / NameID', 'reason'], await load(), 'none'));
  return html`<h2>Refusals</h2>${refused}<h2>All recent sign-in steps</h2>${recent}<p class="note">Search everything in <a href="/admin/audit">Audit</a>.</p>`;
}
