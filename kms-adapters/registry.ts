import type { AdapterFactory, AdapterOptions, BindingContext, KmsAdapter } from './types';
import { schemeOf } from './types';
import { validateContext } from './associated-data';
import { decodeEnvelope, encodeEnvelope } from './envelope';
import { ConfigError, UnknownKekError } from './errors';

/**
 * Explicit list of adapters, by URI scheme. No auto-discovery: an adapter's module (and its SDK)
 * is imported only when a configured key URI needs it.
 */
export const ADAPTER_MODULES: Readonly<Record<string, () => Promise<{ createAdapter: AdapterFactory; assertKeyUri: (keyUri: string) => void }>>> = {
  local: () => import('./local.js'),
  pkcs11: () => import('./pkcs11.js'),
  'aws-kms': () => import('./aws-kms.js'),
  'gcp-kms': () => import('./gcp-kms.js'),
  'azure-kv': () => import('./azure-kv.js'),
  'vault-transit': () => import('./vault-transit.js'),
};

export interface RegistryConfig {
  /** KEK used for new wraps. */
  kekUri: string;
  /** Older KEKs whose blobs must still open (rotation). */
  previousKekUris: readonly string[];
  /** Per-scheme adapter settings, e.g. { local: { masterKeyFile }, pkcs11: { module, pin } }. */
  adapters: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  notice?: AdapterOptions['notice'];
}

export class KmsRegistry {
  private readonly configuredKeks: ReadonlySet<string>;

  /**
   * `configuredKekUris`: the KEKs of this deployment (current and previous). An envelope a client
   * brings may name any URI; only these (and the caller's own, see `unwrap`) are ever contacted.
   */
  constructor(
    private readonly adapters: ReadonlyMap<string, KmsAdapter>,
    configuredKekUris: Iterable<string>,
  ) {
    this.configuredKeks = new Set(configuredKekUris);
  }

  get schemes(): string[] {
    return [...this.adapters.keys()];
  }

  forUri(keyUri: string): KmsAdapter {
    const scheme = schemeOf(keyUri);
    const adapter = scheme ? this.adapters.get(scheme) : undefined;
    if (!adapter) throw new UnknownKekError(`no configured key management adapter serves key URI scheme "${scheme ?? '?'}"`);
    return adapter;
  }

  /** Wraps under `kekUri` and returns a self-describing envelope (docs/wire-formats.md). */
  async wrap(kekUri: string, plaintext: Uint8Array, context: BindingContext): Promise<string> {
    validateContext(context);
    const { ciphertext, keyVersion } = await this.forUri(kekUri).wrap(kekUri, plaintext, context);
    return encodeEnvelope({ kekUri, keyVersion, ciphertext });
  }

  /**
   * Opens an envelope that came from outside (a client): its KEK must be one of this
   * deployment's configured KEKs or one of `alsoTrusted` (e.g. the caller's own per-user KEK),
   * else it is refused before any KMS is contacted — a client-chosen URI must never make this
   * server call a host of the client's choosing with its KMS credentials.
   * The caller owns the returned buffer and must zero it.
   */
  async unwrap(envelope: string, context: BindingContext, alsoTrusted: readonly string[] = []): Promise<Buffer> {
    const kekUri = decodeEnvelope(envelope).kekUri;
    if (!this.configuredKeks.has(kekUri) && !alsoTrusted.includes(kekUri)) {
      throw new UnknownKekError('the wrapped key names a KEK this server does not use');
    }
    return this.unwrapStored(envelope, context);
  }

  /** Opens an envelope read from this server's own database, whose KEK this server recorded. */
  async unwrapStored(envelope: string, context: BindingContext): Promise<Buffer> {
    validateContext(context);
    const e = decodeEnvelope(envelope);
    return this.forUri(e.kekUri).unwrap(e.kekUri, e.ciphertext, context, e.keyVersion);
  }

  kekUriOf(envelope: string): string {
    return decodeEnvelope(envelope).kekUri;
  }

  async check(kekUri: string): Promise<void> {
    await this.forUri(kekUri).check(kekUri);
  }

  canCreateKeys(kekUri: string): boolean {
    return typeof this.forUri(kekUri).createKey === 'function';
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.adapters.values()].map((a) => a.close()));
  }
}

/**
 * Loads the adapters the configured KEKs need, after checking every configured URI's form, so a
 * typo stops start-up with the setting named instead of surfacing at the first key operation.
 */
export async function buildRegistry(config: RegistryConfig): Promise<KmsRegistry> {
  const configured = [
    ...[config.kekUri].map((uri) => ({ uri, setting: 'CS_KEK_URI' })),
    ...config.previousKekUris.map((uri) => ({ uri, setting: 'CS_PREVIOUS_KEK_URIS' })),
  ];
  const schemes = new Set<string>();
  for (const { uri, setting } of configured) {
    const scheme = schemeOf(uri);
    if (!scheme || !ADAPTER_MODULES[scheme]) {
      throw new ConfigError(`${setting}: "${uri}" has no adapter; key URIs start with ${Object.keys(ADAPTER_MODULES).map((k) => `${k}:`).join(', ')}`);
    }
    schemes.add(scheme);
  }
  const adapters = new Map<string, KmsAdapter>();
  try {
    for (const scheme of schemes) {
      const { createAdapter, assertKeyUri } = await ADAPTER_MODULES[scheme]();
      for (const { uri, setting } of configured.filter((c) => schemeOf(c.uri) === scheme)) {
        try {
          assertKeyUri(uri);
        } catch (err) {
          throw new ConfigError(`${setting}: ${(err as Error).message}`);
        }
      }
      adapters.set(scheme, await createAdapter({ settings: config.adapters[scheme] ?? {}, notice: config.notice }));
    }
  } catch (err) {
    await Promise.allSettled([...adapters.values()].map((a) => a.close()));
    throw err;
  }
  return new KmsRegistry(adapters, [config.kekUri, ...config.previousKekUris]);
}
