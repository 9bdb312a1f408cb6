import type { Express } from 'express';
import { createTestContext, type TestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';
import { makeKeyAndCert } from '../support/certs';
import { createAuthServices, type AuthServices } from '../../server/auth';
import { createApp } from '../../server/http/app';

export const CONSOLE_PUBLIC_URL = 'http://console.test';

/**
 * A server on `kind` with SAML sign-in configured (a test IdP certificate) and the console open to
 * the SCIM group "Key Admins": the context, its auth services and its app.
 */
export async function consoleContext(kind: DatabaseName): Promise<{ ctx: TestContext; auth: AuthServices; app: Express }> {
  const idp = makeKeyAndCert('idp.test');
  const ctx = await createTestContext(kind, {
    CS_PUBLIC_URL: CONSOLE_PUBLIC_URL,
    CS_SAML_IDP_SSO_URL: 'https://idp.test/sso',
    CS_SAML_IDP_CERTS: idp.cert,
    CS_SAML_IDP_ENTITY_ID: 'https://idp.test',
    CS_ADMIN_GROUP: 'Key Admins',
  });
  const auth = createAuthServices(ctx);
  return { ctx, auth, app: createApp(ctx, auth) };
}
