import type { Profile } from '@node-saml/node-saml';
import type { AdminConfig } from '../server/config/admin';
import type { UserRow } from '../entities';
import type { Store } from '../server/repositories/store';
import type { AdminQueries } from './repository';
import type { AdminSession } from './session';

/**
 * Who is an administrator: a member of CS_ADMIN_GROUP (a SCIM group, by id or displayName), or a
 * person whose sign-in assertion carried CS_ADMIN_SAML_ATTRIBUTE. Checked on every request, so
 * removing someone from the group (or deactivating them) takes effect on their next click.
 */
export type AccessResult = { ok: true; user: UserRow } | { ok: false; reason: string };

export class AdminAccess {
  constructor(
    private readonly config: AdminConfig,
    private readonly store: Store,
    private readonly queries: AdminQueries,
  ) {}

  get configured(): boolean {
    return Boolean(this.config.group || this.config.samlAttribute);
  }

  /** Whether the assertion carries the admin attribute value (one of its values, for multi-valued ones). */
  grantedByAttribute(profile: Profile): boolean {
    const a = this.config.samlAttribute;
    if (!a) return false;
    // Only the assertion's attributes: node-saml also copies them onto the profile beside its own fields (issuer, nameID …).
    const v = (profile.attributes as Record<string, unknown> | undefined)?.[a.name];
    return (Array.isArray(v) ? v : [v]).some((x) => x === a.value);
  }

  async check(session: AdminSession): Promise<AccessResult> {
    const user = await this.store.repos.users.findById(session.userId);
    if (!user || user.deletedAt) return { ok: false, reason: 'the signed-in user no longer exists' };
    if (!user.active) return { ok: false, reason: 'the signed-in user is deactivated' };
    if (session.byAttribute && this.config.samlAttribute) return { ok: true, user };
    if (this.config.group) {
      const groups = await this.store.repos.memberships.groupIdsOf(user.id);
      if (await this.queries.anyGroupIs(groups, this.config.group)) return { ok: true, user };
      return { ok: false, reason: `not a member of the administrators' group (CS_ADMIN_GROUP)` };
    }
    return { ok: false, reason: this.configured ? 'the sign-in did not carry the administrators\' attribute (CS_ADMIN_SAML_ATTRIBUTE)' : 'no administrators are configured (set CS_ADMIN_GROUP or CS_ADMIN_SAML_ATTRIBUTE)' };
  }
}
