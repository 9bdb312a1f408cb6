/** Request parsing and response presentation shared by the /scim/v2 routers. */
import type { Request, Response } from 'express';
import type { OpContext } from '../server/keys/types';
import { SCIM_CONTENT_TYPE, ScimError } from './errors';
import type { ListParams, ListResult } from './service';
import { DEFAULT_COUNT, LIST_RESPONSE_SCHEMA, MAX_COUNT, SCIMMY } from './schemas';

type Json = Record<string, unknown>;

export function sendScim(res: Response, status: number, body: unknown): void {
  res.status(status).type(SCIM_CONTENT_TYPE).send(JSON.stringify(body));
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
  return { filter, sortBy: queryParam(req, 'sortBy') || undefined, sortOrder: queryParam(req, 'sortOrder') || undefined, startIndex, count };
}

/** attributes / excludedAttributes as a scimmy filter, the way scimmy's Resource builds it. */
export function attributeFilter(req: Request): SCIMMY.Types.Filter | undefined {
  const attributes = queryParam(req, 'attributes');
  const excluded = queryParam(req, 'excludedAttributes');
  const list = (s: string) => s.split(',').map((a) => a.trim()).filter(Boolean);
  if (attributes !== undefined && list(attributes).length) return new SCIMMY.Types.Filter(list(attributes).map((a) => `${a} pr`).join(' and '));
  if (excluded !== undefined && list(excluded).length) return new SCIMMY.Types.Filter(list(excluded).map((a) => `${a} np`).join(' and '));
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
  return `${req.protocol}://${req.get('host') ?? 'localhost'}${req.baseUrl.replace(/\/(Users|Groups)$/i, '')}`;
}

export type Kind = 'User' | 'Group';

export function present(kind: Kind, resource: Json, base: string, attributes?: SCIMMY.Types.Filter): Json {
  const schema = kind === 'User' ? SCIMMY.Schemas.User : SCIMMY.Schemas.Group;
  return JSON.parse(JSON.stringify(new schema(resource, 'out', `${base}/${kind}s`, attributes))) as Json;
}

export function presentList(kind: Kind, result: ListResult, base: string, attributes?: SCIMMY.Types.Filter): Json {
  return {
    schemas: [LIST_RESPONSE_SCHEMA],
    totalResults: result.total,
    startIndex: result.startIndex,
    itemsPerPage: result.resources.length,
    Resources: result.resources.map((r) => present(kind, r, base, attributes)),
  };
}

export function opContext(req: Request, res: Response): OpContext {
  const token = res.locals.scimToken as { id: string } | undefined;
  return { actor: `scim:${token?.id ?? 'unknown'}`, requestId: req.requestId };
}
