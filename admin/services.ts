import type { Config } from '../server/config';
import type { Store } from '../server/repositories/store';
import type { KmsRegistry } from '../kms-adapters/registry';
import type { AuthServices } from '../server/auth';
import type { Logger } from '../server/log';
import { TokenService } from '../scim/tokens';
import { ApiTokenRepository } from '../scim/repositories/api-tokens';
import { ownWrites } from '../server/repositories/runner';
import { searchAudit, streamAudit, type AuditFiltersInput, type AuditPageInput } from '../server/audit/search';
import { AdminQueries } from './repository';
import { OutboxRepository } from '../scim/repositories/outbox';
import { AdminAccess } from './access';
import { latencyHistory } from './latency-history';
import { SessionRevocations } from './session-revocations';
import { TokenReveals, type CreatedToken } from './token-reveals';
import type { PublicTokenInfo } from '../scim/tokens';
import { instancesSummary, type InstancesSummary } from '../server/instances/summary';
import { sharedFor } from '../server/http/shared-result';

/**
 * The console's one seam into the rest of the server: the services and queries its pages read
 * and the existing services its forms call (tokens: scim/tokens.ts, as `crypto-server token`;
 * audit: server/audit/search.ts, as the audit CLI). Pages present; they hold no logic of their own.
 */
export interface ConsoleDeps {
  config: Readonly<Config>;
  store: Store;
  kms: KmsRegistry;
  log: Logger;
  auth: AuthServices;
}

export interface SetupItem {
  name: string;
  ok: boolean | undefined;
  detail: string;
  /** The exact setting or command that fixes it. */
  fix: string;
}

export interface Check {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

const CHECK_TIMEOUT_MS = 5_000;
/** KEK checks are shared for a few seconds: the start page may be open to anyone before SAML is set up. */
const CHECK_CACHE_MS = 10_000;

export class ConsoleServices {
  readonly queries: AdminQueries;
  readonly tokens: TokenService;
  readonly access: AdminAccess;
  readonly latency = latencyHistory;
  readonly revocations: SessionRevocations;
  readonly reveals: TokenReveals;
  /** Wrap/unwrap checks of the current and previous KEKs (CS_KEK_URI, CS_PREVIOUS_KEK_URIS), shared for CHECK_CACHE_MS. */
  readonly kekHealth = sharedFor(CHECK_CACHE_MS, (): Promise<Check[]> => {
    const { kekUri, previousKekUris } = this.deps.config.kms;
    const uris = [kekUri, ...((previousKekUris as readonly string[] | undefined) ?? [])];
    return Promise.all(uris.map((u) => this.timed(u, () => this.deps.kms.check(u), `KEK check ${u}`)));
  });

  constructor(readonly deps: ConsoleDeps) {
    this.queries = new AdminQueries(deps.store);
    this.tokens = new TokenService(ownWrites(deps.store, (m) => new ApiTokenRepository(m)));
    this.access = new AdminAccess(deps.config.admin, deps.store, this.queries);
    this.revocations = new SessionRevocations(deps.store);
    this.reveals = new TokenReveals(deps.store, deps.kms, deps.config.kms.kekUri);
  }

  /**
   * As `crypto-server token create`, then parks the token for the session to see once (PRG). If it
   * cannot be parked (KMS or database down), the token is revoked: nobody could ever see it.
   */
  async createToken(sessionJti: string, input: Parameters<TokenService['create']>[0]): Promise<{ info: PublicTokenInfo; revealId: string }> {
    const { token, info } = await this.tokens.create(input);
    const created: CreatedToken = { token, name: info.name, scope: info.scope };
    try {
      return { info, revealId: await this.reveals.park(sessionJti, created) };
    } catch (err) {
      await this.tokens.revoke(info.id).catch(() => undefined);
      throw err;
    }
  }

  get samlConfigured(): boolean {
    return this.deps.config.auth.saml.enabled;
  }

  get urls() {
    const base = this.deps.config.auth.publicUrl;
    return { base, spMetadata: `${base}/auth/saml/metadata`, acs: this.deps.config.auth.saml.acsUrl, spEntityId: this.deps.config.auth.saml.spEntityId, scim: `${base}/scim/v2` };
  }

