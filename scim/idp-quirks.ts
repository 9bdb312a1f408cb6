/**
 * Identity providers do not all follow RFC 7644. These pure functions turn what Microsoft Entra ID
 * (default mode and with the aadOptscim062020 flag) and Okta really send into requests scimmy's
 * PatchOp and schemas accept. Each rule names the provider behaviour it exists for; see
 * docs/scim.md and the request-shape tests in test/scim/idp-quirks.test.ts.
 */
import { ENTERPRISE_USER_SCHEMA, GROUP_KEYS_SCHEMA, SCIMMY, USER_KEYS_SCHEMA } from './schemas';

export interface PatchOperation {
  op: string;
  path?: string;
  value?: unknown;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Boolean attributes of the core User and Group schemas (by name, at any depth). */
const BOOLEAN_ATTRIBUTES = new Set(['active', 'primary']);
const MANAGER_PATH = `${ENTERPRISE_USER_SCHEMA}:manager`.toLowerCase();
/** Attributes a client may send but which are ours to set: silently ignored (Okta PUTs the whole object back). */
const IGNORED_ON_INPUT = new Set(['id', 'meta', 'groups', 'password', USER_KEYS_SCHEMA.toLowerCase(), GROUP_KEYS_SCHEMA.toLowerCase()]);
const READ_ONLY_EXTENSIONS = [USER_KEYS_SCHEMA.toLowerCase(), GROUP_KEYS_SCHEMA.toLowerCase()];

/** Entra ID (default mode) sends booleans as the strings "True"/"False". */
function toBoolean(v: unknown): unknown {
  if (typeof v === 'string' && /^(true|false)$/i.test(v)) return v.toLowerCase() === 'true';
  return v;
}

function fixBooleans(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fixBooleans);
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    const name = k.toLowerCase().split(/[.:]/).pop() ?? '';
    out[k] = BOOLEAN_ATTRIBUTES.has(name) ? toBoolean(v) : fixBooleans(v);
  }
  return out;
}

/** Entra ID sends the enterprise `manager` as a bare id string instead of { value: id }. */
function fixManager(value: unknown): unknown {
  if (typeof value === 'string') return value === '' ? undefined : { value };
  return value;
}

function lastSegment(path: string): string {
  return path.toLowerCase().replace(/\[.*?\]/g, '').split(/[.:]/).pop() ?? '';
}

/**
 * Entra ID sends `Add` (or `Replace`) on `emails[type eq "work"].value` when the user has no work
 * email yet; RFC 7644 would answer noTarget. We add the element the filter describes instead.
 */
function addMissingFilteredValue(op: PatchOperation, current: Json): PatchOperation {
  const m = /^([A-Za-z][\w$-]*)\[(.+)\]\.([A-Za-z][\w$-]*)$/.exec(op.path ?? '');
  if (!m || (op.op !== 'add' && op.op !== 'replace')) return op;
  const [, attr, filterText, sub] = m;
  const key = Object.keys(current).find((k) => k.toLowerCase() === attr.toLowerCase());
  const existing = key && Array.isArray(current[key]) ? (current[key] as Json[]) : [];
  let filter: SCIMMY.Types.Filter;
  try {
    filter = new SCIMMY.Types.Filter(filterText);
  } catch {
    return op; // scimmy reports the bad filter itself
  }
  if (filter.match(existing).length > 0) return op;
  // Only a conjunction of `sub eq "literal"` comparisons describes a value we can create.
  if (filter.length !== 1) return op;
  const element: Json = {};
  for (const [k, cmp] of Object.entries(filter[0] as Json)) {
    if (!Array.isArray(cmp) || cmp[0] !== 'eq' || cmp.length !== 2) return op;
    element[k] = cmp[1];
  }
  if (op.value === undefined || op.value === null || op.value === '') return { op: 'add', path: attr, value: [] }; // nothing to add
  element[sub] = op.value;
  if (existing.length === 0 && ['emails', 'phonenumbers', 'addresses'].includes(attr.toLowerCase())) element.primary = true;
  return { op: 'add', path: attr, value: [element] };
}

/**
 * Expands a pathless add/replace (`{"op":"replace","value":{...}}`) into one operation per key.
 * Entra (aadOptscim062020) uses dotted and URN-prefixed keys ("name.givenName",
 * "urn:...:enterprise:2.0:User:department", even `emails[type eq "work"].value`); Okta sends
 * `{"active": false}` and, for group push, `{"id": ..., "displayName": ...}`.
 */
function expandPathless(op: PatchOperation, extensionIds: readonly string[]): PatchOperation[] {
  if (op.path !== undefined || !isObject(op.value) || op.op === 'remove') return [op];
  const out: PatchOperation[] = [];
  for (const [key, value] of Object.entries(op.value)) {
    const lower = key.toLowerCase();
    if (lower === 'id' || lower === 'schemas' || lower === 'meta') continue;
    const ext = extensionIds.find((id) => id.toLowerCase() === lower);
    if (ext && isObject(value)) {
      for (const [sub, v] of Object.entries(value)) out.push({ op: op.op, path: `${ext}:${sub}`, value: v });
    } else {
      out.push({ op: op.op, path: key, value });
    }
  }
  return out;
}

