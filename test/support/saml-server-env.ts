import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeKeyAndCert } from './certs';
import { TestIdp } from './saml-idp';

/**
 * What a crypto-server process started by a test needs to sign users in: a test IdP (in this
 * process), an SP key and certificate written to `dir`, and the CS_* settings naming them, the
 * server's address (127.0.0.1:`port`, data in `dir`/data) and one registered client.
 */
export async function samlServerEnv(opts: {
  dir: string;
  port: number;
  spName: string;
  client: { clientId: string; redirectUri: string };
}): Promise<{ idp: TestIdp; url: string; env: Record<string, string> }> {
  const { dir, port } = opts;
  const url = `http://127.0.0.1:${port}`;
  const idp = await TestIdp.start({ spEntityId: `${url}/auth/saml/metadata` });
  const sp = makeKeyAndCert(opts.spName);
  writeFileSync(join(dir, 'sp.key'), sp.key, { mode: 0o600 });
  writeFileSync(join(dir, 'sp.crt'), sp.cert);
  const env = {
    CS_DATA_DIR: join(dir, 'data'),
    CS_HOST: '127.0.0.1',
    CS_PORT: String(port),
    CS_LOG_LEVEL: 'warn',
    CS_PUBLIC_URL: url,
    CS_SAML_IDP_SSO_URL: idp.ssoUrl,
    CS_SAML_IDP_ENTITY_ID: idp.entityId,
    CS_SAML_IDP_CERTS: idp.cert,
    CS_SAML_SP_KEY_FILE: join(dir, 'sp.key'),
    CS_SAML_SP_CERT_FILE: join(dir, 'sp.crt'),
    CS_CLIENTS: JSON.stringify([{ clientId: opts.client.clientId, redirectUris: [opts.client.redirectUri] }]),
  };
  return { idp, url, env };
}
