/**
 * The OpenAPI 3.1 document at /openapi.json, generated from the zod schemas the routes validate
 * with (zod 4's z.toJSONSchema; OpenAPI 3.1 schemas are JSON Schema 2020-12), for the backend API
 * and the signed-in user's key API. Schemas are inlined per operation, so every response schema
 * stands alone. A test checks that every route is here and that real responses validate.
 */
import { Router } from 'express';
import { z } from 'zod';
import { unwrapDataKey, unwrapPasswordKey, wrapDataKey } from '../server/http/routes/keys-api';
import { BACKEND_BASE_PATH } from './base-path';
import { ChangesPage, ChangesQuery, CreateGroupBody, CreateUserBody, Group, GroupsPage, GroupsQuery, LookupBody, LookupResponse, Problem, UpdateGroupBody, User } from './schemas';

type Security = 'backendToken' | 'userToken';

interface Operation {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** Express form (`:id`). */
  path: string;
  summary: string;
  security: Security;
  query?: z.ZodObject;
  body?: z.ZodType;
  idempotent?: boolean;
  ifMatch?: boolean;
  responses: Record<number, { description: string; schema?: z.ZodType; etag?: boolean }>;
}

// ---- key API responses (the route sends these shapes; docs/keys.md) ----------------------------

const Jwk = z.record(z.string(), z.unknown());
const GroupKeyVersion = z.object({ version: z.number().int(), memberJwe: z.string(), groupPublicJwk: Jwk, groupPrivateJwe: z.string() });
const KeyBundle = z.object({
  userId: z.string(),
  keyAlg: z.string(),
  publicJwk: Jwk,
  privateJwe: z.string(),
  wrappedPasswordKey: z.string(),
  passwordKey: z.string().describe('the plaintext password key, base64url: keep it in memory only'),
  groups: z.array(
    z.object({
      groupId: z.string(), displayName: z.string(), memberJwe: z.string(), groupPublicJwk: Jwk, groupPrivateJwe: z.string(), keyVersion: z.number().int(), versions: z.array(GroupKeyVersion),
    }),
  ),
});
const PasswordKey = z.object({ passwordKey: z.string() });
const WrappedDataKey = z.object({ wrappedKey: z.string() });
const DataKey = z.object({ key: z.string() });

const id = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const B = BACKEND_BASE_PATH;

export const OPERATIONS: Operation[] = [
  { method: 'post', path: `${B}/public-keys/lookup`, summary: 'Public keys of active users by id, userName or email (up to 100)', security: 'backendToken', body: LookupBody, idempotent: true, responses: { 200: { description: 'found keys and what was not found', schema: LookupResponse } } },
  { method: 'post', path: `${B}/users`, summary: 'Create a user and their keys (idempotent on userName)', security: 'backendToken', body: CreateUserBody, idempotent: true, responses: { 201: { description: 'created', schema: User }, 200: { description: 'a live user with this userName exists', schema: User } } },
  { method: 'get', path: `${B}/users/:id`, summary: 'A user, their public key and the encrypted forms of their keys', security: 'backendToken', responses: { 200: { description: 'the user', schema: User } } },
  { method: 'post', path: `${B}/groups`, summary: 'Create an application-managed group', security: 'backendToken', body: CreateGroupBody, idempotent: true, responses: { 201: { description: 'created', schema: Group, etag: true } } },
  { method: 'get', path: `${B}/groups`, summary: 'Groups a page at a time (cursor pagination, in id order)', security: 'backendToken', query: GroupsQuery, responses: { 200: { description: 'a page of group summaries', schema: GroupsPage } } },
  { method: 'get', path: `${B}/groups/:id`, summary: 'A group (application- or IdP-managed)', security: 'backendToken', responses: { 200: { description: 'the group', schema: Group, etag: true } } },
  { method: 'patch', path: `${B}/groups/:id`, summary: 'Rename, add and remove members (removal rotates the group keys)', security: 'backendToken', body: UpdateGroupBody, ifMatch: true, responses: { 200: { description: 'the group after the change', schema: Group, etag: true } } },
  { method: 'delete', path: `${B}/groups/:id`, summary: 'Delete an application-managed group', security: 'backendToken', ifMatch: true, responses: { 204: { description: 'deleted' } } },
  { method: 'get', path: `${B}/changes`, summary: 'Changes after a cursor (the webhook events, from the same outbox)', security: 'backendToken', query: ChangesQuery, responses: { 200: { description: 'a page of changes', schema: ChangesPage } } },
  { method: 'get', path: '/api/keys/me', summary: "The signed-in user's keys and group memberships", security: 'userToken', responses: { 200: { description: 'the key bundle', schema: KeyBundle } } },
  { method: 'post', path: '/api/keys/password-key/unwrap', summary: 'Unwrap a password key envelope of the signed-in user', security: 'userToken', body: unwrapPasswordKey, responses: { 200: { description: 'the password key', schema: PasswordKey } } },
  { method: 'post', path: '/api/keys/data-keys/wrap', summary: 'Wrap a data key for the signed-in user', security: 'userToken', body: wrapDataKey, responses: { 200: { description: 'the wrapped key', schema: WrappedDataKey } } },
  { method: 'post', path: '/api/keys/data-keys/unwrap', summary: 'Unwrap a data key of the signed-in user', security: 'userToken', body: unwrapDataKey, responses: { 200: { description: 'the data key', schema: DataKey } } },
];

