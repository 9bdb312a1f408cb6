/**
 * Input limits for SCIM resources, checked on the coerced resource before any write, so bad input
 * is a 400 naming the attribute rather than a database error (PostgreSQL refuses NUL in text,
 * PostgreSQL/MariaDB refuse strings wider than their column, MariaDB's TEXT holds 65,535 bytes).
 * The numbers live in schemas.ts, which also advertises them in /Schemas.
 */
import { ScimError } from './errors';
import { COLUMN_LIMITS, LIMITS } from './schemas';

type Json = Record<string, unknown>;

/** Characters as the databases count them (code points, not UTF-16 units). */
const length = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const refuse = (detail: string) => new ScimError(400, 'invalidValue', detail);

/** `path` names the attribute as an admin would write it: "name.givenName", "urn:…:User:manager.value". */
function check(kind: 'User' | 'Group', value: unknown, path: string, depth = 0): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) throw refuse(`attribute "${path}" contains a NUL character`);
    const max = COLUMN_LIMITS[kind][path.toLowerCase()] ?? LIMITS.maxStringLength;
    if (value.length > max && length(value) > max) throw refuse(`attribute "${path}" is longer than ${max} characters`);
    return;
  }
  if (Array.isArray(value)) {
    if (path.toLowerCase() !== 'members' && value.length > LIMITS.maxValues) throw refuse(`attribute "${path}" has ${value.length} values; at most ${LIMITS.maxValues} are accepted`);
    if (value.filter((v) => (v as Json | null)?.primary === true).length > 1) throw refuse(`at most one value of "${path}" may be primary (RFC 7643 §2.4)`);
    for (const v of value) check(kind, v, path, depth);
    return;
  }
  if (value !== null && typeof value === 'object') {
    // Top-level keys that are extension URNs: their attributes are named "urn:…:attr".
    const child = (k: string) => (depth === 0 ? k : depth === 1 && path.startsWith('urn:') ? `${path}:${k}` : `${path}.${k}`);
    for (const [k, v] of Object.entries(value)) check(kind, v, child(k), depth + 1);
  }
}

/**
 * Throws 400 invalidValue naming the first attribute over a limit: NUL characters in any string
 * (nested ones included), column widths, values per multi-valued attribute, at most one primary,
 * and the size of the stored attribute JSON.
 */
export function checkLimits(kind: 'User' | 'Group', resource: Json, stored: Json = resource): void {
  check(kind, resource, '');
  const bytes = Buffer.byteLength(JSON.stringify(stored), 'utf8');
  if (bytes > LIMITS.maxAttributeBytes) {
    throw refuse(`the ${kind.toLowerCase()}'s attributes take ${bytes} bytes; at most ${LIMITS.maxAttributeBytes} are stored (fewer or shorter values)`);
  }
}

function refuseNul(value: unknown, path: string): void {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) throw refuse(`attribute "${path || 'value'}" contains a NUL character`);
  } else if (Array.isArray(value)) {
    for (const v of value) refuseNul(v, path);
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) refuseNul(v, path ? `${path}.${k}` : k);
  }
}

/**
 * NUL characters anywhere in a PatchOp's paths or values, refused before the request touches
 * the database: some operations (group membership) reach a query before the patched resource is
 * coerced and checked as a whole.
 */
export function checkPatchStrings(body: unknown): void {
  const operations = (body as Json | null)?.Operations;
  if (!Array.isArray(operations)) return;
  operations.forEach((op: unknown, i) => {
    if (op === null || typeof op !== 'object') return;
    const { path, value } = op as Json;
    if (typeof path === 'string' && path.includes('\u0000')) throw new ScimError(400, 'invalidPath', `the path of operation ${i + 1} contains a NUL character`);
    refuseNul(value, typeof path === 'string' ? path.replace(/\[.*?\]/g, '') : '');
  });
}
