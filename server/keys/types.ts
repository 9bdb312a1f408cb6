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
  /** `app`: managed by the backend API (never shown to SCIM, names need not be unique). Default `scim`. */
  origin?: 'scim' | 'app';
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
  /** The current key version (1 until the first rotation). */
  keyVersion: number;
}

/** One key version of a group, as one member receives it. */
export interface GroupKeyVersionView {
  version: number;
  /** This version's membership key as JWE to this user's public key. */
  memberJwe: string;
  groupPublicJwk: JWK;
  /** This version's group private key as JWE under this version's membership key. */
  groupPrivateJwe: string;
}

/** A membership: the top-level fields are the current version (as before versions existed). */
export interface GroupMembershipView {
  groupId: string;
  displayName: string;
  /** The current version's membership key as JWE to this user's public key. */
  memberJwe: string;
  groupPublicJwk: JWK;
  /** The current version's group private key as JWE under its membership key. */
  groupPrivateJwe: string;
  /** The current key version. */
  keyVersion: number;
  /** Every version this member can open, newest first (the current one included). */
  versions: GroupKeyVersionView[];
}

/** Everything a signed-in user gets back; `passwordKey` is plaintext: caller zeroes it. */
export interface UserKeyBundle extends UserKeyView {
  userId: string;
  passwordKey: Buffer;
  groups: GroupMembershipView[];
}