const PROBLEMS: Record<number, string> = {
  400: 'invalid request (problem+json; `errors` names each field)',
  401: 'no, an invalid, revoked or expired token',
  403: 'not allowed (token address allow-list, IdP-managed group, inactive user, refused unwrap)',
  404: 'not found',
  409: 'conflict; a request with this Idempotency-Key is still running (retry after Retry-After seconds); or a retry took the key over from this request (nothing written)',
  412: 'If-Match names a version the group no longer has',
  422: 'unknown members, or an Idempotency-Key reused with another request',
  503: 'the KMS or database is unavailable: retry after Retry-After seconds',
};

const json = (schema: z.ZodType, io: 'input' | 'output') => z.toJSONSchema(schema, { io, unrepresentable: 'any' });

/** OpenAPI path form of an Express path: `:id` → `{id}`. */
export const openApiPath = (p: string) => p.replace(/:(\w+)/g, '{$1}');

/** The version of this API description (backend API v1). */
const API_VERSION = '1.0.0';

export function openApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const problem = { 'application/problem+json': { schema: json(Problem, 'output') } };
  for (const op of OPERATIONS) {
    const parameters: unknown[] = [];
    if (op.path.includes(':id')) parameters.push(id);
    for (const [name, schema] of Object.entries(op.query?.shape ?? {})) parameters.push({ name, in: 'query', required: false, schema: json(schema as z.ZodType, 'input') });
    if (op.idempotent) parameters.push({ name: 'Idempotency-Key', in: 'header', required: false, description: 'retry safely: the same key and body return the first response for 24 h; a key whose request died unfinished is free again after 5 min', schema: { type: 'string', maxLength: 255 } });
    if (op.ifMatch) parameters.push({ name: 'If-Match', in: 'header', required: false, description: "the group's ETag; 412 when it changed since", schema: { type: 'string' } });
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries(op.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.etag ? { headers: { ETag: { schema: { type: 'string' } } } } : {}),
        ...(r.schema ? { content: { 'application/json': { schema: json(r.schema, 'output') } } } : {}),
      };
    }
    for (const [status, description] of Object.entries(PROBLEMS)) responses[status] ??= { description, content: problem };
    (paths[openApiPath(op.path)] ??= {})[op.method] = {
      summary: op.summary,
      tags: [op.security === 'backendToken' ? 'backend' : 'key API'],
      security: [{ [op.security]: [] }],
      ...(parameters.length ? { parameters } : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(op.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Crypto Server API', version: API_VERSION, description: 'The backend API of the cloud service (docs/backend-api.md) and the signed-in user\'s key API (docs/saml.md).' },
    components: {
      securitySchemes: {
        backendToken: { type: 'http', scheme: 'bearer', description: 'a token of scope backend: `crypto-server token create --scope backend`' },
        userToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'the access token a client gets after SAML sign-in' },
      },
    },
    paths,
  };
}

export function openApiRoutes(): Router {
  const r = Router();
  let doc: string | undefined;
  r.get('/openapi.json', (_req, res) => {
    doc ??= JSON.stringify(openApiDocument());
    res.type('application/json').send(doc);
  });
  return r;
}
