/**
 * Converting between SCIM resources and our rows. Profile attributes live as JSON in
 * scim_attributes; the filterable ones are projected into columns. Key material is added on the
 * way out, in our read-only extension, from user_keys / group_keys: encrypted or public only.
 */
import type { GroupKeysRow, GroupRow, UserKeysRow, UserRow } from '../entities';
import type { NewUser } from '../server/keys/types';
import type { MemberView } from './repositories/scim-queries';
import { GROUP_KEYS_SCHEMA, USER_KEYS_SCHEMA } from './schemas';

type Json = Record<string, unknown>;

export interface UserProjection extends Omit<NewUser, 'attributes'> {
  attributes: Json;
}

/** What a SCIM User resource shows of its row (list pages read only these columns). */
export type ListedUser = Pick<UserRow, 'id' | 'userName' | 'externalId' | 'active' | 'scimAttributes' | 'createdAt' | 'updatedAt' | 'version'>;

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/** Drops what is ours to set (id, meta, schemas, key extensions) from a coerced SCIM object. */
export function profileOf(resource: Json): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(resource)) {
    if (k === 'id' || k === 'meta' || k === 'schemas' || k === USER_KEYS_SCHEMA || k === GROUP_KEYS_SCHEMA || k === 'groups' || k === 'password') continue;
    if (v !== undefined) out[k] = v;
  }
  return out;
}

/** The email kept in the `email` column: the work one, else the primary, else the first. */
export function pickEmail(emails: unknown): string | null {
  if (!Array.isArray(emails) || emails.length === 0) return null;
  const list = emails.filter((e): e is Json => !!e && typeof e === 'object');
  const chosen = list.find((e) => e.type === 'work') ?? list.find((e) => e.primary === true) ?? list[0];
  return str(chosen?.value);
}

export function projectUser(resource: Json): UserProjection {
  const profile = profileOf(resource);
  const name = (profile.name ?? {}) as Json;
  return {
    userName: String(profile.userName ?? ''),
    externalId: str(profile.externalId),
    displayName: str(profile.displayName),
    email: pickEmail(profile.emails),
    givenName: str(name.givenName),
    familyName: str(name.familyName),
    active: profile.active === undefined ? true : profile.active === true,
    attributes: profile,
  };
}

/** A user's groups as the resource lists them (none: undefined, so a stored profile's own list stands). */
export function userGroupsValue(groups: { groupId: string; display: string }[] | undefined, basepath: string): Json[] | undefined {
  return groups && groups.length ? groups.map((g) => ({ value: g.groupId, display: g.display, $ref: `${basepath}/Groups/${g.groupId}`, type: 'direct' })) : undefined;
}

/** The cryptoserver UserKeys extension of a user with keys. */
export function userKeysValue(keys: UserKeysRow): Json {
  return { keyAlgorithm: keys.keyAlg, publicKeyJwk: keys.publicJwk, encryptedPrivateKey: keys.privateJwe, wrappedPasswordKey: keys.wrappedPasswordKey, kekUri: keys.kekUri };
}

export function userResource(row: ListedUser, keys: UserKeysRow | undefined, groups?: { groupId: string; display: string }[], basepath = ''): Json {
  const profile = JSON.parse(row.scimAttributes || '{}') as Json;
  const groupList = userGroupsValue(groups, basepath);
  return {
    ...profile,
    id: row.id,
    userName: row.userName,
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    active: Boolean(row.active),
    ...(groupList ? { groups: groupList } : {}),
    meta: { resourceType: 'User', created: row.createdAt, lastModified: row.updatedAt, version: `W/"${row.version}"` },
    ...(keys ? { [USER_KEYS_SCHEMA]: userKeysValue(keys) } : {}),
  };
}

export function groupResource(row: GroupRow, keys: GroupKeysRow | undefined, members: MemberView[] | undefined, basepath: string): Json {
  const profile = JSON.parse(row.scimAttributes || '{}') as Json;
  delete profile.members;
  return {
    ...profile,
    id: row.id,
    displayName: row.displayName,
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    ...(members ? { members: members.map((m) => ({ value: m.userId, display: m.display ?? undefined, $ref: `${basepath}/Users/${m.userId}`, type: 'User' })) } : {}),
    meta: { resourceType: 'Group', created: row.createdAt, lastModified: row.updatedAt, version: `W/"${row.version}"` },
    ...(keys
      ? {
          [GROUP_KEYS_SCHEMA]: {
            keyAlgorithm: keys.keyAlg,
            publicKeyJwk: keys.publicJwk,
            encryptedPrivateKey: keys.privateJwe,
            wrappedMembershipKey: keys.wrappedMembershipKey,
            kekUri: keys.kekUri,
            keyVersion: keys.keyVersion,
            ...(members ? { memberKeys: members.map((m) => ({ value: m.userId, jwe: m.memberJwe })) } : {}),
          },
        }
      : {}),
  };
}
