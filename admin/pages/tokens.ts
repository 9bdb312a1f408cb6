import { csrfField, html, table, type Html } from '../html';
import type { ConsoleServices } from '../services';
import { TOKEN_SCOPES } from '../../scim/tokens';

/** Token list with revoke buttons and the create form; a just-created token is shown once. */
export async function tokensPage(svc: ConsoleServices, csrf: string, created?: { token: string; name: string; scope: string }, error?: string, notice?: string): Promise<Html> {
  const rows = await svc.tokens.list();
  const now = new Date().toISOString();
  const state = (t: (typeof rows)[number]) => (t.revoked_at ? `revoked ${t.revoked_at}` : t.expires_at && t.expires_at <= now ? `expired ${t.expires_at}` : 'active');
  return html`${created ? html`<div class="created" role="status"><p>New ${created.scope} token "${created.name}" — copy it now, it is shown only once:</p><code id="new-token">${created.token}</code></div>` : ''}
${error ? html`<p class="error" role="alert">${error}</p>` : ''}
${notice ? html`<p class="note" id="already-shown" role="status">${notice}</p>` : ''}
${table(
  ['name', 'id', 'scope', 'state', 'created', 'last used', 'only from', ''],
  rows.map((t) => [
    t.name,
    t.id,
    t.scope,
    state(t),
    t.created_at,
    t.last_used_at ?? 'never',
    t.allowed_addresses ?? '',
    state(t) === 'active' ? html`<form method="post" action="/admin/tokens/${t.id}/revoke">${csrfField(csrf)}<button type="submit" class="danger" data-revoke="${t.id}">Revoke</button></form>` : '',
  ]),
  'no tokens',
)}
<h2>Create a token</h2>
<form method="post" action="/admin/tokens" class="create">${csrfField(csrf)}
<label>Name<input name="name" required maxlength="200" placeholder="e.g. Entra ID"></label>
<label>Scope<select name="scope">${TOKEN_SCOPES.map((s) => html`<option>${s}</option>`)}</select></label>
<label>Expires after (days, optional)<input name="expiresDays" inputmode="numeric" pattern="[0-9]*"></label>
<label>Only from (IPs or CIDR ranges, optional)<input name="allowFrom" placeholder="10.0.0.0/8"></label>
<button type="submit">Create</button></form>
<p class="note">The same as <code>crypto-server token create|list|revoke</code>.</p>`;
}
