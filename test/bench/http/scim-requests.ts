/**
 * SCIM request bodies as Microsoft Entra ID sends them, copied from Microsoft's SCIM tutorial
 * (https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups,
 * sections "Create User", "Get User by query", "Update Group [Add Members]" and
 * "Update Group [Remove Members]"), byte for byte in shape and order; only the identifiers are
 * substituted, since every request of a benchmark must name a different user.
 */
export const SCIM_JSON = 'application/scim+json';

/** "Create User": userName/externalId/email made from `id`. */
export function entraCreateUser(id: string): string {
  return JSON.stringify({
    schemas: ['urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'],
    externalId: id,
    userName: `Test_User_${id}`,
    active: true,
    emails: [{ primary: true, type: 'work', value: `Test_User_${id}@testuser.com` }],
    meta: { resourceType: 'User' },
    name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
    roles: [],
  });
}

/** "Get User by query": the path (under the SCIM base) of a userName eq filter. */
export function entraUserByName(id: string): string {
  return `/Users?filter=${encodeURIComponent(`userName eq "Test_User_${id}"`)}`;
}

/** "Update Group [Add Members]" for one member. */
export function entraAddMember(userId: string): string {
  return JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Add', path: 'members', value: [{ $ref: null, value: userId }] }] });
}

/** "Update Group [Remove Members]" for one member. */
export function entraRemoveMember(userId: string): string {
  return JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'Remove', path: 'members', value: [{ $ref: null, value: userId }] }] });
}

/**
 * Entra's removal with the SCIM-compliant flag (aadOptscim062020), "Requests made to remove a group
 * member — With feature flag", from
 * https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
 */
export function entraRemoveMemberByFilter(userId: string): string {
  return JSON.stringify({ schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'], Operations: [{ op: 'remove', path: `members[value eq "${userId}"]` }] });
}

/** Setup only (not measured): a group created with its members in one RFC 7643 POST. */
export function groupWithMembers(displayName: string, memberIds: string[]): string {
  return JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName, members: memberIds.map((value) => ({ value })) });
}
