/** Request parsing and response presentation shared by the /scim/v2 routers. */
import type { Request, Response } from 'express';
import type { OpContext } from '../server/keys/types';
import { selectAttributes, type AttributeSelection } from './attributes';
import { SCIM_CONTENT_TYPE, ScimError } from './errors';
import { jsonChunks } from './json-body';
import type { UserKeysRow } from '../entities';
import { userGroupsValue, userKeysValue, type ListedUser } from './resources';
import type { ListParams, ListResult, UserPage } from './service';
import { DEFAULT_COUNT, ENTERPRISE_USER_SCHEMA, GROUP_KEYS_SCHEMA, GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, MAX_COUNT, USER_KEYS_SCHEMA, USER_SCHEMA } from './schemas';

type Json = Record<string, unknown>;

/**
 * Sent without Express's body-hash ETag: ServiceProviderConfig says `etag: {supported: false}`, the
 * responses are `no-store`, yet Express hashed every body (SHA-1 over a 100-user page, ≈4 % of its CPU).
 * The body goes as UTF-8 chunks encoded once (json-body.ts), corked so that the headers and every
 * chunk leave in one writev.
 */
export function sendScim(res: Response, status: number, body: unknown): void {
  const chunks = jsonChunks(body);
  let length = 0;
  for (const c of chunks) length += c.length;
  res.status(status).type(SCIM_CONTENT_TYPE).setHeader('Content-Length', length);
  if (chunks.length === 1) {
    res.end(chunks[0]);
    return;
  }
  res.cork();
  for (const c of chunks) res.write(c);
  res.end();
}

/** Query parameters, case-insensitively (RFC 7644 §3.4.2); a repeated parameter is an error. */
export function queryParam(req: Request, name: string): string | undefined {
  const q = req.query as Record<string, unknown>;
  const key = Object.keys(q).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined) return undefined;
  const v = q[key];
  if (typeof v !== 'string') throw new ScimError(400, 'invalidValue', `query parameter "${name}" must be given once`);
  return v;
}

function intParam(req: Request, name: string): number | undefined {
  const v = queryParam(req, name);
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d{1,9}$/.test(v.trim())) throw new ScimError(400, 'invalidValue', `query parameter "${name}" must be an integer`);
  return Number.parseInt(v, 10);
}

export function listParams(req: Request): ListParams {
  const startIndex = Math.max(1, intParam(req, 'startIndex') ?? 1);
  const count = Math.min(MAX_COUNT, Math.max(0, intParam(req, 'count') ?? DEFAULT_COUNT));
  const filter = queryParam(req, 'filter');
  if (filter !== undefined && filter.trim() === '') throw new ScimError(400, 'invalidFilter', 'filter must not be empty');
  if (filter?.includes('\u0000')) throw new ScimError(400, 'invalidFilter', 'filter must not contain NUL characters');
  return { filter, sortBy: queryParam(req, 'sortBy') || undefined, sortOrder: queryParam(req, 'sortOrder') || undefined, startIndex, count };
}

/** attributes / excludedAttributes from the query (attributes wins when both are given). */
export function attributeFilter(req: Request): AttributeSelection | undefined {
  const list = (s: string | undefined) => (s ?? '').split(',').map((a) => a.trim()).filter(Boolean);
  const attributes = list(queryParam(req, 'attributes'));
  const excluded = list(queryParam(req, 'excludedAttributes'));
  if (attributes.length) return { attributes };
  if (excluded.length) return { excluded };
  return undefined;
}

/** True unless the client excluded members (Entra: excludedAttributes=members) or asked only for other attributes. */
export function wantsMembers(req: Request): boolean {
  const attributes = queryParam(req, 'attributes');
  const excluded = queryParam(req, 'excludedAttributes');
  const names = (s: string | undefined) => (s ?? '').split(',').map((a) => a.trim().toLowerCase().replace(/^urn:ietf:params:scim:schemas:core:2\.0:group:/, ''));
  if (attributes) return names(attributes).some((a) => a === 'members' || a.startsWith('members.') || a.endsWith(':memberkeys') || a.includes('groupkeys'));
  return !names(excluded).includes('members');
}

