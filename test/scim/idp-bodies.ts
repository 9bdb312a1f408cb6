/**
 * Request bodies exactly as the identity providers' own documentation prints them (ids aside:
 * `withIds` swaps the documents' example ids for ours). Each constant cites its page.
 */

// Microsoft Learn, "Tutorial: Develop and plan provisioning for a SCIM endpoint in Microsoft Entra ID"
// https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups
// (source: MicrosoftDocs/entra-docs, docs/identity/app-provisioning/use-scim-to-provision-users-and-groups.md)
export const ENTRA_TUTORIAL = 'https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups';

/** #create-user (Request): `meta` and an empty `roles` alongside the profile. */
export const ENTRA_CREATE_USER = `{
    "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": true,
    "emails": [{
        "primary": true,
        "type": "work",
        "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com"
    }],
    "meta": {
        "resourceType": "User"
    },
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName"
    },
    "roles": []
}`;

/** ENTRA_CREATE_USER for `userName`, with an externalId of its own (ids aside, Entra's bytes). */
export const entraCreateUser = (userName: string, externalId = `ext-${userName}`): Record<string, unknown> => ({ ...JSON.parse(ENTRA_CREATE_USER), userName, externalId });

/** #disable-user (Request). */
export const ENTRA_DISABLE_USER = `{
    "Operations": [
        {
            "op": "Replace",
            "path": "active",
            "value": false
        }
    ],
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ]
}`;

/** #create-group (Request): the ADSCIM marker schema. */
export const ENTRA_CREATE_GROUP = `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {
        "resourceType": "Group"
    }
}`;

/** #update-group-add-members (Request). */
export const ENTRA_ADD_MEMBER = `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Add",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}`;

/** #update-group-remove-members (Request): `$ref: null` next to the value. */
export const ENTRA_REMOVE_MEMBER = `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Remove",
        "path": "members",
        "value": [{
            "$ref": null,
            "value": "f648f8d5ea4e4cd38e9c"
        }]
    }]
}`;
export const ENTRA_MEMBER_ID = 'f648f8d5ea4e4cd38e9c';

/** "Example 2. Provision a user": nulls on multi-valued attributes (and the enterprise URN as printed there). */
export const ENTRA_PROVISION_USER = `{
   "schemas":
   [
     "urn:ietf:params:scim:schemas:core:2.0:User",
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
   "externalId":"jyoung",
   "userName":"jyoung@testuser.com",
   "active":true,
   "addresses":null,
   "displayName":"Joy Young",
   "emails": [
     {
       "type":"work",
       "value":"jyoung@Contoso.com",
       "primary":true}],
   "meta": {
     "resourceType":"User"},
    "name":{
     "familyName":"Young",
     "givenName":"Joy"},
   "phoneNumbers":null,
   "preferredLanguage":null,
   "title":null,
   "department":null,
   "manager":null}`;

/** "Example 5. Request from Microsoft Entra ID to an SCIM endpoint to update a user": manager by bare path. */
export const ENTRA_ADD_MANAGER = `{
    "schemas": 
    [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations":
    [
      {
        "op":"Add",
        "path":"manager",
        "value":
          [
            {
              "$ref":"http://.../scim/Users/00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
              "value":"00aa00aa-bb11-cc22-dd33-44ee44ee44ee"}]}]}`;
export const ENTRA_MANAGER_ID = '00aa00aa-bb11-cc22-dd33-44ee44ee44ee';

/** #update-user-multi-valued-properties (Request): the work email by filter path, capitalised ops. */
export const ENTRA_UPDATE_MULTI_VALUED = `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [
            {
            "op": "Replace",
            "path": "emails[type eq \\"work\\"].value",
            "value": "updatedEmail@microsoft.com"
            },
            {
            "op": "Replace",
            "path": "name.familyName",
            "value": "updatedFamilyName"
            }
    ]
}`;

/** #update-user-single-valued-properties (Request). */
export const ENTRA_REPLACE_USERNAME = `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "Replace",
        "path": "userName",
        "value": "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com"
    }]
}`;

// Microsoft Learn, "Known issues and resolutions with SCIM 2.0 protocol compliance of the Microsoft
// Entra user provisioning service" (flag aadOptscim062020)
// https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility
export const ENTRA_COMPAT = 'https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility';

/** "Requests made to disable users", without feature flag: `active` as the string "False". */
export const ENTRA_DISABLE_USER_NO_FLAG = `{
  "schemas": [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"
  ],
  "Operations": [
      {
          "op": "Replace",
          "path": "active",
          "value": "False"
      }
  ]
}`;

/** "Requests to replace multiple attributes", without feature flag. */
export const ENTRA_REPLACE_MULTIPLE_NO_FLAG = `{
  "schemas": [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"
  ],
  "Operations": [
      {
          "op": "Replace",
          "path": "displayName",
          "value": "Pvlo"
      },
      {
          "op": "Replace",
          "path": "emails[type eq \\"work\\"].value",
          "value": "TestBcwqnm@test.microsoft.com"
      },
      {
          "op": "Replace",
          "path": "name.givenName",
          "value": "Gtfd"
      },
      {
          "op": "Replace",
          "path": "name.familyName",
          "value": "Pkqf"
      },
      {
          "op": "Replace",
          "path": "externalId",
          "value": "Eqpj"
      },
      {
          "op": "Replace",
          "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber",
          "value": "Eqpj"
      }
  ]
}`;

