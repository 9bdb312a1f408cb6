import { html, type Html } from './html';

/** A line chart as inline SVG, drawn on the server: no script, no third-party library. */
export interface Series {
  name: string;
  points: { t: number; v: number }[];
}

const W = 640;
const H = 180;
const PAD = { l: 48, r: 12, t: 12, b: 24 };

export function lineChart(opts: { title: string; unit: string; series: Series[]; from: number; to: number }): Html {
  const all = opts.series.flatMap((s) => s.points);
  if (all.length === 0) return html`<figure class="chart" data-points="0"><figcaption>${opts.title}</figcaption><p class="empty">no data in this period yet</p></figure>`;
  const max = Math.max(...all.map((p) => p.v)) || 1;
  const span = Math.max(1, opts.to - opts.from);
  const x = (t: number) => PAD.l + ((t - opts.from) / span) * (W - PAD.l - PAD.r);
  const y = (v: number) => H - PAD.b - (v / max) * (H - PAD.t - PAD.b);
  const fmt = (n: number) => n.toFixed(1);
  const lines = opts.series.map((s, i) => {
    const pts = s.points.map((p) => `${fmt(x(p.t))},${fmt(y(p.v))}`).join(' ');
    return html`<g class="series s${i % 6}"><title>${s.name}</title><polyline points="${pts}"/>${s.points.map((p) => html`<circle class="point" cx="${fmt(x(p.t))}" cy="${fmt(y(p.v))}" r="2.5"><title>${s.name}: ${round(p.v)} ${opts.unit} at ${new Date(p.t).toISOString()}</title></circle>`)}</g>`;
  });
  // Spans over half a day name the date as well.
  const clock = (t: number) => new Date(t).toISOString().slice(span > 43_200_000 ? 5 : 11, span < 600_000 ? 19 : 16).replace('T', ' ');
  return html`<figure class="chart" data-points="${all.length}"><figcaption>${opts.title}</figcaption>
<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${opts.title}" xmlns="http://www.w3.org/2000/svg">
<line class="axis" x1="${PAD.l}" y1="${H - PAD.b}" x2="${W - PAD.r}" y2="${H - PAD.b}"/><line class="axis" x1="${PAD.l}" y1="${PAD.t}" x2="${PAD.l}" y2="${H - PAD.b}"/>
<text x="${PAD.l - 4}" y="${PAD.t + 4}" text-anchor="end">${round(max)}</text><text x="${PAD.l - 4}" y="${H - PAD.b}" text-anchor="end">0</text>
<text x="${PAD.l}" y="${H - 6}">${clock(opts.from)}</text><text x="${W - PAD.r}" y="${H - 6}" text-anchor="end">${clock(opts.to)} UTC</text>
${lines}</svg>
<ul class="legend">${opts.series.map((s, i) => html`<li class="s${i % 6}">${s.name} (${opts.unit})</li>`)}</ul></figure>`;
}

function round(v: number): string {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

