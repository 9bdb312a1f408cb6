/**
 * `attributes` / `excludedAttributes` (RFC 7644 §3.4.2.5) applied to a rendered resource.
 * Done here rather than by scimmy because scimmy's attribute filter fails on extension paths
 * ("urn:...:User:department"). `id` and `schemas` are always returned.
 */
type Json = Record<string, unknown>;

export interface AttributeSelection {
  attributes?: string[];
  excluded?: string[];
}

const CORE_PREFIX = /^urn:ietf:params:scim:schemas:core:2\.0:(user|group):/i;
const ALWAYS = new Set(['id', 'schemas']);

/** Splits "urn:...:Ext:attr.sub" into ["urn:...:Ext", "attr", "sub"] given the resource's extension keys. */
function splitPath(path: string, resource: Json): string[] {
  const p = path.trim().replace(CORE_PREFIX, '');
  const ext = Object.keys(resource).find((k) => k.startsWith('urn:') && (p.toLowerCase() === k.toLowerCase() || p.toLowerCase().startsWith(`${k.toLowerCase()}:`)));
  if (ext) {
    const rest = p.slice(ext.length + 1);
    return rest ? [ext, ...rest.split('.')] : [ext];
  }
  return p.split('.');
}

const findKey = (o: Json, name: string) => Object.keys(o).find((k) => k.toLowerCase() === name.toLowerCase());

function pick(source: unknown, parts: string[]): unknown {
  if (parts.length === 0 || source === undefined) return source;
  if (Array.isArray(source)) {
    const items = source.map((s) => pick(s, parts)).filter((v) => v !== undefined && !(typeof v === 'object' && v !== null && Object.keys(v).length === 0));
    return items.length ? items : undefined;
  }
  if (typeof source !== 'object' || source === null) return undefined;
  const key = findKey(source as Json, parts[0]);
  if (!key) return undefined;
  const v = pick((source as Json)[key], parts.slice(1));
  return v === undefined ? undefined : { [key]: v };
}

function merge(target: Json, add: Json): void {
  for (const [k, v] of Object.entries(add)) {
    if (Array.isArray(v) && Array.isArray(target[k])) {
      const t = target[k] as unknown[];
      v.forEach((item, i) => (typeof item === 'object' && item && typeof t[i] === 'object' && t[i] ? merge(t[i] as Json, item as Json) : (t[i] = item)));
    } else if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object' && !Array.isArray(target[k])) {
      merge(target[k] as Json, v as Json);
    } else {
      target[k] = v;
    }
  }
}

function remove(target: unknown, parts: string[]): void {
  if (Array.isArray(target)) {
    for (const t of target) remove(t, parts);
    return;
  }
  if (typeof target !== 'object' || target === null || parts.length === 0) return;
  const key = findKey(target as Json, parts[0]);
  if (!key) return;
  if (parts.length === 1) delete (target as Json)[key];
  else remove((target as Json)[key], parts.slice(1));
}

export function selectAttributes(resource: Json, sel: AttributeSelection): Json {
  if (sel.attributes?.length) {
    const out: Json = {};
    for (const k of Object.keys(resource)) if (ALWAYS.has(k)) out[k] = resource[k];
    for (const path of sel.attributes) {
      const picked = pick(resource, splitPath(path, resource));
      if (picked && typeof picked === 'object') merge(out, picked as Json);
    }
    return out;
  }
  if (sel.excluded?.length) {
    const out = JSON.parse(JSON.stringify(resource)) as Json;
    for (const path of sel.excluded) {
      const parts = splitPath(path, resource);
      if (parts.length === 1 && ALWAYS.has(parts[0])) continue;
      remove(out, parts);
    }
    return out;
  }
  return resource;
}
