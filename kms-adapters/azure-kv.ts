import { CryptographyClient, KeyClient, type CryptographyClientOptions } from '@azure/keyvault-keys';
import { DefaultAzureCredential } from '@azure/identity';
import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { canonicalContext, validateContext } from './associated-data';
import { openSealed, sealContext } from './sealed-binding';
import { checkAdapter } from './check';
import { takeBytes } from './bytes';
import { describeError, type ErrorClass, isNetworkError, Resilience, resilienceSettings } from './resilience';
import { KmsConfigurationError, UnknownKekError, UnwrapRefusedError } from './errors';

/**
 * `azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION]` (also `*.managedhsm.azure.net`).
 *
 * RSA / RSA-HSM keys (Key Vault): RSA-OAEP-256 wrapKey with SHA-256(canonicalContext) sealed in
 * front of the key (RSA-OAEP has no associated data). oct-HSM keys (Managed HSM): A256GCM
 * encrypt with additionalAuthenticatedData = canonicalContext. The key version used is recorded
 * in the ciphertext and returned as keyVersion, so blobs keep opening after the key rotates:
 *
 *   0x01 | len | version | RSA-OAEP-256 ciphertext
 *   0x02 | len | version | iv(12) | tag(16) | AES-GCM ciphertext
 *
 * Credentials: DefaultAzureCredential (managed identity, workload identity, env, CLI).
 */
/** The SDK's own credential type (DefaultAzureCredential in production, a static one in tests). */
export type TokenCredential = ConstructorParameters<typeof KeyClient>[1];

