import { KeyManagementServiceClient } from '@google-cloud/kms';
import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { canonicalContext } from './associated-data';
import { crc32c } from './crc32c';
import { checkAdapter } from './check';
import { takeBytes } from './bytes';
import { describeError, type ErrorClass, isNetworkError, Resilience, resilienceSettings } from './resilience';
import { ConfigError, KmsConfigurationError, UnknownKekError } from './errors';

/**
 * `gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K` — Google Cloud KMS symmetric
 * (ENCRYPT_DECRYPT) keys. Binding: additionalAuthenticatedData = canonicalContext. Integrity: we
 * send CRC32C of plaintext/AAD/ciphertext and check the service's verified* flags and response
 * checksums (Google's recommended end-to-end integrity); a mismatch is treated as a transient
 * corruption and retried. keyVersion = the cryptoKeyVersion name the service reports.
 * Credentials: Application Default Credentials (the SDK's default). Asymmetric GCP keys are not
 * supported (their encryption happens client-side with the public key).
 */
type Int64 = { value?: unknown } | null | undefined; // number, decimal string or protobuf Long
type Bytes = Uint8Array | string | null | undefined;

export interface GcpKmsClient {
  encrypt(
    r: { name: string; plaintext: Buffer; additionalAuthenticatedData: Buffer; plaintextCrc32c: { value: number }; additionalAuthenticatedDataCrc32c: { value: number } },
    signal: AbortSignal,
  ): Promise<{ name?: string | null; ciphertext?: Bytes; ciphertextCrc32c?: Int64; verifiedPlaintextCrc32c?: boolean | null; verifiedAdditionalAuthenticatedDataCrc32c?: boolean | null }>;
  decrypt(
    r: { name: string; ciphertext: Buffer; additionalAuthenticatedData: Buffer; ciphertextCrc32c: { value: number }; additionalAuthenticatedDataCrc32c: { value: number } },
    signal: AbortSignal,
  ): Promise<{ plaintext?: Bytes; plaintextCrc32c?: Int64 }>;
  createCryptoKey(r: { parent: string; cryptoKeyId: string }, signal: AbortSignal): Promise<{ name?: string | null }>;
  close(): Promise<void>;
}

/** Extra SDK options; tests pass a static-token authClient and the REST transport here. */
export type GcpClientOptions = ConstructorParameters<typeof KeyManagementServiceClient>[0];

/**
 * The SDK behind the narrow interface. settings.endpoint (or CS_GCP_KMS_ENDPOINT) as a bare host
 * keeps gRPC (e.g. a Private Service Connect name); as a URL (https://host:port) it selects the
 * HTTP/JSON transport on that host. SDK retries are off: resilience.ts owns them.
 */
export function sdkClient(settings: Readonly<Record<string, unknown>>, extra: GcpClientOptions = {}): GcpKmsClient {
  const endpoint = (settings.endpoint as string | undefined) || undefined;
  const opts: GcpClientOptions = {};
  if (endpoint && /^https?:\/\//.test(endpoint)) {
    const u = new URL(endpoint);
    Object.assign(opts, { fallback: true, apiEndpoint: u.hostname, protocol: u.protocol.slice(0, -1), port: Number(u.port) || (u.protocol === 'http:' ? 80 : 443) });
  } else if (endpoint) {
    const [, host, port] = /^(.+?)(?::(\d+))?$/.exec(endpoint)!;
    Object.assign(opts, { apiEndpoint: host, ...(port ? { port: Number(port) } : {}) });
  }
  const c = new KeyManagementServiceClient({ ...opts, ...extra });
  const call = <T>(p: Promise<[T, ...unknown[]]>, signal: AbortSignal): Promise<T> => {
    const cancel = () => (p as unknown as { cancel?: () => void }).cancel?.();
    signal.addEventListener('abort', cancel, { once: true });
    return p.then(([r]) => r).finally(() => signal.removeEventListener('abort', cancel));
  };
  const o = { retry: null };
  return {
    encrypt: (r, s) => call(c.encrypt(r, o), s),
    decrypt: (r, s) => call(c.decrypt(r, o), s),
    createCryptoKey: (r, s) => call(c.createCryptoKey({ parent: r.parent, cryptoKeyId: r.cryptoKeyId, cryptoKey: { purpose: 'ENCRYPT_DECRYPT' } }, o), s),
    close: () => c.close(),
  };
}

const URI = /^gcp-kms:\/\/(projects\/[a-z0-9-]{1,63}\/locations\/[a-z0-9-]{1,63}\/keyRings\/[A-Za-z0-9_-]{1,63}\/cryptoKeys\/[A-Za-z0-9_-]{1,63})$/;
const KEY_RING = /^projects\/[a-z0-9-]{1,63}\/locations\/[a-z0-9-]{1,63}\/keyRings\/[A-Za-z0-9_-]{1,63}$/;

export function parseGcpKeyUri(keyUri: string): string {
  const m = URI.exec(keyUri);
  if (!m) throw new UnknownKekError(`"${keyUri.slice(0, 200)}" is not a Cloud KMS key URI (gcp-kms://projects/P/locations/L/keyRings/R/cryptoKeys/K)`);
  return m[1];
}

/** The response failed its CRC32C check: corrupted in transit, so worth retrying. */
export class IntegrityError extends Error {
  override name = 'IntegrityError';
}

