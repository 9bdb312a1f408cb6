/**
 * The one interface every KMS/HSM sits behind (after Google Tink's KmsClient + AEAD).
 * Associated data is never optional: every wrap is bound to a purpose and an owner, and unwrap
 * must be given the same context, recomputed from the authenticated caller.
 */

/** Associated data as string pairs. `purpose` is mandatory; keys match /^[a-z][a-z0-9_-]*$/. */
export type BindingContext = Readonly<{ purpose: string } & Record<string, string>>;

export interface WrapResult {
  /** Adapter-specific ciphertext, opaque to callers. */
  ciphertext: Buffer;
  /** The exact key version the provider used, when the provider versions keys. */
  keyVersion?: string;
}

export interface KmsAdapter {
  /** URI scheme this adapter serves, e.g. "local", "pkcs11", "aws-kms". */
  readonly scheme: string;
  wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult>;
  /**
   * Throws UnwrapRefusedError when the ciphertext does not authenticate under this key and
   * context, KmsUnavailableError for transient faults, KmsConfigurationError for the rest.
   */
  unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext, keyVersion?: string): Promise<Buffer>;
  /** Proves the key is usable end to end (used by /readyz and `doctor`). */
  check(keyUri: string): Promise<void>;
  /**
   * Present when the provider can re-encrypt natively (the plaintext never leaves it, e.g. AWS
   * ReEncrypt): the blob of `keyUri` comes back under `toKeyUri`, the same binding checked and
   * bound on both sides. Throws KmsConfigurationError when it cannot do so for these two keys
   * (another region, a sealed-binding RSA key, another Vault key): callers then unwrap and wrap.
   */
  rewrap?(keyUri: string, ciphertext: Uint8Array, context: BindingContext, toKeyUri: string, keyVersion?: string): Promise<WrapResult>;
  /** Present when the adapter can create keys (one KEK per user). Returns the new key's URI. */
  createKey?(label: string): Promise<string>;
  close(): Promise<void>;
}

/** Builds an adapter from the frozen config; loaded with `await import()` only when configured. */
export type AdapterFactory = (options: AdapterOptions) => Promise<KmsAdapter>;

export interface AdapterOptions {
  /** Settings for this adapter from config (paths, PINs, endpoints). */
  settings: Readonly<Record<string, unknown>>;
  /** Tells the operator what the adapter created or did at start-up (printed by serve). */
  notice?: (message: string) => void;
}

/** The scheme of a key URI: "pkcs11:token=..." → "pkcs11", "aws-kms://..." → "aws-kms". */
export function schemeOf(keyUri: string): string | undefined {
  const m = /^([a-z][a-z0-9+.-]*):/.exec(keyUri);
  return m?.[1];
}
