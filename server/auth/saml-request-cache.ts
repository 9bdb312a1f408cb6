import type { CacheItem, CacheProvider } from '@node-saml/node-saml';

/**
 * SAML AuthnRequest IDs live in the database (table saml_requests), not in process memory, so any
 * replica can take the IdP's answer (node-saml's CacheProvider seam).
 *
 * Each row carries what the sign-in is for (the pending OAuth authorize request), expires, and is
 * used once: `consume` is a single conditional UPDATE, so two replicas racing on the same response
 * cannot both win.
 */
export interface PendingSignIn {
  clientId: string;
  redirectUri: string;
  codeChallenge: string;
  state?: string;
}

export interface SamlRequestRecord {
  id: string;
  /** ISO instant the AuthnRequest was issued (node-saml's cache value). */
  issuedAt: string;
  expiresAt: Date;
  pending: PendingSignIn;
}

export type ConsumeResult =
  | { ok: true; record: SamlRequestRecord }
  | { ok: false; reason: 'unknown' | 'expired' | 'replayed' };

export interface SamlRequestStore {
  save(record: SamlRequestRecord): Promise<void>;
  /** The unexpired, unused request, without using it up. */
  peek(id: string, now: Date): Promise<SamlRequestRecord | undefined>;
  /** Marks the request used; succeeds only for the first caller, before expiry. */
  consume(id: string, now: Date): Promise<ConsumeResult>;
  /** Deletes rows that expired before `before`; returns how many. */
  purge(before: Date): Promise<number>;
}

/**
 * A CacheProvider for one HTTP request (MultiSamlStrategy builds a SAML instance per request).
 * - saveAsync (login): stores the request ID together with the pending sign-in of this request.
 * - getAsync (response): only looks; the request is used up by SignInService after every check
 *   has passed, so an unauthenticated post cannot burn someone else's pending sign-in.
 * - removeAsync: nothing (consumption is explicit, see above).
 */
/** What node-saml's cache needs: consumption and purging go through the sign-in service. */
export type SamlRequestCacheStore = Pick<SamlRequestStore, 'save' | 'peek'>;

export class RequestScopedSamlCache implements CacheProvider {
  constructor(
    private readonly store: SamlRequestCacheStore,
    private readonly ttlSeconds: number,
    private readonly pending?: PendingSignIn,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  async saveAsync(key: string, value: string): Promise<CacheItem | null> {
    if (!this.pending) throw new Error('a SAML request can only be started from an authorize request');
    const now = this.clock();
    await this.store.save({ id: key, issuedAt: value, expiresAt: new Date(now.getTime() + this.ttlSeconds * 1000), pending: this.pending });
    return { value, createdAt: now.getTime() };
  }

  async getAsync(key: string): Promise<string | null> {
    const rec = await this.store.peek(key, this.clock());
    return rec ? rec.issuedAt : null;
  }

  async removeAsync(key: string | null): Promise<string | null> {
    return key;
  }
}
