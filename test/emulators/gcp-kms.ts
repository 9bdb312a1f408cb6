import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { delay, Faults, listen, type Running, sendJson } from './common';
import { crc32c } from '../../kms-adapters/crc32c';

/**
 * Google Cloud KMS emulator for the HTTP/JSON transport (what @google-cloud/kms speaks with
 * `fallback: true`): POST /v1/{cryptoKey}:encrypt|:decrypt and POST /v1/{keyRing}/cryptoKeys,
 * proto3 JSON bodies (bytes base64, int64 as strings), errors as {"error":{code,message,status}}.
 * Requires a known `Authorization: Bearer` token. Checks the CRC32C request fields and returns
 * the response checksums; `corruptNext` sends a wrong one to prove the client verifies it.
 * Ciphertext: 0x0a | u32 version | iv(12) | ct | tag(16), AAD = key name || 0x00 || AAD.
 */
interface Version {
  material: Buffer;
  state: 'ENABLED' | 'DISABLED';
}
interface CryptoKey {
  name: string;
  versions: Version[];
  denied: boolean;
}

export class GcpFault extends Error {
  constructor(readonly http: number, readonly status: string, message: string) {
    super(message);
  }
}

const b64 = (v: unknown) => Buffer.from(typeof v === 'string' ? v : '', 'base64');

export class GcpKmsEmulator {
  readonly faults = new Faults();
  readonly keys = new Map<string, CryptoKey>();
  readonly tokens = new Set(['ya29.test-token']);
  corruptNext = 0;
  private running?: Running;

  get endpoint(): string {
    return this.running!.url;
  }

  async start(): Promise<this> {
    this.running = await listen((req, body, res) => this.handle(req, body, res));
    return this;
  }

  async close(): Promise<void> {
    await this.running?.close();
  }

  addKey(name: string): CryptoKey {
    const key: CryptoKey = { name, versions: [], denied: false };
    this.keys.set(name, key);
    this.rotate(key);
    return key;
  }

  /** New primary version; older versions keep decrypting. */
  rotate(key: CryptoKey): void {
    key.versions.push({ material: randomBytes(32), state: 'ENABLED' });
  }

