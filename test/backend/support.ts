import request from 'supertest';
import { newUser, scimContext, type ScimTestContext } from '../scim/support';
import type { DatabaseName } from '../support/databases';

export interface BackendTestContext extends ScimTestContext {
  /** A token of scope `backend`. */
  backendToken: string;
  backend: {
    get: (path: string) => request.Test;
    post: (path: string, body: unknown) => request.Test;
    patch: (path: string, body: unknown) => request.Test;
    del: (path: string) => request.Test;
  };
  /** Provisions a user through SCIM (as the IdP would); returns its id. */
  user: (userName: string, extra?: Record<string, unknown>) => Promise<string>;
}

export async function backendContext(kind: DatabaseName, env: Record<string, string> = {}): Promise<BackendTestContext> {
  const ctx = await scimContext(kind, env);
  const { token: backendToken } = await ctx.tokens.create({ name: 'cloud backend', scope: 'backend' });
  const auth = (t: request.Test) => t.set('Authorization', `Bearer ${backendToken}`);
  const base = '/backend/v1';
  return {
    ...ctx,
    backendToken,
    backend: {
      get: (p) => auth(request(ctx.app).get(`${base}${p}`)),
      post: (p, b) => auth(request(ctx.app).post(`${base}${p}`)).send(b as object),
      patch: (p, b) => auth(request(ctx.app).patch(`${base}${p}`)).send(b as object),
      del: (p) => auth(request(ctx.app).delete(`${base}${p}`)),
    },
    user: async (userName, extra = {}) => (await ctx.post('/Users', newUser(userName, extra)).expect(201)).body.id as string,
  };
}
