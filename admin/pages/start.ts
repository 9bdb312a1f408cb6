import { html, type Html } from '../html';
import type { ConsoleServices } from '../services';

/** The setup checklist: what is missing, with the exact setting or command, and the URLs the IdP needs. */
export async function startPage(svc: ConsoleServices, signedIn: boolean): Promise<Html> {
  const items = await svc.setup(!signedIn);
  const u = svc.urls;
  const missing = items.filter((i) => i.ok !== true).length;
  return html`<p class="lead">${missing === 0 ? 'Everything is configured.' : `${missing} of ${items.length} things still need attention.`}
${signedIn ? '' : ' This page shows only the setup checklist; once sign-in is configured, the console requires an administrator to sign in.'}</p>
<ul class="checklist">${items.map(
    (i) => html`<li class="${i.ok === true ? 'ok' : i.ok === false ? 'missing' : 'unknown'}" data-ok="${String(i.ok)}"><strong>${i.name}</strong> — ${i.detail}
${i.ok === true ? '' : html`<div class="fix">Fix: <code>${i.fix}</code></div>`}</li>`,
  )}</ul>
<h2>Register this server at your identity provider</h2>
<dl class="copy">
<dt>SP metadata URL</dt><dd><code id="sp-metadata-url">${u.spMetadata}</code> <button type="button" class="copy-button" data-copy="sp-metadata-url" hidden>Copy</button></dd>
<dt>SP entity ID</dt><dd><code id="sp-entity-id">${u.spEntityId}</code></dd>
<dt>ACS URL (HTTP-POST)</dt><dd><code id="acs-url">${u.acs}</code> <button type="button" class="copy-button" data-copy="acs-url" hidden>Copy</button></dd>
<dt>SCIM base URL</dt><dd><code id="scim-url">${u.scim}</code></dd>
</dl>
<p>Settings are environment variables (or a JSON file named by <code>CS_CONFIG_FILE</code>); see <code>docs/configuration.md</code>. Restart the server after changing them.</p>`;
}
