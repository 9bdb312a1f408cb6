/**
 * Request and response shapes of the backend API. Routes validate with these; they are also the
 * source of the OpenAPI document, so the two cannot drift.
 */
import { z } from 'zod';

/** Members per request: far above any real shared folder's initial list, far below what a single request should carry. */
const MAX_MEMBERS_PER_REQUEST = 1000;
/** Lookups per call. */
const MAX_LOOKUPS = 100;

const name = z.string().trim().min(1, 'must not be empty').max(255, 'must be at most 255 characters');
const userId = z.string().min(1).max(36);
const userName = z.string().min(1).max(255);

export const MemberRef = z.union([z.object({ id: userId }).strict(), z.object({ userName }).strict()]).describe('a user, by id or by userName (case-insensitive)');
export type MemberRef = z.infer<typeof MemberRef>;

const refKey = (m: MemberRef) => ('id' in m ? `id:${m.id}` : `userName:${m.userName.toLowerCase()}`);
const memberList = z
  .array(MemberRef)
  .max(MAX_MEMBERS_PER_REQUEST, `at most ${MAX_MEMBERS_PER_REQUEST} members per request`)
  .superRefine((list, c) => {
    const seen = new Set<string>();
    for (const m of list) {
      const k = refKey(m);
      if (seen.has(k)) c.addIssue({ code: 'custom', message: `${k} is listed more than once` });
      seen.add(k);
    }
  });

export const CreateGroupBody = z.object({ name, members: memberList.default([]) }).strict();
export type CreateGroupBody = z.infer<typeof CreateGroupBody>;

export const UpdateGroupBody = z
  .object({ name: name.optional(), add: memberList.optional(), remove: memberList.optional() })
  .strict()
  .refine((b) => b.name !== undefined || b.add !== undefined || b.remove !== undefined, 'name, add or remove is required');
export type UpdateGroupBody = z.infer<typeof UpdateGroupBody>;

export const LookupBody = z
  .object({
    ids: z.array(userId).optional(),
    userNames: z.array(userName).optional(),
    emails: z.array(z.string().min(1).max(320)).optional(),
  })
  .strict()
  .refine((b) => (b.ids?.length ?? 0) + (b.userNames?.length ?? 0) + (b.emails?.length ?? 0) <= MAX_LOOKUPS, `at most ${MAX_LOOKUPS} lookups per call`);
export type LookupBody = z.infer<typeof LookupBody>;

const optionalText = (max: number) => z.string().trim().min(1).max(max).optional();

export const CreateUserBody = z
  .object({
    userName: z.string().trim().min(1, 'must not be empty').max(255, 'must be at most 255 characters'),
    email: z.email().max(320).optional(),
    displayName: optionalText(255),
    givenName: optionalText(255),
    familyName: optionalText(255),
    externalId: optionalText(255),
  })
  .strict();
export type CreateUserBody = z.infer<typeof CreateUserBody>;

export const User = z.object({
  id: z.string(),
  userName: z.string(),
  email: z.string().nullable(),
  displayName: z.string().nullable(),
  active: z.boolean(),
  keyAlgorithm: z.string(),
  publicKeyJwk: z.record(z.string(), z.unknown()),
  privateKeyJwe: z.string().describe("the user's private key as JWE under their password key"),
  wrappedPasswordKey: z.string().describe('the password key wrapped by the KMS, bound to this user'),
  kekUri: z.string(),
  createdAt: z.string(),
});
export type User = z.infer<typeof User>;

export const GroupsQuery = z
  .object({
    after: z.string().min(1).max(36).optional().describe('the `next` cursor of the previous page'),
    limit: z.string().regex(/^\d{1,4}$/, 'must be a number from 1 to 1000').default('100').transform(Number).pipe(z.number().int().min(1).max(1000)),
    origin: z.enum(['app', 'scim']).optional(),
  })
  .strict();

const GroupSummary = z.object({
  id: z.string(),
  name: z.string(),
  origin: z.enum(['scim', 'app']),
  version: z.number().int(),
  keyVersion: z.number().int(),
  members: z.number().int().describe('how many members'),
  updatedAt: z.string(),
});

export const GroupsPage = z.object({ groups: z.array(GroupSummary), next: z.string().nullable().describe('null: this was the last page'), hasMore: z.boolean() });

export const ChangesQuery = z
  .object({
    after: z.string().regex(/^\d{1,15}$/, 'must be a cursor from a previous page (or 0)').default('0').transform(Number),
    limit: z.string().regex(/^\d{1,4}$/, 'must be a number from 1 to 1000').default('100').transform(Number).pipe(z.number().int().min(1).max(1000)),
  })
  .strict();

export const Change = z.object({
  id: z.string().describe("the event id (the webhook's webhook-id): de-duplicate on it"),
  cursor: z.string(),
  type: z.string().describe('user.created, user.updated, user.deleted, group.created, group.updated, group.deleted, group.key.rotated'),
  timestamp: z.string(),
  resourceType: z.enum(['User', 'Group']),
  resourceId: z.string(),
  data: z.unknown().describe("the same data as the webhook event's"),
});

export const ChangesPage = z.object({ changes: z.array(Change), next: z.string(), hasMore: z.boolean() });

const Jwk = z.record(z.string(), z.unknown()).describe('a public JWK (RFC 7517)');

export const PublicKey = z.object({
  userId: z.string(),
  userName: z.string(),
  email: z.string().nullable(),
  keyAlgorithm: z.string(),
  publicKeyJwk: Jwk,
});

export const LookupResponse = z.object({
  keys: z.array(PublicKey),
  notFound: z.object({ ids: z.array(z.string()), userNames: z.array(z.string()), emails: z.array(z.string()) }),
});

export const GroupMember = z.object({
  userId: z.string(),
  userName: z.string(),
  memberJwe: z.string().describe("the current version's membership key as JWE to this member's public key"),
});

export const Group = z.object({
  id: z.string(),
  name: z.string(),
  origin: z.enum(['scim', 'app']).describe('scim: managed by the identity provider (read-only here); app: by this API'),
  version: z.number().int().describe('changes with every write; the ETag'),
  keyVersion: z.number().int(),
  keyAlgorithm: z.string(),
  publicKeyJwk: Jwk,
  privateKeyJwe: z.string().describe('the group private key as JWE under the membership key'),
  wrappedMembershipKey: z.string().describe('the membership key wrapped by the KMS, bound to this group and version'),
  kekUri: z.string(),
  members: z.array(GroupMember),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type Group = z.infer<typeof Group>;

export const Problem = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  code: z.string(),
  requestId: z.string().optional(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