/** "Requests to replace multiple attributes", with feature flag: a pathless replace with dotted and URN-prefixed keys. */
export const ENTRA_REPLACE_MULTIPLE_FLAG = `{
  "schemas": [
      "urn:ietf:params:scim:api:messages:2.0:PatchOp"
  ],
  "Operations": [
      {
          "op": "replace",
          "path": "emails[type eq \\"work\\"].value",
          "value": "TestMhvaes@test.microsoft.com"
      },
      {
          "op": "replace",
          "value": {
              "displayName": "Bjfe",
              "name.givenName": "Kkom",
              "name.familyName": "Unua",
              "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "Aklq"
          }
      }
  ]
}`;

/** "Requests made to remove a group member", with feature flag. */
export const ENTRA_REMOVE_MEMBER_FLAG = `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "remove",
            "path": "members[value eq \\"7f4bc1a3-285e-48ae-8202-5accb43efb0e\\"]"
        }
    ]
}`;
export const ENTRA_FLAG_MEMBER_ID = '7f4bc1a3-285e-48ae-8202-5accb43efb0e';

/** "Requests made to remove a group member", without feature flag. */
export const ENTRA_REMOVE_MEMBER_NO_FLAG = `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Remove",
            "path": "members",
            "value": [
                {
                    "value": "u1091"
                }
            ]
        }
    ]
}`;
export const ENTRA_NO_FLAG_MEMBER_ID = 'u1091';

/**
 * Composed, not printed as one body by Microsoft: Entra's default work-address and email mappings
 * (the tutorial's attribute table: `addresses[type eq "work"].streetAddress`, `.postalCode`, …,
 * `emails[type eq "work"].value`), one capitalised "Add" per mapped attribute in one PATCH — the
 * op shape Microsoft staff quote from real Entra traffic in
 * https://learn.microsoft.com/en-us/answers/questions/120490/patch-request-in-scim-with-azure-ad
 * (`{"op":"Add","path":"addresses[type eq \"work\"].formatted","value":"Columbus"}`). Values are ours.
 */
export const ENTRA_ADDRESS_AND_EMAIL = `{
    "schemas": [
        "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ],
    "Operations": [
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].streetAddress",
            "value": "1 Microsoft Way"
        },
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].locality",
            "value": "Redmond"
        },
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].postalCode",
            "value": "98052"
        },
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].region",
            "value": "WA"
        },
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].country",
            "value": "US"
        },
        {
            "op": "Add",
            "path": "addresses[type eq \\"work\\"].formatted",
            "value": "Columbus"
        },
        {
            "op": "Add",
            "path": "emails[type eq \\"work\\"].value",
            "value": "joy@contoso.com"
        },
        {
            "op": "Add",
            "path": "emails[type eq \\"work\\"].display",
            "value": "Joy Young"
        }
    ]
}`;

// Okta, "SCIM 2.0 Protocol Reference"
// https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20
export const OKTA_SCIM20 = 'https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20';

/** "Create the User": printed with no Content-Type header. */
export const OKTA_CREATE_USER = `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
    "userName": "test.user@okta.local",
    "name": {
        "givenName": "Test",
        "familyName": "User"
    },
    "emails": [{
        "primary": true,
        "value": "test.user@okta.local",
        "type": "work"
    }],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": true
}`;

/** "Create Groups". */
export const OKTA_CREATE_GROUP = `{
    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
    "displayName": "Test SCIMv2",
    "members": []
}`;

/** "Update specific Group membership": remove by filter, add with display. */
export const OKTA_MEMBERSHIP = `{
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{
            "op": "remove",
            "path": "members[value eq \\"89bb1940-b905-4575-9e7f-6f887cfb368e\\"]"
            },
            {
            "op": "add",
            "path": "members",
            "value": [{
                "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
                "display": "test.user@okta.local"
            }]
        }]
    }`;
export const OKTA_REMOVED_ID = '89bb1940-b905-4575-9e7f-6f887cfb368e';
export const OKTA_ADDED_ID = '23a35c27-23d3-4c03-b4c5-6443c09e7173';

/** "Update a specific Group name": a pathless replace whose value carries the group's own id (sent with every membership update). */
export const OKTA_RENAME_GROUP = `{
    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
    "Operations": [{
        "op": "replace",
        "value": {
            "id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b",
            "displayName": "Test SCIMv2"
        }
    }]
}`;
export const OKTA_GROUP_ID = 'abf4dd94-a4c0-4f67-89c9-76b03340cb9b';

/** "Update specific Group membership", the full push: replace of `members`. */
export const OKTA_REPLACE_MEMBERS = `{
  "schemas": [
    "urn:ietf:params:scim:api:messages:2.0:PatchOp"
  ],
  "Operations": [
    {
      "op": "replace",
      "path": "members",
      "value": [
        {
          "value": "23a35c27-23d3-4c03-b4c5-6443c09e7173",
          "display": "test.user@okta.local"
        },
        {
          "value": "89bb1940-b905-4575-9e7f-6f887cfb368e",
          "display": "test.user@okta.local"
        }
      ]
    }
  ]
}`;

/** Replaces the documents' example ids with real ones, leaving every other byte as printed. */
export function withIds(body: string, ids: Record<string, string>): string {
  let out = body;
  for (const [from, to] of Object.entries(ids)) out = out.split(from).join(to);
  return out;
}
