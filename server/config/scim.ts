import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors';

/** SCIM endpoint, webhook delivery and deletion retention. Env names are the contract; see docs/scim.md. */
export const scimEnv = z.object({
  /** Public base of the SCIM endpoint for meta.location and Location, e.g. https://crypto.example.com/scim/v2 (default: from the request). members/groups $ref stay relative paths (/scim/v2/Users/ID), the same in responses and webhook events. */
  CS_SCIM_BASE_URL: z
    .string()
    .url('must be an absolute URL such as https://crypto.example.com/scim/v2')
    .regex(/^https?:\/\/[^?#]*[^/?#]$/, 'must be an http(s) URL without a trailing slash, query or fragment')
    .optional(),
  CS_SCIM_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(50 * 1024 * 1024).default(1024 * 1024),
  /** Requests per token per minute; 0 turns the limit off. */
  CS_SCIM_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).max(1_000_000).default(1200),
  /** What a successful PATCH /Groups answers: 204 unless the request asks for attributes (default), or always 200 with the group. See docs/scim.md. */
  CS_SCIM_GROUP_PATCH_RESPONSE: z.enum(['no-content', 'resource'], { message: 'must be "no-content" or "resource"' }).default('no-content'),
  CS_WEBHOOK_URL: z
    .string()
    .url('must be an absolute http(s) URL')
    .regex(/^https?:\/\//, 'must be an http:// or https:// URL')
    .refine((u) => { const p = new URL(u); return p.username === '' && p.password === ''; }, 'must not carry a user or password (requests are authenticated by the webhook signature)')
    .optional(),
  CS_WEBHOOK_SECRET: z.string().regex(/^whsec_[A-Za-z0-9+/]{22,}={0,2}$/, 'must be "whsec_" followed by base64 of at least 16 random bytes').optional(),
  CS_WEBHOOK_SECRET_FILE: z.string().min(1).optional(),
  CS_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  CS_OUTBOX_POLL_MS: z.coerce.number().int().min(50).max(600_000).default(1000),
  /** Days a deleted user's key material is kept; "keep" (default) never purges. */
  CS_USER_DELETE_RETENTION_DAYS: z.union([z.literal('keep'), z.coerce.number().int().min(0).max(36_500)]).default('keep'),
  /** When group keys rotate: on every member removal (default), or only by `crypto-server groups rotate`. See docs/keys.md. */
  CS_GROUP_REKEY: z.enum(['on-removal', 'manual'], { message: 'must be "on-removal" or "manual"' }).default('on-removal'),
});

/** Settings whose values must never appear in a message. */
export const SCIM_SECRET_SETTINGS = ['CS_WEBHOOK_SECRET'];

export type GroupPatchResponse = z.infer<typeof scimEnv>['CS_SCIM_GROUP_PATCH_RESPONSE'];

export interface WebhookConfig {
  url: string;
  secret: string;
  timeoutMs: number;
  pollMs: number;
}

export function scimConfig(e: z.infer<typeof scimEnv>) {
  let webhook: WebhookConfig | undefined;
  if (e.CS_WEBHOOK_URL) {
    let secret = e.CS_WEBHOOK_SECRET;
    if (!secret && e.CS_WEBHOOK_SECRET_FILE) {
      try {
        secret = readFileSync(e.CS_WEBHOOK_SECRET_FILE, 'utf8').trim();
      } catch {
        throw new ConfigError(`CS_WEBHOOK_SECRET_FILE: cannot read ${e.CS_WEBHOOK_SECRET_FILE}`);
      }
      if (!/^whsec_[A-Za-z0-9+/]{22,}={0,2}$/.test(secret)) {
        throw new ConfigError('CS_WEBHOOK_SECRET_FILE: the file must hold "whsec_" followed by base64 of at least 16 random bytes (value not shown)');
      }
    }
    if (!secret) throw new ConfigError('CS_WEBHOOK_SECRET: required when CS_WEBHOOK_URL is set (or CS_WEBHOOK_SECRET_FILE); generate one with `crypto-server outbox new-secret`');
    webhook = { url: e.CS_WEBHOOK_URL, secret, timeoutMs: e.CS_WEBHOOK_TIMEOUT_MS, pollMs: e.CS_OUTBOX_POLL_MS };
  }
  return {
    scim: {
      baseUrl: e.CS_SCIM_BASE_URL,
      maxBodyBytes: e.CS_SCIM_MAX_BODY_BYTES,
      rateLimitPerMinute: e.CS_SCIM_RATE_LIMIT_PER_MINUTE,
      groupPatchResponse: e.CS_SCIM_GROUP_PATCH_RESPONSE,
      webhook,
      /** null: keep deleted users' material forever. */
      userDeleteRetentionDays: e.CS_USER_DELETE_RETENTION_DAYS === 'keep' ? null : e.CS_USER_DELETE_RETENTION_DAYS,
      groupRekey: e.CS_GROUP_REKEY,
    },
  };
}
