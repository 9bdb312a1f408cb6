/**
 * scimmy set-up shared by every /scim/v2 app in the process: the core User (with the Enterprise
 * User extension) and Group schemas, our read-only key-material extensions, the resource types,
 * and the ServiceProviderConfig (which advertises only what really works here).
 * scimmy keeps this in static state, so it is configured once, idempotently.
 */
import SCIMMY from 'scimmy';

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const USER_KEYS_SCHEMA = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:UserKeys';
export const GROUP_KEYS_SCHEMA = 'urn:ietf:params:scim:schemas:extension:cryptoserver:2.0:GroupKeys';
export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/** Page size when the client gives no count, and the largest page we serve. */
export const DEFAULT_COUNT = 100;
export const MAX_COUNT = 1000;

const ro = (description: string, extra: Record<string, unknown> = {}) => ({ mutable: false, description, ...extra });

function keyAttributes(wrappedName: string, wrappedDescription: string): SCIMMY.Types.Attribute[] {
  return [
    new SCIMMY.Types.Attribute('string', 'keyAlgorithm', ro('Algorithm of the key pair, e.g. RSA-OAEP-256 or ECDH-ES+A256KW.')),
    new SCIMMY.Types.Attribute('string', 'publicKeyJwk', ro('The public key as a JSON Web Key (RFC 7517), serialised as a JSON string.')),
    new SCIMMY.Types.Attribute(
      'string',
      'encryptedPrivateKey',
      ro(`The private key as a JWE compact serialisation (RFC 7516), encrypted under the ${wrappedName === 'wrappedPasswordKey' ? 'password' : 'membership'} key.`, {
        caseExact: true,
      }),
    ),
    new SCIMMY.Types.Attribute('string', wrappedName, ro(wrappedDescription, { caseExact: true })),
    new SCIMMY.Types.Attribute('string', 'kekUri', ro('URI of the key-encryption key in the company KMS that wraps this key (a reference, never key material).', { caseExact: true })),
  ];
}

export class UserKeysExtension extends SCIMMY.Types.Schema {
  static readonly #definition = new SCIMMY.Types.SchemaDefinition(
    'UserKeys',
    USER_KEYS_SCHEMA,
    "Crypto Server: the user's key material in encrypted form only (read-only; never a plaintext key)",
    keyAttributes('wrappedPasswordKey', "The user's password key, wrapped by the KEK and bound to this user (versioned envelope)."),
  );
  static override get id(): string {
    return UserKeysExtension.#definition.id;
  }
  static override get definition(): SCIMMY.Types.SchemaDefinition {
    return UserKeysExtension.#definition;
  }
}

export class GroupKeysExtension extends SCIMMY.Types.Schema {
  static readonly #definition = new SCIMMY.Types.SchemaDefinition(
    'GroupKeys',
    GROUP_KEYS_SCHEMA,
    "Crypto Server: the group's key material in encrypted form only (read-only; never a plaintext key)",
    [
      ...keyAttributes('wrappedMembershipKey', "The group's membership key, wrapped by the KEK and bound to this group (versioned envelope)."),
      new SCIMMY.Types.Attribute('integer', 'keyVersion', ro('The current key version: 1 at creation, one more at each rotation (docs/keys.md). The other attributes are this version.')),
      new SCIMMY.Types.Attribute(
        'complex',
        'memberKeys',
        // Output-only rather than mutable:false: scimmy cannot re-coerce an immutable multi-valued
        // attribute inside an extension. Inbound values are dropped either way (idp-quirks.ts).
        {
          description: "Per member: the group's membership key encrypted to that member's public key (JWE compact). Read-only.",
          multiValued: true,
          returned: 'request',
          direction: 'out',
        },
        [
          // Sub-attributes inherit read-only from memberKeys (scimmy rejects re-coercing immutable sub-attributes).
          new SCIMMY.Types.Attribute('string', 'value', { caseExact: true, description: 'The member user id.' }),
          new SCIMMY.Types.Attribute('string', 'jwe', { caseExact: true, description: 'JWE compact serialisation of the membership key for this member.' }),
        ],
      ),
    ],
  );
  static override get id(): string {
    return GroupKeysExtension.#definition.id;
  }
  static override get definition(): SCIMMY.Types.SchemaDefinition {
    return GroupKeysExtension.#definition;
  }
}

let configured = false;

export function configureScimmy(): void {
  if (configured) return;
  configured = true;
  SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false).extend(UserKeysExtension, false));
  SCIMMY.Resources.declare(SCIMMY.Resources.Group.extend(GroupKeysExtension, false));
  SCIMMY.Config.set({
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_COUNT },
    changePassword: { supported: false },
    sort: { supported: true },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'Bearer token',
        description: 'A token created with `crypto-server token create --scope scim`, sent as "Authorization: Bearer <token>".',
        specUri: 'https://www.rfc-editor.org/rfc/rfc6750',
        primary: true,
      },
    ],
  });
}

configureScimmy();

export { SCIMMY };
