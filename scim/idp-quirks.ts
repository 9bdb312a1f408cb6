/**
 * Identity providers do not all follow RFC 7644. These functions turn what Microsoft Entra ID
 * (default mode and with the aadOptscim062020 flag) and Okta really send into requests scimmy's
 * PatchOp and schemas accept, and apply a PatchOp one operation at a time. Each rule names the
 * provider behaviour it exists for; see docs/scim.md, test/scim/idp-quirks.test.ts and the
 * vendor-body tests test/scim/entra-shapes.test.ts and test/scim/okta-shapes.test.ts.
 */
import { ENTERPRISE_USER_SCHEMA, GROUP_KEYS_SCHEMA, PATCH_OP_SCHEMA, SCIMMY, USER_KEYS_SCHEMA } from './schemas';

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
/**
 * Schema URNs clients declare that carry nothing we store: dropped from `schemas` (with any
 * attributes under them). Entra's group create declares its ADSCIM marker; Microsoft's tutorial
 * prints the enterprise URN without its last colon in its provisioning example.
 */
const MARKER_SCHEMAS = new Set(['http://schemas.microsoft.com/2006/11/resourcemanagement/adscim/2.0/group', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0user']);

/** RFC 7643 §2.5: null is "unassigned" — the same as leaving the attribute out (Entra sends `"emails": null`). */
function withoutNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.filter((v) => v !== null).map(withoutNulls);
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = withoutNulls(v);
  return out;
}

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

const lookupName = (definition: SCIMMY.Types.SchemaDefinition, path: string): string | undefined => {
  try {
    return definition.attribute(path).name;
  } catch {
    return undefined;
  }
};

/**
 * Spells a PATCH path's attribute names as the schema does: RFC 7643 §2.1 makes them
 * case-insensitive, scimmy's PATCH traversal is not (Entra sends `Title`, `Name.GivenName`,
 * `urn:…:enterprise:2.0:User:Department`). A bare extension attribute (`manager`, as in Entra's
 * tutorial) gets its schema URN. The core schema's URN prefix is dropped. Unknown names are left
 * for scimmy to refuse with invalidPath.
 */
export function canonicalPath(path: string, definition: SCIMMY.Types.SchemaDefinition, extensionIds: readonly string[]): string {
  let prefix = '';
  let rest = path;
  const lower = path.toLowerCase();
  const urn = [definition.id, ...extensionIds].find((id) => lower.startsWith(`${id.toLowerCase()}:`));
  if (urn) {
    prefix = urn === definition.id ? '' : `${urn}:`;
    rest = path.slice(urn.length + 1);
  }
  const m = /^([^.[\]]+)(\[.*\])?(?:\.([^.[\]]+))?$/.exec(rest);
  if (!m) return path;
  const [, attr, filter = '', sub] = m;
  if (!urn && lookupName(definition, attr) === undefined) {
    const owner = extensionIds.find((id) => lookupName(definition, `${id}:${attr}`) !== undefined);
    if (owner) prefix = `${owner}:`;
  }
  const name = lookupName(definition, `${prefix}${attr}`) ?? attr;
  if (sub === undefined) return `${prefix}${name}${filter}`;
  return `${prefix}${name}${filter}.${lookupName(definition, `${prefix}${name}.${sub}`) ?? sub}`;
}

/** Sub-attribute names inside a complex value (`{"GivenName": …}` for `name`), spelled as the schema does. */
function canonicalValue(value: unknown, path: string, definition: SCIMMY.Types.SchemaDefinition): unknown {
  if (Array.isArray(value)) return value.map((v) => canonicalValue(v, path, definition));
  if (!isObject(value)) return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) out[lookupName(definition, `${path.replace(/\[.*\]/, '')}.${k}`) ?? k] = v;
  return out;
}

/** Entra's manager as `[{"$ref": …, "value": id}]` (tutorial, Example 5) or a bare id: `{ value: id }`. */
function managerValue(value: unknown): unknown {
  const v = Array.isArray(value) && value.length === 1 ? value[0] : value;
  if (isObject(v) && typeof v.value === 'string') return { value: v.value, ...(typeof v.displayName === 'string' ? { displayName: v.displayName } : {}) };
  return fixManager(v);
}

