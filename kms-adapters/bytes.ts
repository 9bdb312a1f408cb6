/**
 * Copies plaintext bytes an SDK handed us into a Buffer we own, and zeroes the SDK's copy, so
 * only one copy of a key stays in memory (and the caller zeroes that one after use).
 */
export function takeBytes(src: Uint8Array): Buffer {
  const out = Buffer.from(src);
  src.fill(0);
  return out;
}
