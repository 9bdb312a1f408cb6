import { MalformedEnvelopeError } from './errors';

/**
 * Envelope format v1 — a self-describing wrapped key:
 *
 *   cs1.<base64url(KEK URI)>.<base64url(key version, may be empty)>.<base64url(adapter ciphertext)>
 *
 * The version prefix comes first so a reader can dispatch before parsing the rest. The KEK URI
 * picks the adapter; the key version lets a rotated provider key still open old blobs. The
 * associated data is not in the envelope: it is recomputed from the authenticated caller.
 * See docs/wire-formats.md. A new format gets a new prefix; this one never changes.
 */
export const ENVELOPE_V1 = 'cs1';

export interface Envelope {
  version: typeof ENVELOPE_V1;
  kekUri: string;
  keyVersion?: string;
  ciphertext: Buffer;
}

const B64U = /^[A-Za-z0-9_-]*$/;
const MAX_LENGTH = 64 * 1024;

export function encodeEnvelope(e: Omit<Envelope, 'version'>): string {
  return [
    ENVELOPE_V1,
    Buffer.from(e.kekUri, 'utf8').toString('base64url'),
    Buffer.from(e.keyVersion ?? '', 'utf8').toString('base64url'),
    e.ciphertext.toString('base64url'),
  ].join('.');
}

export function decodeEnvelope(text: unknown): Envelope {
  if (typeof text !== 'string' || text.length === 0) throw new MalformedEnvelopeError('wrapped key must be a non-empty string');
  if (text.length > MAX_LENGTH) throw new MalformedEnvelopeError('wrapped key is too long');
  const parts = text.split('.');
  if (parts[0] !== ENVELOPE_V1) throw new MalformedEnvelopeError(`unknown wrapped key format (expected prefix "${ENVELOPE_V1}.")`);
  if (parts.length !== 4 || !parts.slice(1).every((p) => B64U.test(p))) {
    throw new MalformedEnvelopeError('wrapped key is not four base64url fields separated by dots');
  }
  const kekUri = Buffer.from(parts[1], 'base64url').toString('utf8');
  const keyVersion = Buffer.from(parts[2], 'base64url').toString('utf8');
  const ciphertext = Buffer.from(parts[3], 'base64url');
  if (kekUri.length === 0 || ciphertext.length === 0) throw new MalformedEnvelopeError('wrapped key names no KEK or carries no ciphertext');
  return { version: ENVELOPE_V1, kekUri, keyVersion: keyVersion || undefined, ciphertext };
}
