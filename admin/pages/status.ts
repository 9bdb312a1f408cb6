import { html, table, widget, type Html } from '../html';
import { packageVersion } from '../../server/instances/version';
import { processLabel } from '../../server/instances/summary';
import { lineChart } from '../svg-chart';
import type { ConsoleServices } from '../services';

const HOUR_MS = 3_600_000;

/** Database and KEKs with health, KMS latency over the last hour, signing key age, version, workers. */
export async function statusPage(svc: ConsoleServices): Promise<Html> {
  const health = await widget('Health', async () => {
    const [db, keks] = await Promise.all([svc.databaseHealth(), svc.kekHealth()]);
    const rows = [db, ...keks].map((c) => [c.name, html`<span class="${c.ok ? 'ok' : 'missing'}">${c.ok ? 'ok' : 'failing'}</span>`, `${c.ms} ms`, c.error ?? '']);
    return html`<h2>Health</h2>${table(['component', 'state', 'answered in', 'error'], rows)}`;
  });
  const chart = await widget('KMS latency', async () => {
    await svc.latency.sample();
    const now = Date.now();
    const series = svc.latency.series(now);
    // A process younger than an hour draws from its first sample, so early points do not pile up at the edge.
    const first = Math.min(...series.flatMap((s) => s.points.map((p) => p.t)));
    const from = Number.isFinite(first) ? Math.max(now - HOUR_MS, first - Math.max(1_000, (now - first) / 10)) : now - HOUR_MS;
    return html`<h2>KMS latency, last hour</h2>${lineChart({ title: from > now - HOUR_MS ? 'Mean KMS call latency (since this process started)' : 'Mean KMS call latency', unit: 'ms', series, from, to: now })}
<p class="note">From this process's KMS call metrics (sampled every 10 s) and the console's KEK checks.</p>`;
  });
  const signing = await widget('Signing key', async () => {
    const key = await svc.queries.activeSigningKey();
    if (!key) return html`<h2>Access-token signing key</h2><p>none yet (created at the first sign-in)</p>`;
    const days = Math.floor((Date.now() - Date.parse(key.createdAt)) / 86_400_000);
    return html`<h2>Access-token signing key</h2><p>kid <code>${key.kid}</code>, created ${key.createdAt} (${days} days ago); rotate with <code>crypto-server signing-keys rotate</code></p>`;
  });
  const cfg = svc.deps.config;
  const server = await widget('Server', async () =>
    table(['', 'this process'], [
      ['version', packageVersion()],
      ['database', svc.deps.store.driver],
      ['workers in this replica', cfg.server.workers === undefined ? 'one per CPU (CS_WORKERS unset)' : String(cfg.server.workers)],
      ['process uptime', `${Math.round(process.uptime() / 60)} min`],
    ]),
  );
  const instances = await widget('Instances', async () => {
    const s = await svc.instances();
    const mismatch = s.versions.length > 1;
    const rows = s.recent.map((r) => [r.hostname, processLabel(r), mismatch ? html`<span class="unknown">${r.version}</span>` : r.version, r.started_at, r.seen_at]);
    return html`<h2>Instances seen in the last 5 minutes</h2>
${mismatch ? html`<p class="unknown" id="version-mismatch">Versions differ across instances (${s.versions.join(', ')}): a rolling upgrade in progress, or a replica left behind.</p>` : ''}
${table(['host', 'process', 'version', 'up since', 'last seen'], rows, 'no instance seen in the last 5 minutes')}
<p class="note">${s.recent.length} seen recently; ${s.notSeenRecently} more seen in the last 24 h but not in the last 5 minutes (stopped without a clean shutdown, or crashed). Each worker of each replica records itself every 30 s; also <code>crypto-server instances</code>.</p>`;
  });
  return html`${health}${chart}${signing}<h2>Server</h2>${server}${instances}`;
}
