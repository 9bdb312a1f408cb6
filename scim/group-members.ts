/**
 * Membership operations of a PATCH /Groups, applied here rather than by scimmy so that a PATCH
 * touches only the members it names (O(ops), not O(group)), and so that a removal matches on
 * `value` alone whatever else the IdP puts beside it (Entra sends `"$ref": null`). Supported, as
 * Entra ID and Okta send them: `add`/`remove`/`replace` of `members` (pathless too), and
 * `members[value eq "…"]`. Every other operation goes to scimmy with the rest of the resource.
 */
import { ScimError } from './errors';

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

const PREFIX = '(?:urn:ietf:params:scim:schemas:core:2\\.0:group:)?';
const MEMBERS = new RegExp(`^${PREFIX}members$`, 'i');
const MEMBER_FILTER = new RegExp(`^${PREFIX}members\\[\\s*value\\s+eq\\s+"((?:[^"\\\\]|\\\\.)*)"\\s*\\](?:\\.([A-Za-z$][\\w$-]*))?$`, 'i');
const ANY_MEMBERS = new RegExp(`^${PREFIX}members\\b`, 'i');

type Step = { kind: 'add' | 'remove'; ids: string[] } | { kind: 'set'; ids: string[] };

export interface MemberPatch {
  /** Member ids the operations name (the memberships a partial read must load). */
  ids: string[];
  /** True when the result depends on every current member (replace, remove all). */
  all: boolean;
  /** The operations that are not about membership, for scimmy. */
  otherOps: unknown[];
  /** Whether any operation is about membership. */
  touchesMembers: boolean;
  /** The membership after the operations, in order, from `start` (the named or all members). */
  apply(start: string[]): string[];
}

function memberIds(value: unknown, index: number): string[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((m) => {
    if (!isObject(m) || typeof m.value !== 'string' || m.value === '') {
      throw new ScimError(400, 'invalidValue', `operation ${index + 1}: each member needs a "value" (the user id)`);
    }
    return m.value;
  });
}

export function parseMemberPatch(operations: unknown): MemberPatch {
  const steps: Step[] = [];
  const otherOps: unknown[] = [];
  let all = false;
  if (!Array.isArray(operations)) return { ids: [], all, otherOps: operations as unknown[], touchesMembers: false, apply: (s) => s };
  operations.forEach((raw, i) => {
    if (!isObject(raw) || typeof raw.op !== 'string') return void otherOps.push(raw);
    const op = raw.op.toLowerCase();
    if (!['add', 'remove', 'replace'].includes(op)) return void otherOps.push(raw);
    if (raw.path === undefined || raw.path === '') {
      const key = isObject(raw.value) ? Object.keys(raw.value).find((k) => MEMBERS.test(k)) : undefined;
      if (key === undefined || op === 'remove') return void otherOps.push(raw);
      const { [key]: members, ...rest } = raw.value as Json;
      steps.push({ kind: op === 'replace' ? 'set' : 'add', ids: memberIds(members, i) });
      if (op === 'replace') all = true;
      if (Object.keys(rest).length > 0) otherOps.push({ ...raw, value: rest });
      return;
    }
    if (typeof raw.path !== 'string') return void otherOps.push(raw); // scimmy refuses it
    const path = raw.path.trim();
    if (MEMBERS.test(path)) {
      if (op === 'remove' && (raw.value === undefined || raw.value === null)) {
        all = true;
        steps.push({ kind: 'set', ids: [] });
      } else if (op === 'replace') {
        all = true;
        steps.push({ kind: 'set', ids: memberIds(raw.value, i) });
      } else {
        steps.push({ kind: op === 'remove' ? 'remove' : 'add', ids: memberIds(raw.value, i) });
      }
      return;
    }
    const m = MEMBER_FILTER.exec(path);
    if (m) {
      const id = JSON.parse(`"${m[1]}"`) as string;
      const sub = m[2]?.toLowerCase();
      if (sub !== undefined && sub !== 'value') return void steps.push({ kind: 'add', ids: [] }); // display, type, $ref: derived, nothing to change
      if (op === 'remove') return void steps.push({ kind: 'remove', ids: [id] });
      if (op === 'add') return void steps.push({ kind: 'add', ids: memberIds(raw.value, i) });
      // replace on one member: that member is swapped for the value given
      const next = sub === 'value' ? (typeof raw.value === 'string' && raw.value ? [raw.value] : memberIds(raw.value, i)) : memberIds(raw.value, i);
      steps.push({ kind: 'remove', ids: [id] }, { kind: 'add', ids: next });
      return;
    }
    if (ANY_MEMBERS.test(path)) {
      throw new ScimError(400, 'invalidPath', `operation ${i + 1}: members can be changed through "members" or "members[value eq \\"<user id>\\"]"`);
    }
    otherOps.push(raw);
  });
  const ids = [...new Set(steps.flatMap((s) => s.ids))];
  return {
    ids,
    all,
    otherOps,
    touchesMembers: steps.length > 0,
    apply(start) {
      const set = new Set(start);
      for (const s of steps) {
        if (s.kind === 'set') set.clear();
        for (const id of s.ids) (s.kind === 'remove' ? set.delete(id) : set.add(id));
      }
      return [...set];
    },
  };
}
