/** HTML building blocks for the console's server-rendered pages: everything interpolated is escaped. */

export class Html {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

export function escapeHtml(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Tagged template: interpolated values are escaped unless they are Html (or arrays of Html). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0];
  values.forEach((v, i) => {
    out += render(v) + strings[i + 1];
  });
  return new Html(out);
}

function render(v: unknown): string {
  if (v instanceof Html) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(v);
}

export const NAV = [
  ['/admin/', 'Start'],
  ['/admin/status', 'Status'],
  ['/admin/provisioning', 'Provisioning'],
  ['/admin/sign-ins', 'Sign-ins'],
  ['/admin/audit', 'Audit'],
  ['/admin/tokens', 'Tokens'],
] as const;

export interface PageFrame {
  title: string;
  /** The nav entry to highlight (its path). */
  path?: string;
  /** The signed-in administrator: shows the nav and the sign-out form. */
  session?: { who: string; csrf: string };
}

export function page(frame: PageFrame, body: Html): string {
  const nav = frame.session
    ? html`<nav>${NAV.map(([href, label]) => html`<a href="${href}"${frame.path === href ? new Html(' aria-current="page"') : ''}>${label}</a>`)}</nav>
<form method="post" action="/admin/logout" class="signout"><input type="hidden" name="csrf" value="${frame.session.csrf}"><span>${frame.session.who}</span> <button type="submit">Sign out</button></form>`
    : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(frame.title)} · Crypto Server</title>
<link rel="stylesheet" href="/admin/assets/console.css"><script src="/admin/assets/console.js" defer></script></head>
<body><header><a class="brand" href="/admin/">Crypto Server</a>${nav}</header>
<main><h1>${escapeHtml(frame.title)}</h1>
${body.value}
</main></body></html>`;
}

/** A widget whose data failed: the page still renders, the box says so. */
export function unavailable(what: string): Html {
  return html`<p class="unavailable" data-widget-state="unavailable">${what}: unavailable</p>`;
}

/** Renders a widget's loader; a failure becomes `unavailable` instead of failing the page. */
export async function widget(what: string, load: () => Promise<Html>): Promise<Html> {
  try {
    return await load();
  } catch {
    return unavailable(what);
  }
}

export function table(headers: string[], rows: unknown[][], empty = 'none'): Html {
  if (rows.length === 0) return html`<p class="empty">${empty}</p>`;
  return html`<table><thead><tr>${headers.map((h) => html`<th>${h}</th>`)}</tr></thead><tbody>${rows.map((r) => html`<tr>${r.map((c) => html`<td>${c}</td>`)}</tr>`)}</tbody></table>`;
}

export function csrfField(csrf: string): Html {
  return html`<input type="hidden" name="csrf" value="${csrf}">`;
}
