import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { ConfigError } from './errors';

/**
 * Minimal HashiCorp Vault HTTP client: JSON over HTTP(S) with X-Vault-Token and
 * X-Vault-Namespace, a custom CA, and the three auth methods a gateway is deployed with
 * (static token or token file, AppRole, Kubernetes). No Vault SDK: the API is a handful of POSTs.
 */
export class VaultHttpError extends Error {
  constructor(readonly status: number, readonly errors: string[], path: string) {
    super(`Vault ${status} on ${path}: ${errors.join('; ').replace(/\s+/g, ' ').slice(0, 300) || 'no detail'}`);
    this.name = 'VaultHttpError';
  }
}

export interface VaultAuthSettings {
  token?: string;
  tokenFile?: string;
  roleId?: string;
  secretId?: string;
  kubernetesRole?: string;
  /** Service account JWT for Kubernetes auth (default: the pod's projected token). */
  kubernetesTokenFile?: string;
  appRoleMount?: string;
  kubernetesMount?: string;
  namespace?: string;
  caFile?: string;
  scheme?: 'https' | 'http';
}

/** Vault settings from config (CS_VAULT_*; see server/config/kms.ts). */
export function vaultSettings(s: Readonly<Record<string, unknown>>): VaultAuthSettings {
  const pick = (k: string) => s[k] as string | undefined;
  const scheme = (s.scheme as string | undefined) ?? 'https';
  if (scheme !== 'https' && scheme !== 'http') throw new ConfigError('vault-transit scheme: must be "https" or "http"');
  return {
    token: pick('token'),
    tokenFile: pick('tokenFile'),
    roleId: pick('roleId'),
    secretId: pick('secretId'),
    kubernetesRole: pick('kubernetesRole'),
    kubernetesTokenFile: (s.kubernetesTokenFile as string | undefined) ?? '/var/run/secrets/kubernetes.io/serviceaccount/token',
    appRoleMount: (s.appRoleMount as string | undefined) ?? 'approle',
    kubernetesMount: (s.kubernetesMount as string | undefined) ?? 'kubernetes',
    namespace: pick('namespace'),
    caFile: pick('caFile'),
    scheme,
  };
}

/** Start-up validation: names the settings, never echoes their values. */
export function assertVaultCredentials(s: VaultAuthSettings): void {
  if (!s.token && !s.tokenFile && !(s.roleId && s.secretId) && !s.kubernetesRole) {
    throw new ConfigError('vault-transit: no credentials; set token (CS_VAULT_TOKEN), tokenFile (CS_VAULT_TOKEN_FILE), roleId+secretId (CS_VAULT_ROLE_ID, CS_VAULT_SECRET_ID) or kubernetesRole (CS_VAULT_K8S_ROLE)');
  }
  if (s.roleId && !s.secretId) throw new ConfigError('vault-transit: roleId is set but secretId (CS_VAULT_SECRET_ID) is missing');
}

type Json = Record<string, unknown>;

export class VaultClient {
  private token?: string;
  private expiresAt = Infinity;
  private readonly agent: HttpAgent | HttpsAgent;
  private readonly https: boolean;

  constructor(private readonly hostPort: string, private readonly s: VaultAuthSettings) {
    this.https = s.scheme !== 'http';
    const ca = s.caFile ? readFileSync(s.caFile) : undefined;
    this.agent = this.https ? new HttpsAgent({ keepAlive: true, ca }) : new HttpAgent({ keepAlive: true });
  }

  /** An authenticated call; on 403 with a renewable credential, logs in again once. */
  async call(method: 'GET' | 'POST', path: string, body: Json | undefined, signal: AbortSignal): Promise<Json> {
    const token = await this.currentToken(signal);
    try {
      return await this.raw(method, path, body, token, signal);
    } catch (err) {
      if (err instanceof VaultHttpError && err.status === 403 && !this.s.token) {
        this.token = undefined; // expired or revoked: re-read the file / log in again
        return this.raw(method, path, body, await this.currentToken(signal), signal);
      }
      throw err;
    }
  }

  private async currentToken(signal: AbortSignal): Promise<string> {
    if (this.token && Date.now() < this.expiresAt) return this.token;
    if (this.s.token) return (this.token = this.s.token);
    if (this.s.tokenFile) {
      this.token = readFileSync(this.s.tokenFile, 'utf8').trim();
      this.expiresAt = Date.now() + 60_000; // re-read periodically: Vault Agent rewrites the sink
      return this.token;
    }
    const login =
      this.s.roleId && this.s.secretId
        ? { path: `auth/${this.s.appRoleMount}/login`, body: { role_id: this.s.roleId, secret_id: this.s.secretId } }
        : { path: `auth/${this.s.kubernetesMount}/login`, body: { role: this.s.kubernetesRole, jwt: readFileSync(this.s.kubernetesTokenFile!, 'utf8').trim() } };
    const out = await this.raw('POST', login.path, login.body, undefined, signal);
    const auth = out.auth as { client_token?: string; lease_duration?: number } | undefined;
    if (!auth?.client_token) throw new VaultHttpError(500, ['login returned no client_token'], login.path);
    this.token = auth.client_token;
    // Renew by logging in again at 80 % of the lease; 0 means no expiry (root-like tokens).
    this.expiresAt = auth.lease_duration ? Date.now() + auth.lease_duration * 800 : Infinity;
    return this.token;
  }

  private raw(method: string, path: string, body: Json | undefined, token: string | undefined, signal: AbortSignal): Promise<Json> {
    const [host, port] = splitHostPort(this.hostPort, this.https ? 443 : 8200);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (payload) Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
    if (token) headers['x-vault-token'] = token;
    if (this.s.namespace) headers['x-vault-namespace'] = this.s.namespace;
    const send = this.https ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send({ host, port, method, path: `/v1/${path}`, headers, agent: this.agent, signal }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Json = {};
          try {
            json = text ? (JSON.parse(text) as Json) : {};
          } catch {
            /* non-JSON error page from a proxy: keep status only */
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json);
          else reject(new VaultHttpError(status, Array.isArray(json.errors) ? (json.errors as string[]) : [], path));
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function splitHostPort(hostPort: string, defaultPort: number): [string, number] {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort);
  if (!m) throw new ConfigError(`vault-transit: "${hostPort}" is not HOST[:PORT]`);
  return [m[1].replace(/^\[|\]$/g, ''), m[2] ? Number(m[2]) : defaultPort];
}
