import type { JWK } from 'jose';

/** Who asked, for the audit trail. */
export interface OpContext {
  /** e.g. "scim:token-id", "user:<id>", "cli". */
  actor: string;
  requestId?: string;
}

export interface NewUser {
  userName: string;
  externalId?: string | null;
  displayName?: string | null;
  email?: string | null;
  givenName?: string | null;
  familyName?: string | null;
  active?: boolean;
  /** Profile attributes (the SCIM resource); stored as JSON. Never key material. */
  attributes?: Record<string, unknown>;
}

export interface NewGroup {
  displayName: string;
  externalId?: string | null;
  attributes?: Record<string, unknown>;
  memberIds?: string[];
}

/** The encrypted and public forms of a user's keys: safe to hand to the cloud service. */
export interface UserKeyView {
  keyAlg: string;
  publicJwk: JWK;
  privateJwe: string;
  wrappedPasswordKey: string;
  kekUri: string;
}

export interface GroupKeyView {
  keyAlg: string;
  publicJwk: JWK;
  privateJwe: string;
  wrappedMembershipKey: string;
  kekUri: string;
}

export interface GroupMembershipView {
  groupId: string;
  displayName: string;
  /** The membership key as JWE to this user's public key. */
  memberJwe: string;
  groupPublicJwk: JWK;
  /** The group private key as JWE under the membership key. */
  groupPrivateJwe: string;
}

/** Everything a signed-in user gets back; `passwordKey` is plaintext: caller zeroes it. */
export interface UserKeyBundle extends UserKeyView {
  userId: string;
  passwordKey: Buffer;
  groups: GroupMembershipView[];
}