/** One raw operation of a PatchOp request, as the operations scimmy should apply, given the resource as it is now. */
function normaliseOperation(raw: unknown, current: Json, extensionIds: readonly string[], definition?: SCIMMY.Types.SchemaDefinition): PatchOperation[] {
  if (!isObject(raw)) return [raw as PatchOperation];
  // Entra ID (default mode) capitalises ops: "Add", "Replace", "Remove".
  const op = typeof raw.op === 'string' ? raw.op.toLowerCase() : (raw.op as string);
  if (raw.path !== undefined && typeof raw.path !== 'string') {
    throw new SCIMMY.Types.Error(400, 'invalidPath', `"path" must be a string, not ${raw.path === null ? 'null' : typeof raw.path}`);
  }
  const base: PatchOperation = { op, path: raw.path === '' ? undefined : raw.path, value: raw.value };
  if (base.path === undefined) delete base.path;
  const result: PatchOperation[] = [];
  for (const expanded of expandPathless(base, extensionIds)) {
    let o = expanded;
    if (o.path !== undefined) {
      if (definition) {
        const path = canonicalPath(o.path, definition, extensionIds);
        o = { ...o, path, ...(o.op !== 'remove' ? { value: canonicalValue(o.value, path, definition) } : {}) };
      }
      const path = o.path as string;
      if (path.toLowerCase() === MANAGER_PATH && o.op !== 'remove') o = { ...o, value: managerValue(o.value) };
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
  return result;
}

/** Normalises a PatchOp request's operations against one snapshot. `current` is the resource as we would return it. */
export function normalisePatchOperations(operations: unknown, current: Json, extensionIds: readonly string[], definition?: SCIMMY.Types.SchemaDefinition): PatchOperation[] {
  if (!Array.isArray(operations)) return operations as PatchOperation[]; // scimmy rejects it with invalidValue
  return operations.flatMap((raw) => normaliseOperation(raw, current, extensionIds, definition));
}

const plainJson = (v: unknown): Json => JSON.parse(JSON.stringify(v)) as Json;
const withoutMeta = (v: Json) => JSON.stringify({ ...v, meta: undefined });

/**
 * RFC 7644 §3.5.2: setting `primary` on one value sets it false on the others. After an
 * operation, a value that has just become primary wins over those that already were.
 */
function singlePrimary(after: Json, before: Json): boolean {
  let changed = false;
  for (const [key, list] of Object.entries(after)) {
    if (!Array.isArray(list)) continue;
    const primaries = list.filter((v): v is Json => isObject(v) && v.primary === true);
    if (primaries.length < 2) continue;
    const was = new Set(
      (Array.isArray(before[key]) ? (before[key] as unknown[]) : []).filter((v): v is Json => isObject(v) && v.primary === true).map((v) => JSON.stringify(v)),
    );
    const fresh = primaries.filter((v) => !was.has(JSON.stringify(v)));
    const keep = (fresh.length ? fresh : primaries).at(-1);
    for (const v of primaries) if (v !== keep) v.primary = false;
    changed = true;
  }
  return changed;
}

/**
 * Applies a PatchOp request: scimmy validates the message, then each operation is normalised
 * against the resource as changed by the operations before it and applied in order (Entra sends
 * `addresses[type eq "work"].streetAddress`, `.locality`, … in one request: one address, not
 * six). `guard` may refuse a normalised operation. Returns the patched resource, or undefined
 * when nothing changed.
 */
export async function applyPatch<T extends SCIMMY.Types.Schema>(
  resource: T,
  body: Json,
  extensionIds: readonly string[],
  guard?: (op: PatchOperation) => void,
): Promise<T | undefined> {
  const Resource = resource.constructor as (new (data: Json, direction?: string) => T) & { definition: SCIMMY.Types.SchemaDefinition };
  if (Array.isArray(body.Operations)) {
    for (const raw of body.Operations) {
      if (isObject(raw) && raw.path !== undefined && typeof raw.path !== 'string') {
        throw new SCIMMY.Types.Error(400, 'invalidPath', `"path" must be a string, not ${raw.path === null ? 'null' : typeof raw.path}`);
      }
    }
  }
  const message = new SCIMMY.Messages.PatchOp(body as never); // schemas, Operations, op names, value/path presence
  const original = withoutMeta(plainJson(resource));
  let state = resource;
  for (const [index, raw] of (message.Operations as unknown[]).entries()) {
    for (const op of normaliseOperation(raw, plainJson(state), extensionIds, Resource.definition)) {
      guard?.(op);
      const before = plainJson(state);
      let next: T | undefined;
      try {
        next = (await new SCIMMY.Messages.PatchOp({ schemas: [PATCH_OP_SCHEMA], Operations: [op] } as never).apply(state)) as T | undefined;
      } catch (err) {
        if (err instanceof SCIMMY.Types.Error) err.message = err.message.replace(/of operation 1 /, `of operation ${index + 1} `);
        throw err;
      }
      if (!next) continue;
      const json = plainJson(next);
      state = singlePrimary(json, before) ? new Resource(json, 'out') : next;
    }
  }
  return withoutMeta(plainJson(state)) === original ? undefined : state;
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
  for (const [key, value] of Object.entries(withoutNulls(body) as Json)) {
    const lower = key.toLowerCase();
    if (IGNORED_ON_INPUT.has(lower) || MARKER_SCHEMAS.has(lower) || READ_ONLY_EXTENSIONS.some((id) => lower.startsWith(`${id}:`))) continue;
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
      if (typeof s !== 'string' || !(declared.has(s.toLowerCase()) || MARKER_SCHEMAS.has(s.toLowerCase()))) throw new UnknownAttributeError(`unknown schema "${String(s)}"`);
    }
    out.schemas = (out.schemas as string[]).filter((s) => !READ_ONLY_EXTENSIONS.includes(s.toLowerCase()) && !MARKER_SCHEMAS.has(s.toLowerCase()));
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
