import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { parse, render } from './go-template';

export const CHART_DIR = join(__dirname, '..', '..', 'deploy', 'helm', 'crypto-server');

export type Manifest = { apiVersion: string; kind: string; metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> }; spec?: any; [k: string]: any };

export interface Rendered {
  values: Record<string, any>;
  manifests: Manifest[];
  notes: string;
  /** The one manifest of `kind` (named `name`, when several). */
  get: (kind: string, name?: string) => Manifest;
  find: (kind: string) => Manifest[];
}

export function defaultValues(): Record<string, any> {
  return parseYaml(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8'));
}

/** Values overrides merge into the defaults as `helm --set`/`-f` do: maps deep, everything else replaced. */
export function merge(base: any, over: any): any {
  if (over && typeof over === 'object' && !Array.isArray(over) && base && typeof base === 'object' && !Array.isArray(base)) {
    const out = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = merge(base[k], v);
    return out;
  }
  return over;
}

/** `helm template <release> deploy/helm/crypto-server` with the overrides given, parsed. */
export function renderChart(overrides: Record<string, any> = {}, release = { Name: 'cs', Namespace: 'keys' }): Rendered {
  const chartYaml = parseYaml(readFileSync(join(CHART_DIR, 'Chart.yaml'), 'utf8'));
  const values = merge(defaultValues(), overrides);
  const data = {
    Values: values,
    Release: { ...release, Service: 'Helm', IsInstall: true, IsUpgrade: false },
    Chart: { Name: chartYaml.name, Version: chartYaml.version, AppVersion: chartYaml.appVersion },
  };
  const dir = join(CHART_DIR, 'templates');
  const files = readdirSync(dir).sort();
  const defs = new Map();
  const parsed = files.map((f) => ({ f, nodes: parse(readFileSync(join(dir, f), 'utf8'), defs) }));
  const manifests: Manifest[] = [];
  let notes = '';
  for (const { f, nodes } of parsed) {
    if (f.startsWith('_')) continue;
    const text = render(nodes, data, { defs });
    if (f === 'NOTES.txt') {
      notes = text;
      continue;
    }
    for (const doc of parseAllDocuments(text)) {
      if (doc.errors.length) throw new Error(`${f}: rendered YAML does not parse: ${doc.errors[0]!.message}\n${text}`);
      const m = doc.toJS();
      if (m) manifests.push(m);
    }
  }
  const find = (kind: string) => manifests.filter((m) => m.kind === kind);
  const get = (kind: string, name?: string) => {
    const all = find(kind).filter((m) => name === undefined || m.metadata.name === name);
    if (all.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, rendered ${all.length}`);
    return all[0]!;
  };
  return { values, manifests, notes, get, find };
}
