import { UnknownKekError } from './errors';

/**
 * RFC 7512 key URIs for the PKCS#11 adapter: `pkcs11:token=LABEL;object=KEYLABEL`, optionally with
 * `type=secret-key` and `slot-id=N` (decimal). Values may be percent-encoded.
 *
 * Deliberately strict: an attribute we do not understand could be meant to narrow the key choice,
 * so ignoring it might pick the wrong key; it is refused instead. Query attributes (`?pin-value=`,
 * `?module-path=`) are refused too: a KEK URI is stored in every envelope, so it must never carry a
 * PIN or point at another library. Error messages never echo the URI, since it might hold a PIN.
 */
export interface Pkcs11KeyRef {
  /** CKA_LABEL of the token (CK_TOKEN_INFO.label, at most 32 bytes). */
  token: string;
  /** CKA_LABEL of the secret key. */
  object: string;
  /** Decimal slot id, when the URI pins the slot. */
  slotId?: string;
}

const ATTRIBUTES = new Set(['token', 'object', 'type', 'slot-id']);
// RFC 7512 pk11-pchar: unreserved / pk11-path-res-avail / pct-encoded (";" separates attributes).
const VALUE = /^(?:[A-Za-z0-9\-._~:[\]@!$&'()*+,=]|%[0-9A-Fa-f]{2})*$/;
const MAX_URI = 1024;
const MAX_TOKEN_BYTES = 32;
const MAX_OBJECT_BYTES = 255;

function refuse(why: string): never {
  throw new UnknownKekError(`not a usable pkcs11 key URI: ${why} (expected pkcs11:token=LABEL;object=KEYLABEL)`);
}

export function parsePkcs11Uri(keyUri: string): Pkcs11KeyRef {
  if (typeof keyUri !== 'string' || !keyUri.startsWith('pkcs11:')) refuse('it does not start with "pkcs11:"');
  if (keyUri.length > MAX_URI) refuse('it is too long');
  const path = keyUri.slice('pkcs11:'.length);
  if (/[?#]/.test(path)) refuse('query attributes (pin-value, module-path, ...) are not accepted; configure CS_PKCS11_MODULE and CS_PKCS11_PIN instead');
  const seen = new Map<string, string>();
  for (const part of path.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) refuse('each attribute must be name=value');
    const name = part.slice(0, eq);
    const raw = part.slice(eq + 1);
    if (!ATTRIBUTES.has(name)) refuse(`attribute "${name.slice(0, 32).replace(/[^A-Za-z0-9-]/g, '?')}" is not supported (token, object, type, slot-id)`);
    if (seen.has(name)) refuse(`attribute "${name}" appears twice`);
    if (!VALUE.test(raw)) refuse(`the value of "${name}" has a character that must be percent-encoded`);
    let value: string;
    try {
      value = decodeURIComponent(raw);
    } catch {
      refuse(`the value of "${name}" is not valid percent-encoded UTF-8`);
    }
    seen.set(name, value);
  }
  const token = seen.get('token');
  const object = seen.get('object');
  if (!token) refuse('token= is missing or empty');
  if (!object) refuse('object= is missing or empty');
  if (Buffer.byteLength(token, 'utf8') > MAX_TOKEN_BYTES) refuse(`a token label has at most ${MAX_TOKEN_BYTES} bytes`);
  if (Buffer.byteLength(object, 'utf8') > MAX_OBJECT_BYTES) refuse(`an object label has at most ${MAX_OBJECT_BYTES} bytes`);
  if (/[\u0000-\u001f\u007f]/.test(token + object)) refuse('labels must not contain control characters');
  const type = seen.get('type');
  if (type !== undefined && type !== 'secret-key') refuse('type must be secret-key (AES key encryption keys)');
  const slotId = seen.get('slot-id');
  if (slotId !== undefined && !/^(0|[1-9][0-9]{0,19})$/.test(slotId)) refuse('slot-id must be a decimal number');
  return slotId === undefined ? { token, object } : { token, object, slotId };
}

/** Canonical URI for a key: percent-encodes everything outside unreserved characters. */
export function formatPkcs11Uri(ref: Pkcs11KeyRef): string {
  const enc = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const slot = ref.slotId === undefined ? '' : `;slot-id=${ref.slotId}`;
  return `pkcs11:token=${enc(ref.token)};object=${enc(ref.object)};type=secret-key${slot}`;
}
