/**
 * Which member ids a PATCH /Groups names, so the patch can be applied to just those members
 * (O(ops), not O(group)): `add`/`remove` of `members` with values, `members[value eq "…"]`.
 * Anything whose effect depends on the whole list — `replace` of members, `remove` of `members`
 * without a value, other member filters — asks for the whole list instead.
 */
type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export interface NamedMembers {
  /** Member ids the operations name. */
  ids: string[];
  /** True when the result depends on every current member. */
  all: boolean;
}

const MEMBERS = /^(?:urn:ietf:params:scim:schemas:core:2\.0:group:)?members$/i;
const MEMBER_FILTER = /^(?:urn:ietf:params:scim:schemas:core:2\.0:group:)?members\[\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*\](?:\.[A-Za-z$][\w$-]*)?$/i;
const ANY_MEMBERS = /^(?:urn:ietf:params:scim:schemas:core:2\.0:group:)?members\b/i;

function valuesOf(v: unknown): string[] {
  const list = Array.isArray(v) ? v : [v];
  return list.map((m) => (isObject(m) ? m.value : undefined)).filter((x): x is string => typeof x === 'string' && x !== '');
}

export function membersNamed(operations: unknown): NamedMembers {
  const ids: string[] = [];
  let all = false;
  if (!Array.isArray(operations)) return { ids, all };
  for (const raw of operations) {
    if (!isObject(raw)) continue;
    const op = typeof raw.op === 'string' ? raw.op.toLowerCase() : '';
    const path = typeof raw.path === 'string' ? raw.path.trim() : undefined;
    if (path === undefined || path === '') {
      if (!isObject(raw.value)) continue;
      const key = Object.keys(raw.value).find((k) => MEMBERS.test(k));
      if (key === undefined) continue;
      if (op === 'replace') all = true;
      ids.push(...valuesOf(raw.value[key]));
    } else if (MEMBERS.test(path)) {
      if (op === 'replace' || (op === 'remove' && (raw.value === undefined || raw.value === null))) all = true;
      ids.push(...valuesOf(raw.value));
    } else if (MEMBER_FILTER.test(path)) {
      ids.push(JSON.parse(`"${MEMBER_FILTER.exec(path)![1]}"`) as string);
      if (op === 'replace') ids.push(...valuesOf(raw.value));
    } else if (ANY_MEMBERS.test(path)) {
      all = true;
    }
  }
  return { ids: [...new Set(ids)], all };
}
