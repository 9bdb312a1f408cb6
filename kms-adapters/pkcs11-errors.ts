import { KmsConfigurationError, KmsError, KmsUnavailableError } from './errors';

/**
 * Maps Cryptoki return values (pkcs11js throws Pkcs11Error with message "CKR_…") to our typed
 * errors. Which codes mean what is a judgement call per vendor; the sets below say why.
 */

/** The token or our sessions with it are gone or broken: retry later, after reopening sessions. */
const TOKEN_FAULTS = new Set([
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_MEMORY',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED',
  'CKR_SLOT_ID_INVALID',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_SESSION_COUNT',
  'CKR_USER_NOT_LOGGED_IN',
  'CKR_CRYPTOKI_NOT_INITIALIZED',
  'CKR_HOST_MEMORY',
  'CKR_FUNCTION_CANCELED',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
]);

/** The configured PIN does not work; retrying would only burn the token's PIN retry counter. */
export const PIN_FAULTS = new Set(['CKR_PIN_INCORRECT', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE', 'CKR_PIN_EXPIRED', 'CKR_PIN_LOCKED']);

/** The key handle is stale or the key cannot do AES-GCM: forget the cached handle. */
export const KEY_FAULTS = new Set([
  'CKR_KEY_HANDLE_INVALID',
  'CKR_OBJECT_HANDLE_INVALID',
  'CKR_KEY_FUNCTION_NOT_PERMITTED',
  'CKR_KEY_TYPE_INCONSISTENT',
  'CKR_KEY_SIZE_RANGE',
  'CKR_MECHANISM_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
]);

/**
 * What C_Decrypt returns when the GCM tag does not verify. The standard says
 * CKR_ENCRYPTED_DATA_INVALID (3.0 adds CKR_AEAD_DECRYPT_FAILED); SoftHSM2 2.6 returns
 * CKR_GENERAL_ERROR for a tag mismatch, so that counts too, but only after the session proved
 * healthy (see Pkcs11Adapter.unwrap), so a dying token still reads as unavailable.
 */
export const DECRYPT_REFUSALS = new Set([
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_DATA_INVALID',
  'CKR_DATA_LEN_RANGE',
  'CKR_AEAD_DECRYPT_FAILED',
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
]);

/** "CKR_…" for errors thrown by pkcs11js, undefined for anything else. */
export function ckrOf(err: unknown): string | undefined {
  const message = err instanceof Error ? err.message : '';
  return /^CKR_[A-Z0-9_]+$/.test(message) ? message : undefined;
}

export type FaultKind = 'token' | 'key' | 'pin' | 'other';

export function faultKind(ckr: string): FaultKind {
  if (TOKEN_FAULTS.has(ckr)) return 'token';
  if (KEY_FAULTS.has(ckr)) return 'key';
  if (PIN_FAULTS.has(ckr)) return 'pin';
  return 'other';
}

/** Typed error for a failed call; `where` names the operation, token and key for operators. */
export function toKmsError(err: unknown, where: string): unknown {
  if (err instanceof KmsError) return err;
  const ckr = ckrOf(err);
  if (!ckr) return err; // not from the token (a bug): let it surface as a generic 500
  switch (faultKind(ckr)) {
    case 'token':
      return new KmsUnavailableError(`pkcs11: ${where}: ${ckr}`, { cause: err });
    case 'pin':
      return new KmsConfigurationError(`pkcs11: ${where}: login refused (${ckr}); check CS_PKCS11_PIN or CS_PKCS11_PIN_FILE`, { cause: err });
    default:
      return new KmsConfigurationError(`pkcs11: ${where}: ${ckr}`, { cause: err });
  }
}