  /**
   * What is missing before the server can serve, each with the setting or command that fixes it.
   * `anonymous`: the checklist shown without sign-in while SAML is not configured — it says what
   * is set, never the values (KEK URI, client ids, origins, the admin attribute), and calls no KMS.
   */
  async setup(anonymous = false): Promise<SetupItem[]> {
    const { auth, admin, kms } = this.deps.config;
    const [scimToken, kek] = await Promise.allSettled([this.tokens.list(), anonymous ? Promise.reject(new Error('not checked')) : this.kekHealth()]);
    const liveScim = scimToken.status === 'fulfilled' ? scimToken.value.some((t) => t.scope === 'scim' && !t.revoked_at && !(t.expires_at && t.expires_at <= new Date().toISOString())) : undefined;
    const current = kek.status === 'fulfilled' ? kek.value[0] : undefined;
    return [
      {
        name: 'Identity provider (SAML)',
        ok: auth.saml.enabled,
        detail: auth.saml.enabled ? `IdP ${auth.saml.idp.metadataUrl ?? auth.saml.idp.ssoUrl ?? ''}` : 'no IdP metadata: nobody can sign in',
        fix: 'CS_SAML_IDP_METADATA_URL=https://idp.example.com/metadata (or CS_SAML_IDP_METADATA_FILE)',
      },
      {
        name: 'Administrators',
        ok: Boolean(admin.group || admin.samlAttribute),
        detail: anonymous && (admin.group || admin.samlAttribute) ? `set (${admin.group ? 'CS_ADMIN_GROUP' : 'CS_ADMIN_SAML_ATTRIBUTE'})` : admin.group ? `members of group "${admin.group}"` : admin.samlAttribute ? `sign-ins with ${admin.samlAttribute.name}=${admin.samlAttribute.value}` : 'nobody may use this console',
        fix: 'CS_ADMIN_GROUP=<SCIM group id or displayName> or CS_ADMIN_SAML_ATTRIBUTE=<attribute name>=<value>',
      },
      {
        name: 'OAuth clients',
        ok: auth.clients.length > 0,
        detail: auth.clients.length ? (anonymous ? `${auth.clients.length} registered` : auth.clients.map((c) => c.clientId).join(', ')) : 'no application may sign people in',
        fix: `CS_CLIENTS='[{"clientId":"web","redirectUris":["https://app.example.com/"]}]'`,
      },
      {
        name: 'CORS origins',
        ok: auth.cors.origins.length > 0,
        detail: auth.cors.origins.length ? (anonymous ? `${auth.cors.origins.length} allowed` : auth.cors.origins.join(', ')) : 'browser apps on another origin cannot call the key API',
        fix: 'CS_CORS_ORIGINS=https://app.example.com',
      },
      {
        name: 'SCIM token',
        ok: liveScim,
        detail: liveScim === undefined ? 'unavailable' : liveScim ? 'an active SCIM token exists' : 'the IdP cannot push users and groups yet',
        fix: `crypto-server token create --scope scim --name <your IdP>   (SCIM base URL: ${this.urls.scim})`,
      },
      {
        name: 'Key-encryption key',
        ok: anonymous ? true : current?.ok,
        detail: anonymous
          ? `set${kms.kekUri.startsWith('local:') ? ' — a local file key, for development only' : ''}; checked once an administrator signs in (now: crypto-server doctor)`
          : current
            ? `${kms.kekUri}: ${current.ok ? `answers (${current.ms} ms)` : 'failing (run crypto-server doctor for the cause)'}${kms.kekUri.startsWith('local:') ? ' — a local file key, for development only' : ''}`
            : 'unavailable',
        fix: 'CS_KEK_URI=<your KMS key URI>, then crypto-server doctor',
      },
    ];
  }

  databaseHealth(): Promise<Check> {
    return this.timed(`database (${this.deps.store.driver})`, () => this.deps.store.ping());
  }

  /** As `crypto-server outbox retry <seq>`. */
  retryDelivery(seq: number): Promise<boolean> {
    return this.deps.store.writeNow((t) => new OutboxRepository(t.manager).retryNow(seq, new Date().toISOString()));
  }

  /** As `crypto-server instances`: serving processes seen in the last 5 minutes (server_instances). */
  instances(now = new Date()): Promise<InstancesSummary> {
    return instancesSummary(this.deps.store, now);
  }

  auditPage(filters: AuditFiltersInput, page: AuditPageInput) {
    return searchAudit(this.deps.store, filters, page);
  }

  auditStream(filters: AuditFiltersInput, onRow: Parameters<typeof streamAudit>[2]) {
    return streamAudit(this.deps.store, filters, onRow);
  }

  private async timed(name: string, run: () => Promise<unknown>, latencyKey?: string): Promise<Check> {
    const start = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([run(), new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS)))]);
      const ms = Math.round(performance.now() - start);
      if (latencyKey) this.latency.record(latencyKey, ms);
      return { name, ok: true, ms };
    } catch (err) {
      return { name, ok: false, ms: Math.round(performance.now() - start), error: (err as Error).message.slice(0, 200) };
    } finally {
      clearTimeout(timer);
    }
  }
}
