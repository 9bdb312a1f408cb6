import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { delay, Faults, listen, type Running, sendJson } from './common';

/**
 * AWS KMS emulator on the real wire protocol: POST / with JSON 1.1 bodies and
 * `X-Amz-Target: TrentService.<Op>`, blobs in base64, errors as {"__type", "message"}.
 * Implements Encrypt, Decrypt, ReEncrypt, DescribeKey, CreateKey for symmetric (AES-256-GCM,
 * EncryptionContext authenticated as AAD) and RSA_2048 (RSAES_OAEP_SHA_256) keys, with
 * rotation (new backing key; old ciphertexts still decrypt), disabled keys, per-key access denial
 * and fault injection. Requests without a SigV4 Authorization header are refused.
 *
 * Symmetric ciphertext: 0x01 | u16 len | key id | u32 backing version | iv(12) | ct | tag(16).
 */
export const ACCOUNT = '111122223333';
export const REGION = 'eu-west-1';

interface EmuKey {
  id: string;
  arn: string;
  spec: 'SYMMETRIC_DEFAULT' | 'RSA_2048';
  state: 'Enabled' | 'Disabled';
  denied: boolean;
  versions: Buffer[];
  rsa?: { publicKey: KeyObject; privateKey: KeyObject };
}

class KmsFault extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

export class AwsKmsEmulator {
  readonly faults = new Faults();
  readonly keys = new Map<string, EmuKey>();
  readonly aliases = new Map<string, string>();
  private running?: Running;

  get endpoint(): string {
    return this.running!.url;
  }

  async start(): Promise<this> {
    this.running = await listen((req, body, res) => this.handle(req.headers, body, res));
    return this;
  }

  async close(): Promise<void> {
    await this.running?.close();
  }

  addKey(spec: EmuKey['spec'] = 'SYMMETRIC_DEFAULT'): EmuKey {
    const id = randomUUID();
    const key: EmuKey = { id, arn: `arn:aws:kms:${REGION}:${ACCOUNT}:key/${id}`, spec, state: 'Enabled', denied: false, versions: [] };
    if (spec === 'RSA_2048') key.rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    else key.versions.push(randomBytes(32));
    this.keys.set(id, key);
    return key;
  }

  setAlias(name: string, key: EmuKey): string {
    this.aliases.set(name, key.id);
    return `arn:aws:kms:${REGION}:${ACCOUNT}:alias/${name}`;
  }

  /** Automatic rotation: a new backing key for new encryptions; old ones still decrypt. */
  rotate(key: EmuKey): void {
    key.versions.push(randomBytes(32));
  }

