import { randomBytes } from 'node:crypto';
import type { KmsRegistry } from '../kms-adapters/registry';
import type { Store } from '../server/repositories/store';
import { committedRead } from '../server/audit/search';

const TABLE = 'admin_token_reveals';
/** How long a created token waits to be shown. */
export const REVEAL_TTL_MS = 120_000;
export const REVEAL_ID = /^[A-Za-z0-9_-]{24}$/;

export interface CreatedToken {
  token: string;
  name: string;
  scope: string;
}

/**
 * Post/Redirect/Get for a new token: the POST parks the token here and redirects to a page that
 * shows it once. Parked in the database (any worker or replica may serve the redirect), wrapped
 * by the KEK with associated data naming the creating session and the reveal id (a row moved to
 * another session or id does not open), for at most REVEAL_TTL_MS, and deleted before it is shown:
 * a reload finds nothing. The KMS is called outside any transaction.
 */
export class TokenReveals {
  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly kekUri: string,
  ) {}

  async park(sessionJti: string, created: CreatedToken, now = Date.now()): Promise<string> {
    const id = randomBytes(18).toString('base64url');
    const plaintext = Buffer.from(JSON.stringify(created), 'utf8');
    let envelope: string;
    try {
      envelope = await this.kms.wrap(this.kekUri, plaintext, context(sessionJti, id));
    } finally {
      plaintext.fill(0);
    }
    await this.store.writeNow(async (t) => {
      const q = () => t.manager.createQueryBuilder();
      await q().delete().from(TABLE).where('expires_at < :at', { at: new Date(now).toISOString() }).execute();
      await q().insert().into(TABLE, ['id', 'session_jti', 'envelope', 'expires_at']).values({ id, session_jti: sessionJti, envelope, expires_at: new Date(now + REVEAL_TTL_MS).toISOString() }).execute();
    });
    return id;
  }

  /** The parked token, once, to the session that parked it; undefined when shown already, expired or another session's. */
  async take(sessionJti: string, id: string, now = Date.now()): Promise<CreatedToken | undefined> {
    if (!REVEAL_ID.test(id)) return undefined;
    const row = await committedRead(this.store, (m) =>
      m
        .createQueryBuilder()
        .select(['r.envelope AS envelope', 'r.expires_at AS expires_at'])
        .from(TABLE, 'r')
        .where('r.id = :id AND r.session_jti = :jti', { id, jti: sessionJti })
        .getRawOne<{ envelope: string; expires_at: string }>(),
    );
    if (!row || row.expires_at <= new Date(now).toISOString()) return undefined;
    // Open first (no transaction open): a KMS fault leaves the row for the next reload instead of
    // losing the only view of a live token. Then whoever deletes the row shows it, so two
    // concurrent reloads cannot both get the token.
    const plaintext = await this.kms.unwrapStored(row.envelope, context(sessionJti, id));
    try {
      const deleted = await this.store.writeNow((t) => t.manager.createQueryBuilder().delete().from(TABLE).where('id = :id AND session_jti = :jti', { id, jti: sessionJti }).execute());
      if (deleted.affected !== 1) return undefined;
      return JSON.parse(plaintext.toString('utf8')) as CreatedToken;
    } finally {
      plaintext.fill(0);
    }
  }
}

const context = (session: string, reveal: string) => ({ purpose: 'admin-token-reveal', session, reveal });
