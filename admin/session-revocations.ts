import type { Store } from '../server/repositories/store';
import { committedRead } from '../server/audit/search';

const TABLE = 'admin_session_revocations';

/**
 * Console sessions ended by Sign out, by jti, in the database so every worker and replica refuses
 * a copied cookie at once. A row is kept until its session would have expired anyway; expired
 * rows are pruned on each sign-out. Checked on every console request (the console is low-traffic).
 */
export class SessionRevocations {
  constructor(private readonly store: Store) {}

  async revoke(jti: string, sessionExpiresAt: number, now = new Date()): Promise<void> {
    const at = now.toISOString();
    await this.store.writeNow(async (t) => {
      const q = () => t.manager.createQueryBuilder();
      await q().delete().from(TABLE).where('expires_at < :at', { at }).execute();
      await q()
        .insert()
        .into(TABLE, ['jti', 'expires_at', 'revoked_at'])
        .values({ jti, expires_at: new Date(sessionExpiresAt).toISOString(), revoked_at: at })
        .orIgnore()
        .execute();
    });
  }

  async isRevoked(jti: string): Promise<boolean> {
    const row = await committedRead(this.store, (m) => m.createQueryBuilder().select('r.jti', 'jti').from(TABLE, 'r').where('r.jti = :jti', { jti }).getRawOne<{ jti: string }>());
    return row !== undefined && row !== null;
  }
}