export function baseUrl(req: Request): string {
  const fixed = req.res?.locals.scimBaseUrl as string | undefined;
  if (fixed) return fixed;
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl.replace(/\/(Users|Groups)$/i, '')}`;
}

export type Kind = 'User' | 'Group';

/** memberKeys is `returned: request`: only when named in `attributes`. */
export function wantsMemberKeys(req: Request): boolean {
  return (queryParam(req, 'attributes') ?? '').toLowerCase().split(',').some((a) => a.trim().endsWith('memberkeys'));
}

function withoutMemberKeys(resource: Json): Json {
  const ext = resource[GROUP_KEYS_SCHEMA];
  if (!ext || typeof ext !== 'object') return resource;
  const { memberKeys: _k, ...rest } = ext as Json;
  void _k;
  return { ...resource, [GROUP_KEYS_SCHEMA]: rest };
}

export function present(kind: Kind, resource: Json, base: string, attributes?: AttributeSelection, memberKeys = false): Json {
  if (kind === 'Group' && !memberKeys) resource = withoutMemberKeys(resource);
  const full = shape(kind, resource, `${base}/${kind}s`);
  return attributes ? selectAttributes(full, attributes) : full;
}

const EXTENSIONS: Record<Kind, string[]> = {
  User: [ENTERPRISE_USER_SCHEMA, USER_KEYS_SCHEMA],
  Group: [GROUP_KEYS_SCHEMA],
};

/**
 * The outbound resource. Stored profiles went through scimmy's schema coercion on the way in
 * (service.ts), so here we only add `schemas` and `meta.location` and order the keys as scimmy
 * does — without a second coercion per resource, which dominated list latency (~1.7 ms each).
 * Attributes that are never returned (password) are never stored.
 */
export function shape(kind: Kind, resource: Json, location: string): Json {
  const core = kind === 'User' ? USER_SCHEMA : GROUP_SCHEMA;
  const schemas = [core, ...EXTENSIONS[kind].filter((e) => resource[e] !== undefined)];
  const { id, externalId, meta, schemas: _s, ...rest } = resource;
  void _s;
  return {
    schemas,
    id,
    ...(externalId !== undefined ? { externalId } : {}),
    meta: { ...(meta as Json), location: `${location}/${String(id)}` },
    ...rest,
  };
}

export function presentList(kind: Kind, result: ListResult, base: string, attributes?: AttributeSelection, memberKeys = false): Json {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: result.total,
    startIndex: result.startIndex,
    itemsPerPage: result.resources.length,
    Resources: result.resources.map((r) => present(kind, r, base, attributes, memberKeys)),
  };
}

/**
 * A /Users list page straight from its rows: the same JSON, key for key and in the same order, as
 * presentList('User') over userResource() — which builds each resource twice by object spread
 * (profile, then shape), several times the cost of one pass at 100 users with their key material.
 * test/scim/user-list-render.test.ts holds the two to the same bytes.
 */
export function presentUserList(page: UserPage, base: string, attributes?: AttributeSelection): Json {
  const location = `${base}/Users`;
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: page.total,
    startIndex: page.startIndex,
    itemsPerPage: page.rows.length,
    Resources: page.rows.map((r) => {
      const full = shapedUser(r, page.keys.get(r.id), page.groups.get(r.id), page.basepath, location);
      return attributes ? selectAttributes(full, attributes) : full;
    }),
  };
}

const own = (o: Json, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/** shape('User', userResource(row, keys, groups, basepath), location) in one pass (see resources.ts for what each value means). */
export function shapedUser(row: ListedUser, keys: UserKeysRow | undefined, groups: { groupId: string; display: string }[] | undefined, basepath: string, location: string): Json {
  const profile = JSON.parse(row.scimAttributes || '{}') as Json;
  // userResource's overrides: the columns win over the stored profile; groups and keys only when there are some.
  const externalId = row.externalId !== null ? row.externalId : profile.externalId;
  const groupList = userGroupsValue(groups, basepath) ?? profile.groups;
  const keyExt = keys ? userKeysValue(keys) : profile[USER_KEYS_SCHEMA];
  const schemas = [USER_SCHEMA];
  if (profile[ENTERPRISE_USER_SCHEMA] !== undefined) schemas.push(ENTERPRISE_USER_SCHEMA);
  if (keyExt !== undefined) schemas.push(USER_KEYS_SCHEMA);
  const out: Json = { schemas, id: row.id };
  if (externalId !== undefined) out.externalId = externalId;
  out.meta = { resourceType: 'User', created: row.createdAt, lastModified: row.updatedAt, version: `W/"${row.version}"`, location: `${location}/${row.id}` };
  // The profile's own order, then what userResource appends after it.
  for (const k of Object.keys(profile)) {
    if (k === 'id' || k === 'externalId' || k === 'meta' || k === 'schemas') continue;
    const v = k === 'userName' ? row.userName : k === 'active' ? Boolean(row.active) : k === 'groups' ? groupList : k === USER_KEYS_SCHEMA ? keyExt : profile[k];
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
  }
  if (!own(profile, 'userName')) out.userName = row.userName;
  if (!own(profile, 'active')) out.active = Boolean(row.active);
  if (groupList !== undefined && !own(profile, 'groups')) out.groups = groupList;
  if (keyExt !== undefined && !own(profile, USER_KEYS_SCHEMA)) out[USER_KEYS_SCHEMA] = keyExt;
  return out;
}

export function opContext(req: Request, res: Response): OpContext {
  const token = res.locals.scimToken as { id: string } | undefined;
  return { actor: `scim:${token?.id ?? 'unknown'}`, requestId: req.requestId };
}
