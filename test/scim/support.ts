import { ownWrites } from '../../server/repositories/runner';
import request from 'supertest';
import { createTestContext, type TestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';

export interface ScimTestContext extends TestContext {
  token: string;
  tokens: TokenService;
  /** supertest agent calls with the bearer token and SCIM content type. */
  get: (path: string) => request.Test;
  post: (path: string, body: unknown) => request.Test;
  put: (path: string, body: unknown) => request.Test;
  patch: (path: string, body: unknown) => request.Test;
  del: (path: string) => request.Test;
}

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const PATCH = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

export async function scimContext(kind: DatabaseName, env: Record<string, string> = {}): Promise<ScimTestContext> {
  const ctx = await createTestContext(kind, env);
  const tokens = new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m)));
  const { token } = await tokens.create({ name: 'test idp', scope: 'scim' });
  const auth = (t: request.Test) => t.set('Authorization', `Bearer ${token}`);
  const json = (t: request.Test, body: unknown) => auth(t).set('Content-Type', 'application/scim+json').send(JSON.stringify(body));
  return {
    ...ctx,
    token,
    tokens,
    get: (p) => auth(request(ctx.app).get(`/scim/v2${p}`)),
    post: (p, b) => json(request(ctx.app).post(`/scim/v2${p}`), b),
    put: (p, b) => json(request(ctx.app).put(`/scim/v2${p}`), b),
    patch: (p, b) => json(request(ctx.app).patch(`/scim/v2${p}`), b),
    del: (p) => auth(request(ctx.app).delete(`/scim/v2${p}`)),
  };
}

export function newUser(userName: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemas: [USER_SCHEMA],
    userName,
    active: true,
    name: { givenName: 'Given', familyName: 'Family' },
    emails: [{ value: userName, type: 'work', primary: true }],
    ...extra,
  };
}
