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

/**
 * Input limits (enforced in limits.ts, advertised in /Schemas, documented in docs/scim.md).
 * Column-backed strings get their column's width; the stored attribute JSON must fit MariaDB's
 * TEXT (65,535 bytes) with room for keys and group references in the same outbox event.
 */
export const LIMITS = {
  /** Values per multi-valued attribute (emails, phoneNumbers, addresses, …); group members are not counted. */
  maxValues: 100,
  /** Characters of any string attribute without a column of its own. */
  maxStringLength: 4096,
  /** UTF-8 bytes of a resource's stored attributes (scim_attributes). */
  maxAttributeBytes: 32_768,
} as const;

/** Characters allowed per column-backed attribute (lower-case path → limit), by resource type. */
export const COLUMN_LIMITS: Readonly<Record<'User' | 'Group', Readonly<Record<string, number>>>> = {
  User: { username: 255, externalid: 255, displayname: 255, 'name.givenname': 255, 'name.familyname': 255, 'emails.value': 320 },
  Group: { displayname: 255, externalid: 255 },
};

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

/** Appends our limits to the attribute descriptions served by /Schemas, so IdP admins can see them. */
function advertiseLimits(): void {
  const describe = (a: SCIMMY.Types.Attribute, text: string) => {
    const config = a.config as { description?: string };
    config.description = `${config.description ?? ''} ${text}`.trim();
  };
  const isString = (a: SCIMMY.Types.Attribute) => ['string', 'reference', 'binary'].includes(String(a.type));
  const strings = (max: number) => `Crypto Server: at most ${max} characters; NUL characters are refused.`;
  const definitions = [
    ['User', SCIMMY.Schemas.User.definition],
    ['Group', SCIMMY.Schemas.Group.definition],
    ['User', SCIMMY.Schemas.EnterpriseUser.definition],
  ] as const;
  for (const [kind, definition] of definitions) {
    for (const attribute of definition.attributes) {
      if (!(attribute instanceof SCIMMY.Types.Attribute) || attribute.config.mutable === false) continue;
      const name = attribute.name.toLowerCase();
      if (attribute.config.multiValued && name !== 'members') describe(attribute, `Crypto Server: at most ${LIMITS.maxValues} values.`);
      if (isString(attribute)) describe(attribute, strings(COLUMN_LIMITS[kind][name] ?? LIMITS.maxStringLength));
      for (const sub of (attribute.subAttributes ?? []) as SCIMMY.Types.Attribute[]) {
        if (isString(sub)) describe(sub, strings(COLUMN_LIMITS[kind][`${name}.${sub.name.toLowerCase()}`] ?? LIMITS.maxStringLength));
      }
    }
  }
}

export function configureScimmy(): void {
  if (configured) return;
  configured = true;
  advertiseLimits();
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
