import { z } from 'zod';

/** The administrator's console at /admin (admin/, docs/console.md). */
export const adminEnv = z.object({
  /** A SCIM group (its id or displayName) whose members are administrators. */
  CS_ADMIN_GROUP: z.string().min(1).max(255).optional(),
  /** `name=value`: a SAML attribute value that makes the signed-in person an administrator. */
  CS_ADMIN_SAML_ATTRIBUTE: z
    .string()
    .regex(/^[^=\s][^=]{0,254}=.{1,255}$/, 'must be name=value, e.g. http://schemas.microsoft.com/ws/2008/06/identity/claims/role=CryptoServerAdmin')
    .optional(),
  /** How long a console session lasts; never renewed, a new sign-in starts a new one. */
  CS_ADMIN_SESSION_MINUTES: z.coerce.number().int('must be a whole number of minutes').min(5, 'must be at least 5').max(720, 'must be at most 720 (12 hours)').default(30),
});

export interface AdminConfig {
  group?: string;
  samlAttribute?: { name: string; value: string };
  sessionMinutes: number;
}

export function adminConfig(e: z.infer<typeof adminEnv>): { admin: AdminConfig } {
  const attr = e.CS_ADMIN_SAML_ATTRIBUTE;
  const at = attr ? attr.indexOf('=') : -1;
  return {
    admin: {
      group: e.CS_ADMIN_GROUP,
      samlAttribute: attr ? { name: attr.slice(0, at), value: attr.slice(at + 1) } : undefined,
      sessionMinutes: e.CS_ADMIN_SESSION_MINUTES,
    },
  };
}