export interface AzureKeyVaultClient {
  /** Latest version when `version` is undefined. */
  getKey(name: string, version: string | undefined, signal: AbortSignal): Promise<{ version: string; kty: string }>;
  wrapKey(name: string, version: string, key: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;
  unwrapKey(name: string, version: string, wrapped: Uint8Array, signal: AbortSignal): Promise<Uint8Array>;
  encryptGcm(name: string, version: string, plaintext: Uint8Array, aad: Uint8Array, signal: AbortSignal): Promise<{ result: Uint8Array; iv?: Uint8Array; authenticationTag?: Uint8Array }>;
  decryptGcm(name: string, version: string, c: { ciphertext: Uint8Array; iv: Uint8Array; tag: Uint8Array; aad: Uint8Array }, signal: AbortSignal): Promise<Uint8Array>;
  createKey(name: string, kty: 'RSA' | 'oct-HSM', signal: AbortSignal): Promise<void>;
}

/** The SDK behind the narrow interface, for one vault. Retries are ours (maxRetries: 0). */
export function sdkClient(vaultUrl: string, credential: TokenCredential, options: CryptographyClientOptions = {}): AzureKeyVaultClient {
  const opts: CryptographyClientOptions = { ...options, retryOptions: { maxRetries: 0 } };
  const keys = new KeyClient(vaultUrl, credential, opts);
  const crypto = new Map<string, CryptographyClient>();
  const cc = (name: string, version: string) => {
    const id = `${vaultUrl}/keys/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;
    let c = crypto.get(id);
    if (!c) crypto.set(id, (c = new CryptographyClient(id, credential, opts)));
    return c;
  };
  return {
    getKey: async (name, version, abortSignal) => {
      const k = await keys.getKey(name, { version, abortSignal });
      return { version: k.properties.version ?? '', kty: String(k.keyType ?? '') };
    },
    wrapKey: async (name, version, key, abortSignal) => (await cc(name, version).wrapKey('RSA-OAEP-256', key, { abortSignal })).result,
    unwrapKey: async (name, version, wrapped, abortSignal) => (await cc(name, version).unwrapKey('RSA-OAEP-256', wrapped, { abortSignal })).result,
    encryptGcm: (name, version, plaintext, aad, abortSignal) =>
      cc(name, version).encrypt({ algorithm: 'A256GCM', plaintext, additionalAuthenticatedData: aad }, { abortSignal }),
    decryptGcm: async (name, version, c, abortSignal) =>
      (await cc(name, version).decrypt({ algorithm: 'A256GCM', ciphertext: c.ciphertext, iv: c.iv, authenticationTag: c.tag, additionalAuthenticatedData: c.aad }, { abortSignal })).result,
    createKey: async (name, kty, abortSignal) =>
      void (kty === 'RSA'
        ? await keys.createKey(name, 'RSA', { keySize: 3072, keyOps: ['wrapKey', 'unwrapKey'], abortSignal })
        : await keys.createKey(name, 'oct-HSM', { keySize: 256, keyOps: ['encrypt', 'decrypt'], abortSignal })),
  };
}

const URI = /^azure-kv:\/\/([a-z0-9-]{3,24}\.(?:vault\.azure\.net|managedhsm\.azure\.net|vault\.azure\.cn|vault\.usgovcloudapi\.net))\/keys\/([A-Za-z0-9-]{1,127})(?:\/([A-Za-z0-9]{1,64}))?$/;
const RSA_OAEP = 0x01;
const GCM = 0x02;
const VERSION_CACHE_MS = 5 * 60_000;

export function parseAzureKeyUri(keyUri: string): { host: string; name: string; version?: string } {
  const m = URI.exec(keyUri);
  if (!m) throw new UnknownKekError(`"${keyUri.slice(0, 200)}" is not an Azure Key Vault key URI (azure-kv://VAULT.vault.azure.net/keys/NAME[/VERSION])`);
  return { host: m[1], name: m[2], version: m[3] };
}

/** The blob names a key version this key does not have: it was made by another key. */
class ForeignBlobError extends Error {}

export function classifyAzureError(err: unknown, op: string): ErrorClass {
  const detail = describeError(err);
  const e = err as { statusCode?: number; code?: string; response?: { headers?: { get(n: string): string | undefined } } };
  if (isNetworkError(err)) return { kind: 'transient', detail };
  if (err instanceof ForeignBlobError) return { kind: 'refused', detail };
  const status = e?.statusCode ?? 0;
  if (status === 429 || status === 408 || status >= 500) {
    const ra = Number(e.response?.headers?.get('retry-after'));
    return { kind: 'transient', detail, retryAfterMs: Number.isFinite(ra) && ra > 0 ? ra * 1000 : undefined };
  }
  if (status === 400 && (op === 'decrypt' || op === 'unwrap')) return { kind: 'refused', detail };
  return { kind: 'config', detail: `${detail} (HTTP ${status || '-'}) — check the identity has keys get/wrapKey/unwrapKey (RBAC "Key Vault Crypto User") and the key is enabled` };
}

export class AzureKeyVaultAdapter implements KmsAdapter {
  readonly scheme = 'azure-kv';
  readonly resilience: Resilience;
  private readonly clients = new Map<string, AzureKeyVaultClient>();
  private readonly latest = new Map<string, { version: string; kty: string; at: number }>();
  readonly createKey?: (label: string) => Promise<string>;

  constructor(
    settings: Readonly<Record<string, unknown>>,
    /** Client per vault host; production uses DefaultAzureCredential (createAdapter). */
    private readonly clientFor: (host: string) => AzureKeyVaultClient,
  ) {
    this.resilience = new Resilience('azure-kv', classifyAzureError, resilienceSettings(settings));
    // Per-user KEKs are opt-in: `createKeysIn` names the vault (or Managed HSM) to create them in.
    const home = settings.createKeysIn as string | undefined;
    if (home !== undefined) {
      const { host } = parseAzureKeyUri(`azure-kv://${home}/keys/probe`);
      this.createKey = (label) => this.create(host, label);
    }
  }

  /** RSA 3072 (wrapKey/unwrapKey) in a Key Vault, oct-HSM AES-256 (encrypt/decrypt) in a Managed HSM. */
  private async create(host: string, label: string): Promise<string> {
    const name = `cs-${label.replace(/[^A-Za-z0-9-]/g, '-')}`.slice(0, 127);
    const kty = host.includes('.managedhsm.') ? 'oct-HSM' : 'RSA';
    await this.resilience.call('create', (s) => this.client(host).createKey(name, kty, s));
    return `azure-kv://${host}/keys/${name}`;
  }

  private client(host: string): AzureKeyVaultClient {
    let c = this.clients.get(host);
    if (!c) this.clients.set(host, (c = this.clientFor(host)));
    return c;
  }

  /** Version and type for new wraps: pinned by the URI, else the latest (re-read every 5 min). */
  private async current(k: ReturnType<typeof parseAzureKeyUri>): Promise<{ version: string; kty: string }> {
    const id = `${k.host}/${k.name}/${k.version ?? ''}`;
    const hit = this.latest.get(id);
    if (hit && (k.version || Date.now() - hit.at < VERSION_CACHE_MS)) return hit;
    const got = await this.resilience.call('describe', (s) => this.client(k.host).getKey(k.name, k.version, s));
    const entry = { ...got, at: Date.now() };
    this.latest.set(id, entry);
    return entry;
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const k = parseAzureKeyUri(keyUri);
    const { version, kty } = await this.current(k);
    const head = header(isRsa(kty) ? RSA_OAEP : GCM, version);
    if (isRsa(kty)) {
      const sealed = sealContext(context, plaintext);
      try {
        const ct = await this.resilience.call('wrap', (s) => this.client(k.host).wrapKey(k.name, version, sealed, s));
        return { ciphertext: Buffer.concat([head, ct]), keyVersion: version };
      } finally {
        sealed.fill(0);
      }
    }
    if (!/^oct/.test(kty)) throw new KmsConfigurationError(`azure-kv: key ${k.name} has type ${kty}; use RSA/RSA-HSM (Key Vault) or oct-HSM (Managed HSM)`);
    const out = await this.resilience.call('encrypt', (s) => this.client(k.host).encryptGcm(k.name, version, plaintext, canonicalContext(context), s));
    if (out.iv?.length !== 12 || out.authenticationTag?.length !== 16) throw new KmsConfigurationError('azure-kv: A256GCM response lacks a 12-byte iv or 16-byte tag');
    return { ciphertext: Buffer.concat([head, out.iv, out.authenticationTag, out.result]), keyVersion: version };
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext): Promise<Buffer> {
    const k = parseAzureKeyUri(keyUri);
    validateContext(context);
    const blob = Buffer.from(ciphertext);
    const kind = blob[0];
    const len = blob[1] ?? 0;
    const version = blob.subarray(2, 2 + len).toString('latin1');
    const body = blob.subarray(2 + len);
    if ((kind !== RSA_OAEP && kind !== GCM) || !/^[A-Za-z0-9]{1,64}$/.test(version) || body.length < (kind === GCM ? 29 : 1)) {
      throw new UnwrapRefusedError('azure-kv: not a ciphertext of this adapter');
    }
    if (k.version && k.version !== version) throw new UnwrapRefusedError('azure-kv: blob was made by another version than the pinned key URI');
    const c = this.client(k.host);
    const run = async <T>(fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        // 404 on a version taken from the blob: if the key itself exists, the blob is foreign.
        if ((err as { statusCode?: number }).statusCode === 404) {
          const exists = await this.current({ ...k, version: undefined }).then(() => true, () => false);
          if (exists) throw new ForeignBlobError(`key ${k.name} has no version ${version}`);
        }
        throw err;
      }
    };
    if (kind === RSA_OAEP) {
      const pt = await this.resilience.call('unwrap', (s) => run(() => c.unwrapKey(k.name, version, body, s)));
      return openSealed(context, takeBytes(pt), 'azure-kv');
    }
    const aad = canonicalContext(context);
    const pt = await this.resilience.call('decrypt', (s) =>
      run(() => c.decryptGcm(k.name, version, { iv: body.subarray(0, 12), tag: body.subarray(12, 28), ciphertext: body.subarray(28), aad }, s)),
    );
    return takeBytes(pt);
  }

  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  async close(): Promise<void> {
    this.clients.clear();
    this.latest.clear();
  }
}

function isRsa(kty: string): boolean {
  return kty === 'RSA' || kty === 'RSA-HSM';
}

function header(kind: number, version: string): Buffer {
  if (!/^[A-Za-z0-9]{1,64}$/.test(version)) throw new KmsConfigurationError('azure-kv: service returned an unexpected key version');
  return Buffer.concat([Buffer.from([kind, version.length]), Buffer.from(version, 'latin1')]);
}

export const createAdapter: AdapterFactory = async ({ settings }) => {
  const credential = new DefaultAzureCredential();
  return new AzureKeyVaultAdapter(settings, (host) => sdkClient(`https://${host}`, credential));
};

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  parseAzureKeyUri(keyUri);
}
