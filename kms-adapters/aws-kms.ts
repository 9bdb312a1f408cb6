import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  KMSClient,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { validateContext } from './associated-data';
import { openSealed, sealContext } from './sealed-binding';
import { checkAdapter } from './check';
import { takeBytes } from './bytes';
import { describeError, type ErrorClass, isNetworkError, Resilience, resilienceSettings } from './resilience';
import { KmsConfigurationError, UnknownKekError } from './errors';

/**
 * `aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID` (or `...:alias/NAME`).
 *
 * Symmetric keys bind with EncryptionContext (the context map as-is; KMS authenticates it and
 * logs it in CloudTrail). RSA keys (KeySpec RSA_*) have no context field: we use
 * RSAES_OAEP_SHA_256 and seal SHA-256(canonicalContext) inside the plaintext (sealed-binding.ts).
 * keyVersion = the key ARN KMS reports, so a blob made through an alias still opens after the
 * alias is moved to a new key. Credentials: the SDK's default provider chain.
 */
export interface AwsKmsClient {
  encrypt(i: { KeyId: string; Plaintext: Uint8Array; EncryptionContext?: Record<string, string>; EncryptionAlgorithm?: string }, signal: AbortSignal): Promise<{ CiphertextBlob?: Uint8Array; KeyId?: string }>;
  decrypt(i: { KeyId: string; CiphertextBlob: Uint8Array; EncryptionContext?: Record<string, string>; EncryptionAlgorithm?: string }, signal: AbortSignal): Promise<{ Plaintext?: Uint8Array; KeyId?: string }>;
  reEncrypt(
    i: { CiphertextBlob: Uint8Array; SourceKeyId: string; DestinationKeyId: string; SourceEncryptionContext: Record<string, string>; DestinationEncryptionContext: Record<string, string> },
    signal: AbortSignal,
  ): Promise<{ CiphertextBlob?: Uint8Array; KeyId?: string }>;
  describeKey(i: { KeyId: string }, signal: AbortSignal): Promise<{ KeyMetadata?: { Arn?: string; KeySpec?: string; KeyState?: string; KeyUsage?: string } }>;
  createKey(i: { Description: string; KeyUsage: 'ENCRYPT_DECRYPT'; KeySpec: 'SYMMETRIC_DEFAULT' }, signal: AbortSignal): Promise<{ KeyMetadata?: { Arn?: string } }>;
  destroy(): void;
}

const ARN = /^aws-kms:\/\/(arn:(aws[a-z-]*):kms:([a-z0-9-]+):(\d{12}):(key|alias)\/([A-Za-z0-9/_+=.@-]{1,256}))$/;

export interface AwsKeyRef {
  arn: string;
  partition: string;
  region: string;
  account: string;
  isAlias: boolean;
}

export function parseAwsKeyUri(keyUri: string): AwsKeyRef {
  const m = ARN.exec(keyUri);
  if (!m) throw new UnknownKekError(`"${keyUri.slice(0, 200)}" is not an AWS KMS key URI (aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID or alias/NAME)`);
  return { arn: m[1], partition: m[2], region: m[3], account: m[4], isAlias: m[5] === 'alias' };
}

/** The SDK client behind the narrow interface; retries are ours (maxAttempts: 1). */
export function sdkClient(region: string, settings: Readonly<Record<string, unknown>>): AwsKmsClient {
  const endpoint = (settings.endpoint as string | undefined) || undefined;
  const c = new KMSClient({ region, endpoint, maxAttempts: 1 });
  return {
    encrypt: (i, abortSignal) => c.send(new EncryptCommand(i as never), { abortSignal }),
    decrypt: (i, abortSignal) => c.send(new DecryptCommand(i as never), { abortSignal }),
    reEncrypt: (i, abortSignal) => c.send(new ReEncryptCommand(i), { abortSignal }),
    describeKey: (i, abortSignal) => c.send(new DescribeKeyCommand(i), { abortSignal }),
    createKey: (i, abortSignal) => c.send(new CreateKeyCommand(i), { abortSignal }),
    destroy: () => c.destroy(),
  };
}

