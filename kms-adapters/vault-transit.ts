import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { canonicalContext, validateContext } from './associated-data';
import { openSealed, sealContext } from './sealed-binding';
import { checkAdapter } from './check';
import { describeError, type ErrorClass, isNetworkError, Resilience, resilienceSettings } from './resilience';
import { assertVaultCredentials, VaultClient, VaultHttpError, vaultSettings } from './vault-client';
import { KmsConfigurationError, UnknownKekError } from './errors';

/**
 * `vault-transit://HOST[:PORT]/MOUNT/keys/NAME` — HashiCorp Vault's Transit engine.
 *
 * AEAD keys (aes256-gcm96, aes128-gcm96, chacha20-poly1305) bind with `associated_data` =
 * base64(canonicalContext). RSA keys (rsa-2048/3072/4096, OAEP-SHA256) have no such field: we
 * seal SHA-256(canonicalContext) in the plaintext. The adapter ciphertext is Vault's own
 * `vault:vN:...` string as UTF-8 (self-describing; operators can rewrap it with the Vault CLI);
 * keyVersion = N. Every key is read once (GET keys/NAME) before use, so a typo is a clear
 * configuration error instead of Vault's silent upsert creating a new key on encrypt.
 */
export interface VaultTransitClient {
  encrypt(mount: string, name: string, body: { plaintext: string; associated_data?: string }, signal: AbortSignal): Promise<{ ciphertext: string }>;
  decrypt(mount: string, name: string, body: { ciphertext: string; associated_data?: string }, signal: AbortSignal): Promise<{ plaintext: string }>;
  rewrap(mount: string, name: string, body: { ciphertext: string; associated_data?: string }, signal: AbortSignal): Promise<{ ciphertext: string }>;
  readKey(mount: string, name: string, signal: AbortSignal): Promise<{ type: string; latest_version?: number }>;
  createKey(mount: string, name: string, type: string, signal: AbortSignal): Promise<void>;
  close(): void;
}

export function httpTransitClient(http: VaultClient): VaultTransitClient {
  const data = async (p: Promise<Record<string, unknown>>) => ((await p).data ?? {}) as Record<string, unknown>;
  const seg = (s: string) => s.split('/').map(encodeURIComponent).join('/');
  return {
    encrypt: async (m, n, body, signal) => (await data(http.call('POST', `${seg(m)}/encrypt/${seg(n)}`, body, signal))) as { ciphertext: string },
    decrypt: async (m, n, body, signal) => (await data(http.call('POST', `${seg(m)}/decrypt/${seg(n)}`, body, signal))) as { plaintext: string },
    rewrap: async (m, n, body, signal) => (await data(http.call('POST', `${seg(m)}/rewrap/${seg(n)}`, body, signal))) as { ciphertext: string },
    readKey: async (m, n, signal) => (await data(http.call('GET', `${seg(m)}/keys/${seg(n)}`, undefined, signal))) as { type: string },
    createKey: async (m, n, type, signal) => void (await http.call('POST', `${seg(m)}/keys/${seg(n)}`, { type }, signal)),
    close: () => http.close(),
  };
}