/** Normalises a PatchOp request's operations. `current` is the resource as we would return it. */
export function normalisePatchOperations(operations: unknown, current: Json, extensionIds: readonly string[]): PatchOperation[] {
  if (!Array.isArray(operations)) return operations as PatchOperation[]; // scimmy rejects it with invalidValue
  const result: PatchOperation[] = [];
  for (const raw of operations) {
    if (!isObject(raw)) {
      result.push(raw as PatchOperation);
      continue;
    }
    // Entra ID (default mode) capitalises ops: "Add", "Replace", "Remove".
    const op = typeof raw.op === 'string' ? raw.op.toLowerCase() : (raw.op as string);
    const base: PatchOperation = { op, path: typeof raw.path === 'string' && raw.path !== '' ? raw.path : (raw.path as string | undefined), value: raw.value };
    if (base.path === undefined) delete base.path;
    for (const expanded of expandPathless(base, extensionIds)) {
      let o = expanded;
      if (o.path !== undefined) {
        const path = o.path;
        if (path.toLowerCase() === MANAGER_PATH && o.op !== 'remove') o = { ...o, value: fixManager(o.value) };
        if (BOOLEAN_ATTRIBUTES.has(lastSegment(path))) o = { ...o, value: toBoolean(o.value) };
        else o = { ...o, value: fixBooleans(o.value) };
        if (o.op !== 'remove') o = addMissingFilteredValue(o, current);
        // Rule for read-only extension paths is left to scimmy: it answers 400 mutability.
      } else {
        o = { ...o, value: fixBooleans(o.value) };
      }
      if (o.op === 'add' && Array.isArray(o.value) && o.value.length === 0) continue;
      result.push(o);
    }
  }
  return result;
}

export class UnknownAttributeError extends Error {}

/**
 * Normalises a POST/PUT body: strips what clients may send but we own (id, meta, groups, password,
 * our read-only key extensions — Okta PUTs full objects back, Okta creates carry `password` and
 * `groups: []`), fixes Entra's string booleans and bare manager ids, and rejects attributes no
 * declared schema defines (scimmy would silently drop them).
 */
export function normaliseResourceBody(body: Json, definition: SCIMMY.Types.SchemaDefinition): Json {
  const attributes = definition.attributes as unknown[];
  const extensions = attributes.filter((a): a is SCIMMY.Types.SchemaDefinition => a instanceof SCIMMY.Types.SchemaDefinition);
  const known = new Set([
    ...attributes.filter((a): a is SCIMMY.Types.Attribute => a instanceof SCIMMY.Types.Attribute).map((a) => a.name.toLowerCase()),
    ...extensions.map((e) => e.id.toLowerCase()),
  ]);
  const out: Json = {};
  for (const [key, value] of Object.entries(body)) {
    const lower = key.toLowerCase();
    if (IGNORED_ON_INPUT.has(lower) || READ_ONLY_EXTENSIONS.some((id) => lower.startsWith(`${id}:`))) continue;
    if (lower === 'schemas') {
      out[key] = value;
      continue;
    }
    const urnPrefixed = extensions.find((e) => lower.startsWith(`${e.id.toLowerCase()}:`));
    if (!known.has(lower) && !urnPrefixed) {
      throw new UnknownAttributeError(
        lower.startsWith('urn:')
          ? `unknown attribute "${key}": this extension schema is not supported; remove the mapping in the identity provider (supported schemas: /scim/v2/Schemas)`
          : `unknown attribute "${key}"`,
      );
    }
    out[key] = value;
  }
  if (Array.isArray(out.schemas)) {
    const declared = new Set([definition.id, ...extensions.map((e) => e.id)].map((s) => s.toLowerCase()));
    for (const s of out.schemas) {
      if (typeof s !== 'string' || !declared.has(s.toLowerCase())) throw new UnknownAttributeError(`unknown schema "${String(s)}"`);
    }
    out.schemas = (out.schemas as string[]).filter((s) => !READ_ONLY_EXTENSIONS.includes(s.toLowerCase()));
  }
  const fixed = fixBooleans(out) as Json;
  const entKey = Object.keys(fixed).find((k) => k.toLowerCase() === ENTERPRISE_USER_SCHEMA.toLowerCase());
  if (entKey && isObject(fixed[entKey])) {
    const ent = { ...(fixed[entKey] as Json) };
    const mKey = Object.keys(ent).find((k) => k.toLowerCase() === 'manager');
    if (mKey) ent[mKey] = fixManager(ent[mKey]);
    fixed[entKey] = ent;
  }
  const mgrKey = Object.keys(fixed).find((k) => k.toLowerCase() === MANAGER_PATH);
  if (mgrKey) fixed[mgrKey] = fixManager(fixed[mgrKey]);
  return fixed;
}