const TRANSIENT = new Set(['ThrottlingException', 'KMSInternalException', 'DependencyTimeoutException', 'ServiceUnavailableException', 'InternalFailure', 'RequestTimeout', 'TooManyRequestsException']);
const REFUSED = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

export function classifyAwsError(err: unknown, op: string): ErrorClass {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $fault?: string };
  const detail = describeError(err);
  if (isNetworkError(err)) return { kind: 'transient', detail };
  if (e?.name && TRANSIENT.has(e.name)) return { kind: 'transient', detail };
  if ((e?.$metadata?.httpStatusCode ?? 0) >= 500 || e?.$fault === 'server') return { kind: 'transient', detail };
  if (op !== 'encrypt' && e?.name && REFUSED.has(e.name)) return { kind: 'refused', detail };
  return { kind: 'config', detail: `${detail} — check the key policy / IAM grants kms:Encrypt, kms:Decrypt, kms:DescribeKey and that the key is enabled` };
}

export class AwsKmsAdapter implements KmsAdapter {
  readonly scheme = 'aws-kms';
  readonly resilience: Resilience;
  private readonly clients = new Map<string, AwsKmsClient>();
  private readonly specs = new Map<string, string>();

  constructor(
    private readonly settings: Readonly<Record<string, unknown>>,
    private readonly clientFor: (region: string) => AwsKmsClient = (r) => sdkClient(r, settings),
  ) {
    this.resilience = new Resilience('aws-kms', classifyAwsError, resilienceSettings(settings));
  }

  private client(region: string): AwsKmsClient {
    let c = this.clients.get(region);
    if (!c) this.clients.set(region, (c = this.clientFor(region)));
    return c;
  }

  /** KeySpec decides symmetric (EncryptionContext) vs RSA (sealed digest); cached per key. */
  private async keySpec(ref: AwsKeyRef): Promise<string> {
    let spec = this.specs.get(ref.arn);
    if (!spec) {
      const out = await this.resilience.call('describe', (s) => this.client(ref.region).describeKey({ KeyId: ref.arn }, s));
      spec = out.KeyMetadata?.KeySpec ?? 'SYMMETRIC_DEFAULT';
      if (!spec.startsWith('RSA_') && spec !== 'SYMMETRIC_DEFAULT') {
        throw new KmsConfigurationError(`aws-kms: key ${ref.arn} has KeySpec ${spec}; use a SYMMETRIC_DEFAULT or RSA ENCRYPT_DECRYPT key`);
      }
      this.specs.set(ref.arn, spec);
    }
    return spec;
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const ref = parseAwsKeyUri(keyUri);
    validateContext(context);
    const rsa = (await this.keySpec(ref)).startsWith('RSA_');
    const sealed = rsa ? sealContext(context, plaintext) : undefined;
    try {
      const out = await this.resilience.call('encrypt', (s) =>
        this.client(ref.region).encrypt(
          rsa
            ? { KeyId: ref.arn, Plaintext: sealed!, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }
            : { KeyId: ref.arn, Plaintext: plaintext, EncryptionContext: { ...context } },
          s,
        ),
      );
      if (!out.CiphertextBlob) throw new KmsConfigurationError('aws-kms: Encrypt returned no CiphertextBlob');
      return { ciphertext: Buffer.from(out.CiphertextBlob), keyVersion: out.KeyId };
    } finally {
      sealed?.fill(0);
    }
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext, keyVersion?: string): Promise<Buffer> {
    const ref = parseAwsKeyUri(keyUri);
    validateContext(context);
    const keyId = this.decryptKeyId(ref, keyVersion);
    const rsa = (await this.keySpec(ref)).startsWith('RSA_');
    const out = await this.resilience.call('decrypt', (s) =>
      this.client(ref.region).decrypt(
        rsa
          ? { KeyId: keyId, CiphertextBlob: ciphertext, EncryptionAlgorithm: 'RSAES_OAEP_SHA_256' }
          : { KeyId: keyId, CiphertextBlob: ciphertext, EncryptionContext: { ...context } },
        s,
      ),
    );
    if (!out.Plaintext) throw new KmsConfigurationError('aws-kms: Decrypt returned no Plaintext');
    const pt = takeBytes(out.Plaintext);
    return rsa ? openSealed(context, pt, 'aws-kms') : pt;
  }