const URI = /^vault-transit:\/\/([A-Za-z0-9.-]+(?::\d{1,5})?|\[[0-9a-fA-F:]+\](?::\d{1,5})?)\/([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*)\/keys\/([A-Za-z0-9_.-]{1,128})$/;
const AEAD = new Set(['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305']);
const RSA = new Set(['rsa-2048', 'rsa-3072', 'rsa-4096']);
const VERSION = /^vault:v(\d+):/;

export function parseVaultKeyUri(keyUri: string): { hostPort: string; mount: string; name: string } {
  const m = URI.exec(keyUri);
  if (!m) throw new UnknownKekError(`"${keyUri.slice(0, 200)}" is not a Vault Transit key URI (vault-transit://HOST[:PORT]/MOUNT/keys/NAME)`);
  return { hostPort: m[1], mount: m[2], name: m[3] };
}

export function classifyVaultError(err: unknown, op: string): ErrorClass {
  const detail = describeError(err);
  if (isNetworkError(err)) return { kind: 'transient', detail };
  if (err instanceof VaultHttpError) {
    // 412: a performance standby has not caught up yet; 429: rate limit; 5xx incl. 503 sealed.
    if (err.status === 429 || err.status === 412 || err.status >= 500) return { kind: 'transient', detail };
    const text = err.errors.join(' ');
    if (err.status === 400 && (op === 'decrypt' || op === 'rewrap') && !/not found|disallowed by policy|not supported|unsupported|deriv/i.test(text)) {
      return { kind: 'refused', detail }; // authentication failed / invalid ciphertext
    }
  }
  return { kind: 'config', detail: `${detail} — check the token's policy grants update on MOUNT/encrypt/NAME and MOUNT/decrypt/NAME, read on MOUNT/keys/NAME, and that the key exists` };
}

export class VaultTransitAdapter implements KmsAdapter {
  readonly scheme = 'vault-transit';
  readonly resilience: Resilience;
  private readonly clients = new Map<string, VaultTransitClient>();
  private readonly types = new Map<string, string>();
  readonly createKey?: (label: string) => Promise<string>;

  constructor(
    settings: Readonly<Record<string, unknown>>,
    private readonly clientFor: (hostPort: string) => VaultTransitClient = (hp) => httpTransitClient(new VaultClient(hp, vaultSettings(settings))),
  ) {
    assertVaultCredentials(vaultSettings(settings)); // fail at start-up, not on first use
    this.resilience = new Resilience('vault-transit', classifyVaultError, resilienceSettings(settings));
    // Per-user KEKs are opt-in: `createKeysAt` = vault-transit://HOST[:PORT]/MOUNT names where.
    const at = settings.createKeysAt as string | undefined;
    if (at !== undefined) {
      const sibling = `${at.replace(/\/+$/, '')}/keys/probe`;
      parseVaultKeyUri(sibling);
      this.createKey = (label) => this.createKeyBeside(sibling, `cs-${label.replace(/[^A-Za-z0-9_.-]/g, '-')}`.slice(0, 128));
    }
  }

  private client(hostPort: string): VaultTransitClient {
    let c = this.clients.get(hostPort);
    if (!c) this.clients.set(hostPort, (c = this.clientFor(hostPort)));
    return c;
  }

  private async keyType(keyUri: string, k: ReturnType<typeof parseVaultKeyUri>): Promise<string> {
    let type = this.types.get(keyUri);
    if (!type) {
      const info = await this.resilience.call('describe', (s) => this.client(k.hostPort).readKey(k.mount, k.name, s));
      type = info.type;
      if (!AEAD.has(type) && !RSA.has(type)) {
        throw new KmsConfigurationError(`vault-transit: key ${k.mount}/keys/${k.name} has type ${type}; use aes256-gcm96 (or an rsa-* key)`);
      }
      this.types.set(keyUri, type);
    }
    return type;
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const k = parseVaultKeyUri(keyUri);
    const aead = AEAD.has(await this.keyType(keyUri, k));
    const payload = aead ? Buffer.from(plaintext) : sealContext(context, plaintext);
    const body = { plaintext: payload.toString('base64'), ...(aead ? { associated_data: canonicalContext(context).toString('base64') } : {}) };
    try {
      const out = await this.resilience.call('encrypt', (s) => this.client(k.hostPort).encrypt(k.mount, k.name, body, s));
      return { ciphertext: Buffer.from(out.ciphertext, 'utf8'), keyVersion: VERSION.exec(out.ciphertext)?.[1] };
    } finally {
      payload.fill(0);
      body.plaintext = '';
    }
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext): Promise<Buffer> {
    const k = parseVaultKeyUri(keyUri);
    validateContext(context);
    const aead = AEAD.has(await this.keyType(keyUri, k));
    const body = { ciphertext: Buffer.from(ciphertext).toString('utf8'), ...(aead ? { associated_data: canonicalContext(context).toString('base64') } : {}) };
    const out = await this.resilience.call('decrypt', (s) => this.client(k.hostPort).decrypt(k.mount, k.name, body, s));
    const pt = Buffer.from(out.plaintext, 'base64');
    return aead ? pt : openSealed(context, pt, 'vault-transit');
  }

  /**
   * Vault /rewrap: re-encrypts under the key's latest version inside Vault (no plaintext leaves
   * it), so old versions can be retired with min_decryption_version. Same key only: Vault has
   * no re-encrypt into another key, so `toKeyUri` naming another key is refused.
   */
  async rewrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext, toKeyUri: string = keyUri): Promise<WrapResult> {
    const k = parseVaultKeyUri(keyUri);
    const to = parseVaultKeyUri(toKeyUri);
    if (to.hostPort !== k.hostPort || to.mount !== k.mount || to.name !== k.name) {
      throw new KmsConfigurationError('vault-transit: rewrap stays within one key; unwrap and wrap to move to another key');
    }
    validateContext(context);
    const aead = AEAD.has(await this.keyType(keyUri, k));
    const body = { ciphertext: Buffer.from(ciphertext).toString('utf8'), ...(aead ? { associated_data: canonicalContext(context).toString('base64') } : {}) };
    const out = await this.resilience.call('rewrap', (s) => this.client(k.hostPort).rewrap(k.mount, k.name, body, s));
    return { ciphertext: Buffer.from(out.ciphertext, 'utf8'), keyVersion: VERSION.exec(out.ciphertext)?.[1] };
  }

  /**
   * Creates an aes256-gcm96 key next to an existing one (same Vault, same mount) and returns its
   * URI. Not the interface's createKey(label): a label alone does not say which Vault and mount.
   */
  async createKeyBeside(siblingUri: string, name: string): Promise<string> {
    const k = parseVaultKeyUri(siblingUri);
    const uri = `vault-transit://${k.hostPort}/${k.mount}/keys/${name}`;
    parseVaultKeyUri(uri);
    await this.resilience.call('create', (s) => this.client(k.hostPort).createKey(k.mount, name, 'aes256-gcm96', s));
    return uri;
  }

  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }
}

export const createAdapter: AdapterFactory = async ({ settings }) => new VaultTransitAdapter(settings);

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  parseVaultKeyUri(keyUri);
}
