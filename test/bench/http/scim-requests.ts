/**
 * SCIM request bodies as Microsoft Entra ID sends them: the documents' own request bytes
 * (test/scim/idp-bodies.ts, each citing its page) with only the identifiers substituted, since
 * every request of a benchmark or test must name a different user or group.
 */
import {
  ENTRA_ADD_MEMBER, ENTRA_CREATE_GROUP, ENTRA_CREATE_USER, ENTRA_FLAG_MEMBER_ID, ENTRA_MEMBER_ID, ENTRA_REMOVE_MEMBER, ENTRA_REMOVE_MEMBER_FLAG, withIds,
} from '../../scim/idp-bodies';

export const SCIM_JSON = 'application/scim+json';

/** "Create User": externalId `id`, userName and work email made from it. */
export function entraCreateUser(id: string): string {
  return withIds(ENTRA_CREATE_USER, {
    '0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef': id,
    'Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee': `Test_User_${id}`,
    'Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff': `Test_User_${id}`,
  });
}

/** "Create Group" with our displayName and externalId (the document's example name is the word "displayName", also a key). */
export function entraCreateGroup(displayName: string, externalId: string): string {
  return JSON.stringify({ ...(JSON.parse(ENTRA_CREATE_GROUP) as object), displayName, externalId });
}

/** "Get User by query": the path (under the SCIM base) of a userName eq filter. */
export function entraUserByName(id: string): string {
  return `/Users?filter=${encodeURIComponent(`userName eq "Test_User_${id}"`)}`;
}

/** "Update Group [Add Members]" for one member. */
export function entraAddMember(userId: string): string {
  return withIds(ENTRA_ADD_MEMBER, { [ENTRA_MEMBER_ID]: userId });
}

/** "Update Group [Remove Members]" for one member. */
export function entraRemoveMember(userId: string): string {
  return withIds(ENTRA_REMOVE_MEMBER, { [ENTRA_MEMBER_ID]: userId });
}

/**
 * Entra's removal with the SCIM-compliant flag (aadOptscim062020), "Requests made to remove a group
 * member — With feature flag" (application-provisioning-config-problem-scim-compatibility).
 */
export function entraRemoveMemberByFilter(userId: string): string {
  return withIds(ENTRA_REMOVE_MEMBER_FLAG, { [ENTRA_FLAG_MEMBER_ID]: userId });
}

/** Setup only (not measured): a group created with its members in one RFC 7643 POST. */
export function groupWithMembers(displayName: string, memberIds: string[]): string {
  return JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName, members: memberIds.map((value) => ({ value })) });
}