  private resolve(keyId: unknown): EmuKey {
    if (typeof keyId !== 'string') throw new KmsFault('ValidationException', 'KeyId is required');
    let id = keyId;
    const alias = /^(?:arn:aws:kms:[^:]+:\d{12}:)?alias\/(.+)$/.exec(keyId);
    if (alias) id = this.aliases.get(alias[1]) ?? '';
    else id = keyId.replace(/^arn:aws:kms:[^:]+:\d{12}:key\//, '');
    const key = this.keys.get(id);
    if (!key) throw new KmsFault('NotFoundException', `Key '${keyId}' does not exist`);
    return key;
  }

  private usable(key: EmuKey): EmuKey {
    if (key.denied) throw new KmsFault('AccessDeniedException', `User is not authorized to perform kms operations on ${key.arn}`);
    if (key.state !== 'Enabled') throw new KmsFault('DisabledException', `${key.arn} is disabled.`);
    return key;
  }

  private async handle(headers: NodeJS.Dict<string | string[]>, body: Buffer, res: ServerResponse): Promise<void> {
    try {
      if (!String(headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
        throw new KmsFault('MissingAuthenticationTokenException', 'Request is missing Authentication Token');
      }
      const fault = this.faults.take();
      if (fault === 'throttle') throw new KmsFault('ThrottlingException', 'Rate exceeded');
      if (fault === 'error') throw new KmsFault('KMSInternalException', 'internal error', 500);
      if (fault === 'delay') await delay(this.faults.delayMs);
      const target = String(headers['x-amz-target'] ?? '');
      const input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      const out = this.dispatch(target.replace(/^TrentService\./, ''), input);
      sendJson(res, 200, out, {}, 'application/x-amz-json-1.1');
    } catch (err) {
      const f = err instanceof KmsFault ? err : new KmsFault('KMSInternalException', String(err), 500);
      sendJson(res, f.status, { __type: f.type, message: f.message }, { 'x-amzn-requestid': randomUUID() }, 'application/x-amz-json-1.1');
    }
  }

  private dispatch(op: string, i: Record<string, unknown>): unknown {
    switch (op) {
      case 'Encrypt': {
        const key = this.usable(this.resolve(i.KeyId));
        const pt = Buffer.from(String(i.Plaintext ?? ''), 'base64');
        return { CiphertextBlob: this.encrypt(key, pt, i.EncryptionContext, i.EncryptionAlgorithm).toString('base64'), KeyId: key.arn };
      }
      case 'Decrypt': {
        const { key, plaintext } = this.decrypt(i.CiphertextBlob, i.KeyId, i.EncryptionContext, i.EncryptionAlgorithm);
        return { Plaintext: plaintext.toString('base64'), KeyId: key.arn, EncryptionAlgorithm: i.EncryptionAlgorithm ?? 'SYMMETRIC_DEFAULT' };
      }
      case 'ReEncrypt': {
        const { key: src, plaintext } = this.decrypt(i.CiphertextBlob, i.SourceKeyId, i.SourceEncryptionContext, undefined);
        const dst = this.usable(this.resolve(i.DestinationKeyId));
        return { CiphertextBlob: this.encrypt(dst, plaintext, i.DestinationEncryptionContext, undefined).toString('base64'), SourceKeyId: src.arn, KeyId: dst.arn };
      }
      case 'DescribeKey': {
        const key = this.resolve(i.KeyId);
        if (key.denied) throw new KmsFault('AccessDeniedException', `User is not authorized to perform kms:DescribeKey on ${key.arn}`);
        return { KeyMetadata: this.metadata(key) };
      }
      case 'CreateKey':
        return { KeyMetadata: this.metadata(this.addKey(i.KeySpec === 'RSA_2048' ? 'RSA_2048' : 'SYMMETRIC_DEFAULT')) };
      default:
        throw new KmsFault('UnknownOperationException', `unsupported operation ${op}`);
    }
  }

  private metadata(key: EmuKey) {
    return {
      KeyId: key.id,
      Arn: key.arn,
      AWSAccountId: ACCOUNT,
      KeySpec: key.spec,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: key.state,
      Enabled: key.state === 'Enabled',
      EncryptionAlgorithms: key.spec === 'RSA_2048' ? ['RSAES_OAEP_SHA_1', 'RSAES_OAEP_SHA_256'] : ['SYMMETRIC_DEFAULT'],
    };
  }

  private encrypt(key: EmuKey, pt: Buffer, ctx: unknown, alg: unknown): Buffer {
    if (key.spec === 'RSA_2048') {
      if (alg !== 'RSAES_OAEP_SHA_256') throw new KmsFault('InvalidKeyUsageException', 'asymmetric key needs EncryptionAlgorithm RSAES_OAEP_SHA_256 here');
      if (ctx) throw new KmsFault('ValidationException', 'EncryptionContext is not supported with asymmetric keys');
      return publicEncrypt({ key: key.rsa!.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, pt);
    }
    const version = key.versions.length - 1;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key.versions[version], iv);
    c.setAAD(aad(key.id, ctx));
    const ct = Buffer.concat([c.update(pt), c.final()]);
    const head = Buffer.alloc(3);
    head[0] = 1;
    head.writeUInt16BE(Buffer.byteLength(key.id), 1);
    const ver = Buffer.alloc(4);
    ver.writeUInt32BE(version);
    return Buffer.concat([head, Buffer.from(key.id), ver, iv, ct, c.getAuthTag()]);
  }

  private decrypt(blobB64: unknown, keyId: unknown, ctx: unknown, alg: unknown): { key: EmuKey; plaintext: Buffer } {
    const blob = Buffer.from(String(blobB64 ?? ''), 'base64');
    const invalid = () => new KmsFault('InvalidCiphertextException', '');
    if (alg === 'RSAES_OAEP_SHA_256') {
      const key = this.usable(this.resolve(keyId));
      if (key.spec !== 'RSA_2048') throw new KmsFault('InvalidKeyUsageException', 'not an asymmetric key');
      try {
        return { key, plaintext: privateDecrypt({ key: key.rsa!.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, blob) };
      } catch {
        throw invalid();
      }
    }
    if (blob.length < 3 || blob[0] !== 1) throw invalid();
    const idLen = blob.readUInt16BE(1);
    if (blob.length < 3 + idLen + 4 + 12 + 16) throw invalid();
    const key = this.keys.get(blob.subarray(3, 3 + idLen).toString());
    if (!key) throw invalid();
    if (keyId !== undefined && this.resolve(keyId).id !== key.id) {
      throw new KmsFault('IncorrectKeyException', 'The key ID in the request does not identify a CMK that can perform this operation.');
    }
    this.usable(key);
    const version = blob.readUInt32BE(3 + idLen);
    const material = key.versions[version];
    if (!material) throw invalid();
    let p = 3 + idLen + 4;
    const d = createDecipheriv('aes-256-gcm', material, blob.subarray(p, (p += 12)));
    d.setAAD(aad(key.id, ctx));
    d.setAuthTag(blob.subarray(blob.length - 16));
    try {
      return { key, plaintext: Buffer.concat([d.update(blob.subarray(p, blob.length - 16)), d.final()]) };
    } catch {
      throw invalid(); // wrong encryption context or tampered: KMS says InvalidCiphertextException
    }
  }
}

function aad(keyId: string, ctx: unknown): Buffer {
  const pairs = Object.entries((ctx ?? {}) as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return Buffer.from(JSON.stringify([keyId, pairs]));
}
