import request from 'supertest';
import { ownWrites } from '../../server/repositories/runner';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { createAuthFixture, type AuthFixture } from '../support/auth-fixture';
import type { DatabaseName } from '../support/databases';
import { VaultEmulator } from '../emulators/vault';
import { TcpProxy } from './tcp-proxy';

/** KMS settings of the fault suite: short, so the bounds are asserted in seconds, not minutes. */
export const KMS_TIMEOUT_MS = 400;
export const KMS_DEADLINE_MS = 800;
export const BREAKER_COOLDOWN_MS = 300;
/** Scheduling slack on a shared 2-core machine; the bound asserted is deadline + this. */
export const SLACK_MS = 1000;

export interface FaultFixture extends AuthFixture {
  vault: VaultEmulator;
  /** The KMS's address as the server sees it: make it hang, kill it, restore it. */
  kms: AuthFixture['kms'];
  proxy: TcpProxy;
  /** The settings this server runs with (database, KEK and KMS resilience): for a CLI command beside it. */
  env: Record<string, string>;
  /** A body that is a string (an IdP's request bytes) is sent as it is. */
  scimPost: (path: string, body: unknown) => request.Test;
  scimGet: (path: string) => request.Test;
  scimPatch: (path: string, body: unknown) => request.Test;
  scimDelete: (path: string) => request.Test;
  close: () => Promise<void>;
}

/**
 * A full server (SAML sign-in, SCIM, key API) on `kind` whose KEK lives in a Vault emulator
 * reached through a TcpProxy, with the real vault-transit adapter and its resilience settings.
 */
export async function faultFixture(kind: DatabaseName, env: Record<string, string> = {}): Promise<FaultFixture> {
  const vault = await new VaultEmulator().start();
  vault.addKey('kek');
  const proxy = await new TcpProxy(Number(vault.hostPort.split(':')[1])).start();
  try {
    const settings = {
      CS_KEK_URI: `vault-transit://${proxy.hostPort}/transit/keys/kek`,
      CS_VAULT_TOKEN: 'root-test-token',
      CS_VAULT_SCHEME: 'http',
      CS_KMS_TIMEOUT_MS: String(KMS_TIMEOUT_MS),
      CS_KMS_DEADLINE_MS: String(KMS_DEADLINE_MS),
      CS_KMS_MAX_RETRIES: '3',
      CS_KMS_BREAKER_COOLDOWN_MS: String(BREAKER_COOLDOWN_MS),
      ...env,
    };
    const f = await createAuthFixture(kind, settings);
    const body = (b: unknown) => (typeof b === 'string' ? b : JSON.stringify(b));
    const tokens = new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m)));
    const { token } = await tokens.create({ name: 'fault idp', scope: 'scim' });
    return {
      ...f,
      vault,
      proxy,
      env: { ...settings, CS_DATABASE_URL: f.db.url, CS_LOG_LEVEL: 'silent' },
      scimPost: (p, b) => request(f.app).post(`/scim/v2${p}`).set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/scim+json').send(body(b)),
      scimGet: (p) => request(f.app).get(`/scim/v2${p}`).set('Authorization', `Bearer ${token}`),
      scimPatch: (p, b) => request(f.app).patch(`/scim/v2${p}`).set('Authorization', `Bearer ${token}`).set('Content-Type', 'application/scim+json').send(body(b)),
      scimDelete: (p) => request(f.app).delete(`/scim/v2${p}`).set('Authorization', `Bearer ${token}`),
      close: async () => {
        await f.cleanupAll();
        await proxy.close();
        await vault.close();
      },
    };
  } catch (err) {
    await proxy.close();
    await vault.close();
    throw err;
  }
}