  private async handle(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://x');
      const body = raw.length ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {};
      const m = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+)(?:\/cryptoKeys\/([^/:]+):(encrypt|decrypt)|\/cryptoKeys)$/.exec(url.pathname);
      if (!m || req.method !== 'POST') throw new GcpFault(404, 'NOT_FOUND', `no route ${req.method} ${url.pathname}`);
      const out = m[2]
        ? await this.call(m[3] as 'encrypt' | 'decrypt', `${m[1]}/cryptoKeys/${m[2]}`, body, req.headers.authorization)
        : await this.call('create', `${m[1]}/cryptoKeys/${url.searchParams.get('cryptoKeyId')}`, body, req.headers.authorization);
      sendJson(res, 200, out);
    } catch (err) {
      const f = err instanceof GcpFault ? err : new GcpFault(500, 'INTERNAL', String(err));
      sendJson(res, f.http, { error: { code: f.http, message: f.message, status: f.status } });
    }
  }

  /**
   * The service core shared by the REST front (above) and the gRPC front (gcp-kms-grpc.ts):
   * bodies in proto3 JSON shape (bytes base64, int64 as strings); throws GcpFault.
   */
  async call(op: 'encrypt' | 'decrypt' | 'create', name: string, body: Record<string, unknown>, authorization: unknown): Promise<Record<string, unknown>> {
    const auth = /^Bearer (.+)$/.exec(String(authorization ?? ''));
    if (!auth || !this.tokens.has(auth[1])) throw new GcpFault(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    const fault = this.faults.take();
    if (fault === 'throttle') throw new GcpFault(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric cryptographic requests');
    if (fault === 'error') throw new GcpFault(503, 'UNAVAILABLE', 'The service is currently unavailable.');
    if (fault === 'delay') await delay(this.faults.delayMs);
    if (op === 'create') {
      if (this.keys.has(name)) throw new GcpFault(409, 'ALREADY_EXISTS', `${name} already exists`);
      this.addKey(name);
      return { name, purpose: 1, primary: { name: `${name}/cryptoKeyVersions/1`, state: 1 } };
    }
    const key = this.keys.get(name);
    if (!key) throw new GcpFault(404, 'NOT_FOUND', `CryptoKey ${name} not found.`);
    if (key.denied) throw new GcpFault(403, 'PERMISSION_DENIED', `Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied on resource '${key.name}'`);
    return op === 'encrypt' ? this.encrypt(key, body) : this.decrypt(key, body);
  }

  private checksum(field: string, data: Buffer, given: unknown): boolean {
    if (given === undefined) return false;
    if (Number(given) !== crc32c(data)) throw new GcpFault(400, 'INVALID_ARGUMENT', `The checksum in field ${field} did not match the data.`);
    return true;
  }

  private encrypt(key: CryptoKey, b: Record<string, unknown>) {
    const pt = b64(b.plaintext);
    const aad = b64(b.additionalAuthenticatedData);
    const verifiedPt = this.checksum('plaintext_crc32c', pt, b.plaintextCrc32c);
    const verifiedAad = this.checksum('additional_authenticated_data_crc32c', aad, b.additionalAuthenticatedDataCrc32c);
    const v = key.versions.length;
    if (key.versions[v - 1].state !== 'ENABLED') throw new GcpFault(400, 'FAILED_PRECONDITION', `${key.name}/cryptoKeyVersions/${v} is not enabled, current state is: DISABLED.`);
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key.versions[v - 1].material, iv);
    c.setAAD(Buffer.concat([Buffer.from(key.name), Buffer.from([0]), aad]));
    const head = Buffer.alloc(5);
    head[0] = 0x0a;
    head.writeUInt32BE(v, 1);
    const ct = Buffer.concat([head, iv, c.update(pt), c.final(), c.getAuthTag()]);
    let crc = crc32c(ct);
    if (this.corruptNext > 0 && this.corruptNext--) crc ^= 1;
    return {
      name: `${key.name}/cryptoKeyVersions/${v}`,
      ciphertext: ct.toString('base64'),
      ciphertextCrc32c: String(crc),
      verifiedPlaintextCrc32c: verifiedPt,
      verifiedAdditionalAuthenticatedDataCrc32c: verifiedAad,
      protectionLevel: 1,
    };
  }

  private decrypt(key: CryptoKey, b: Record<string, unknown>) {
    const ct = b64(b.ciphertext);
    const aad = b64(b.additionalAuthenticatedData);
    this.checksum('ciphertext_crc32c', ct, b.ciphertextCrc32c);
    this.checksum('additional_authenticated_data_crc32c', aad, b.additionalAuthenticatedDataCrc32c);
    const invalid = new GcpFault(400, 'INVALID_ARGUMENT', 'Decryption failed: the ciphertext is invalid.');
    if (ct.length < 5 + 12 + 16 || ct[0] !== 0x0a) throw invalid;
    const v = ct.readUInt32BE(1);
    const version = key.versions[v - 1];
    if (!version) throw invalid;
    if (version.state !== 'ENABLED') throw new GcpFault(400, 'FAILED_PRECONDITION', `${key.name}/cryptoKeyVersions/${v} is not enabled, current state is: DISABLED.`);
    const d = createDecipheriv('aes-256-gcm', version.material, ct.subarray(5, 17));
    d.setAAD(Buffer.concat([Buffer.from(key.name), Buffer.from([0]), aad]));
    d.setAuthTag(ct.subarray(ct.length - 16));
    let pt: Buffer;
    try {
      pt = Buffer.concat([d.update(ct.subarray(17, ct.length - 16)), d.final()]);
    } catch {
      throw invalid;
    }
    return { plaintext: pt.toString('base64'), plaintextCrc32c: String(crc32c(pt)), usedPrimary: v === key.versions.length, protectionLevel: 1 };
  }
}