const GRPC_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];
const HTTP_NAMES: Record<number, string> = { 400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND', 409: 'ALREADY_EXISTS', 429: 'RESOURCE_EXHAUSTED', 499: 'CANCELLED', 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED' };
const TRANSIENT = new Set(['DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'ABORTED', 'INTERNAL', 'UNAVAILABLE']);

/**
 * The canonical status of a Cloud KMS error. gRPC errors carry a numeric gRPC code; on the REST
 * transport the HTTP layer (gaxios) rejects first, with `code` = the HTTP status and the Google
 * error JSON ({"error":{"status":"..."}}) as the message — so the two must not be confused.
 */
export function gcpStatus(err: unknown): string | undefined {
  const e = err as { code?: unknown; status?: unknown; response?: { status?: number }; message?: string } | undefined;
  if (e?.response !== undefined) {
    const named = /"status"\s*:\s*"([A-Z_]+)"/.exec(String(e.message ?? ''))?.[1];
    const http = Number(e.status ?? e.response.status);
    return named ?? HTTP_NAMES[http] ?? (http >= 500 ? 'INTERNAL' : undefined);
  }
  return typeof e?.code === 'number' ? GRPC_NAMES[e.code] : undefined;
}

export function classifyGcpError(err: unknown, op: string): ErrorClass {
  const detail = describeError(err);
  if (isNetworkError(err) || err instanceof IntegrityError) return { kind: 'transient', detail };
  const status = gcpStatus(err);
  if (status && TRANSIENT.has(status)) return { kind: 'transient', detail };
  if (status === 'INVALID_ARGUMENT' && op === 'decrypt' && !/checksum/i.test(detail)) return { kind: 'refused', detail }; // "Decryption failed"
  return { kind: 'config', detail: `${detail} (${status ?? 'no status'}) — check roles/cloudkms.cryptoKeyEncrypterDecrypter on the key and that its primary version is ENABLED` };
}

const num = (v: Int64) => (v?.value === undefined || v?.value === null ? undefined : Number(String(v.value)));
const buf = (b: Bytes) => (typeof b === 'string' ? Buffer.from(b, 'base64') : takeBytes(b ?? new Uint8Array(0)));

export class GcpKmsAdapter implements KmsAdapter {
  readonly scheme = 'gcp-kms';
  readonly resilience: Resilience;
  readonly createKey?: (label: string) => Promise<string>;
  private client?: GcpKmsClient;

  constructor(
    settings: Readonly<Record<string, unknown>>,
    private readonly makeClient: () => GcpKmsClient = () => sdkClient(settings),
  ) {
    this.resilience = new Resilience('gcp-kms', classifyGcpError, resilienceSettings(settings));
    const keyRing = settings.keyRing as string | undefined;
    if (keyRing !== undefined) {
      if (!KEY_RING.test(keyRing)) throw new ConfigError('gcp-kms keyRing: must be projects/P/locations/L/keyRings/R');
      this.createKey = (label) => this.create(keyRing, label);
    }
  }

  private kms(): GcpKmsClient {
    return (this.client ??= this.makeClient());
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const name = parseGcpKeyUri(keyUri);
    const aad = canonicalContext(context);
    const pt = Buffer.from(plaintext);
    try {
      const out = await this.resilience.call('encrypt', async (s) => {
        const r = await this.kms().encrypt(
          { name, plaintext: pt, additionalAuthenticatedData: aad, plaintextCrc32c: { value: crc32c(pt) }, additionalAuthenticatedDataCrc32c: { value: crc32c(aad) } },
          s,
        );
        const ct = buf(r.ciphertext);
        if (!r.verifiedPlaintextCrc32c || !r.verifiedAdditionalAuthenticatedDataCrc32c) throw new IntegrityError('request checksum not verified by Cloud KMS');
        if (num(r.ciphertextCrc32c) !== crc32c(ct)) throw new IntegrityError('ciphertext checksum mismatch');
        return { ciphertext: ct, keyVersion: r.name ?? undefined };
      });
      return out;
    } finally {
      pt.fill(0);
    }
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext): Promise<Buffer> {
    const name = parseGcpKeyUri(keyUri);
    const aad = canonicalContext(context); // validates the context too
    const ct = Buffer.from(ciphertext);
    return this.resilience.call('decrypt', async (s) => {
      const r = await this.kms().decrypt(
        { name, ciphertext: ct, additionalAuthenticatedData: aad, ciphertextCrc32c: { value: crc32c(ct) }, additionalAuthenticatedDataCrc32c: { value: crc32c(aad) } },
        s,
      );
      const pt = buf(r.plaintext);
      if (num(r.plaintextCrc32c) !== crc32c(pt)) {
        pt.fill(0);
        throw new IntegrityError('plaintext checksum mismatch');
      }
      return pt;
    });
  }

  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  private async create(keyRing: string, label: string): Promise<string> {
    const id = `cs-${label.replace(/[^A-Za-z0-9_-]/g, '-')}`.slice(0, 63);
    const out = await this.resilience.call('create', (s) => this.kms().createCryptoKey({ parent: keyRing, cryptoKeyId: id }, s));
    if (!out.name) throw new KmsConfigurationError('gcp-kms: CreateCryptoKey returned no name');
    return `gcp-kms://${out.name}`;
  }

  async close(): Promise<void> {
    await this.client?.close();
    this.client = undefined;
  }
}

export const createAdapter: AdapterFactory = async ({ settings }) => new GcpKmsAdapter(settings);

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  parseGcpKeyUri(keyUri);
}