  /**
   * KeyId for Decrypt. Naming the key makes KMS refuse a blob of another key (IncorrectKeyException).
   * For an alias URI the recorded key ARN is used, so blobs survive the alias moving to a new key;
   * it must be a key in the alias's own account and region, so an envelope cannot redirect us.
   */
  private decryptKeyId(ref: AwsKeyRef, keyVersion?: string): string {
    if (!ref.isAlias || !keyVersion) return ref.arn;
    const prefix = `arn:${ref.partition}:kms:${ref.region}:${ref.account}:key/`;
    return keyVersion.startsWith(prefix) ? keyVersion : ref.arn;
  }

  /**
   * Re-encrypts a blob under `toKeyUri` inside KMS (ReEncrypt: the plaintext never leaves KMS).
   * Symmetric keys only. Returns the new ciphertext and the key ARN used.
   */
  async rewrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext, toKeyUri: string = keyUri, keyVersion?: string): Promise<WrapResult> {
    const from = parseAwsKeyUri(keyUri);
    const to = parseAwsKeyUri(toKeyUri);
    validateContext(context);
    if (from.region !== to.region) throw new KmsConfigurationError('aws-kms: ReEncrypt across regions is not supported; unwrap and wrap instead');
    // RSA blobs carry their binding sealed inside the plaintext, not as EncryptionContext.
    if ((await this.keySpec(from)).startsWith('RSA_') || (await this.keySpec(to)).startsWith('RSA_')) {
      throw new KmsConfigurationError('aws-kms: ReEncrypt of RSA (sealed-binding) keys is not supported; unwrap and wrap instead');
    }
    const out = await this.resilience.call('reencrypt', (s) =>
      this.client(to.region).reEncrypt(
        {
          CiphertextBlob: ciphertext,
          SourceKeyId: this.decryptKeyId(from, keyVersion),
          DestinationKeyId: to.arn,
          SourceEncryptionContext: { ...context },
          DestinationEncryptionContext: { ...context },
        },
        s,
      ),
    );
    if (!out.CiphertextBlob) throw new KmsConfigurationError('aws-kms: ReEncrypt returned no CiphertextBlob');
    return { ciphertext: Buffer.from(out.CiphertextBlob), keyVersion: out.KeyId };
  }

  /** Doctor/readiness: wrap, unwrap, and prove a wrong context is refused. */
  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  async createKey(label: string): Promise<string> {
    const region = (this.settings.region as string | undefined) || process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION;
    if (!region) throw new KmsConfigurationError('aws-kms: per-user KEKs need AWS_REGION (the region to create them in)');
    const out = await this.resilience.call('create', (s) =>
      this.client(region).createKey({ Description: `crypto-server ${label}`.slice(0, 8192), KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT' }, s),
    );
    if (!out.KeyMetadata?.Arn) throw new KmsConfigurationError('aws-kms: CreateKey returned no ARN');
    return `aws-kms://${out.KeyMetadata.Arn}`;
  }

  async close(): Promise<void> {
    for (const c of this.clients.values()) c.destroy();
    this.clients.clear();
  }
}

export const createAdapter: AdapterFactory = async ({ settings }) => new AwsKmsAdapter(settings);

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  parseAwsKeyUri(keyUri);
}
