import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { delay, Faults, listen, type Running, sendJson } from './common';

/**
 * Azure Key Vault / Managed HSM emulator (HTTPS; the SDK refuses bearer tokens over plain HTTP):
 * GET /keys/{name}[/{version}], POST /keys/{name}/{version}/encrypt|decrypt|wrapkey|unwrapkey,
 * `api-version` required, bytes as base64url, errors as {"error":{code,message}}. A request
 * without a bearer token gets the 401 challenge the SDK's Key Vault policy expects
 * (WWW-Authenticate: Bearer authorization=..., resource=...). RSA keys do RSA-OAEP-256;
 * oct-HSM keys do A256GCM with `aad`. Versions, disabled keys, denied keys and faults (429 with
 * Retry-After, 503, delays) are supported.
 */
interface KeyVersion {
  id: string;
  enabled: boolean;
  rsa?: { publicKey: KeyObject; privateKey: KeyObject };
  aes?: Buffer;
}
interface EmuKey {
  kty: 'RSA' | 'oct-HSM';
  versions: KeyVersion[];
  denied: boolean;
}

class KvFault extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

const b64u = (v: unknown) => Buffer.from(typeof v === 'string' ? v : '', 'base64url');

export class AzureKvEmulator {
  readonly faults = new Faults();
  readonly keys = new Map<string, EmuKey>();
  readonly tokens = new Set(['azure-test-token']);
  challenges = 0;
  private running?: Running;

  constructor(private readonly tls: { key: string; cert: string }) {}

  get url(): string {
    return this.running!.url;
  }

  async start(): Promise<this> {
    this.running = await listen((req, body, res) => this.handle(req, body, res), this.tls);
    return this;
  }

  async close(): Promise<void> {
    await this.running?.close();
  }

  addKey(name: string, kty: EmuKey['kty'] = 'RSA'): EmuKey {
    const key: EmuKey = { kty, versions: [], denied: false };
    this.keys.set(name, key);
    this.rotate(name);
    return key;
  }

  rotate(name: string): string {
    const key = this.keys.get(name)!;
    const v: KeyVersion = { id: randomBytes(16).toString('hex'), enabled: true };
    if (key.kty === 'RSA') v.rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    else v.aes = randomBytes(32);
    key.versions.push(v);
    return v.id;
  }

  private kid(name: string, v: KeyVersion): string {
    return `${this.url}/keys/${name}/${v.id}`;
  }

  private async handle(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', this.url);
      if (!url.searchParams.get('api-version')) throw new KvFault(400, 'BadParameter', 'api-version is required');
      const auth = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
      if (!auth || !this.tokens.has(auth[1])) {
        this.challenges++;
        throw new KvFault(401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.', {
          'www-authenticate': 'Bearer authorization="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000001", resource="https://vault.azure.net"',
        });
      }
      const fault = this.faults.take();
      if (fault === 'throttle') throw new KvFault(429, 'Throttled', 'Request was not processed because too many requests were received.', { 'retry-after': '0' });
      if (fault === 'error') throw new KvFault(503, 'ServiceUnavailable', 'The service is unavailable.');
      if (fault === 'delay') await delay(this.faults.delayMs);
      const created = /^\/keys\/([A-Za-z0-9-]+)\/create$/.exec(url.pathname);
      if (created && req.method === 'POST') {
        const b = JSON.parse(raw.toString('utf8') || '{}') as { kty?: string };
        if (b.kty !== 'RSA' && b.kty !== 'oct-HSM') throw new KvFault(400, 'BadParameter', `kty ${String(b.kty)} not supported here`);
        const key = this.addKey(created[1], b.kty);
        sendJson(res, 200, this.bundle(created[1], key, key.versions[0]));
        return;
      }
      const m = /^\/keys\/([A-Za-z0-9-]+)(?:\/([A-Za-z0-9]*))?(?:\/(encrypt|decrypt|wrapkey|unwrapkey))?\/?$/.exec(url.pathname);
      if (!m) throw new KvFault(404, 'NotFound', `no route ${url.pathname}`);
      const [, name, versionId, op] = m;
      const key = this.keys.get(name);
      if (!key) throw new KvFault(404, 'KeyNotFound', `A key with (name/id) ${name} was not found in this key vault.`);
      if (key.denied) throw new KvFault(403, 'Forbidden', `The user, group or application does not have keys ${op ?? 'get'} permission on key vault.`);
      const v = versionId ? key.versions.find((x) => x.id === versionId) : key.versions[key.versions.length - 1];
      if (!v) throw new KvFault(404, 'KeyNotFound', `A key with (name/id) ${name}/${versionId} was not found in this key vault.`);
      if (!op) {
        if (req.method !== 'GET') throw new KvFault(405, 'MethodNotAllowed', 'GET only');
        sendJson(res, 200, this.bundle(name, key, v));
        return;
      }
      if (req.method !== 'POST') throw new KvFault(405, 'MethodNotAllowed', 'POST only');
      if (!v.enabled) throw new KvFault(403, 'Forbidden', `Operation ${op} is not allowed on a disabled key.`);
      const body = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
      sendJson(res, 200, { kid: this.kid(name, v), ...this.crypt(key, v, op, body) });
    } catch (err) {
      const f = err instanceof KvFault ? err : new KvFault(500, 'InternalServerError', String(err));
      sendJson(res, f.status, { error: { code: f.code, message: f.message } }, f.headers);
    }
  }

  private bundle(name: string, key: EmuKey, v: KeyVersion) {
    const jwk: Record<string, unknown> = { kid: this.kid(name, v), kty: key.kty };
    if (v.rsa) {
      const pub = v.rsa.publicKey.export({ format: 'jwk' });
      Object.assign(jwk, { n: pub.n, e: pub.e, key_ops: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'] });
    } else {
      jwk.key_ops = ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'];
    }
    return { key: jwk, attributes: { enabled: v.enabled, created: 1700000000, updated: 1700000000, recoveryLevel: 'Recoverable' } };
  }

  private crypt(key: EmuKey, v: KeyVersion, op: string, b: Record<string, unknown>): Record<string, string> {
    const value = b64u(b.value);
    const bad = (msg = 'Bad Request') => new KvFault(400, 'BadParameter', msg);
    if (key.kty === 'RSA') {
      if (b.alg !== 'RSA-OAEP-256') throw bad(`algorithm ${String(b.alg)} not supported here`);
      const oaep = { padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' };
      if (op === 'encrypt' || op === 'wrapkey') return { value: publicEncrypt({ key: v.rsa!.publicKey, ...oaep }, value).toString('base64url') };
      try {
        return { value: privateDecrypt({ key: v.rsa!.privateKey, ...oaep }, value).toString('base64url') };
      } catch {
        throw bad('Decryption failed.');
      }
    }
    if (b.alg !== 'A256GCM') throw bad(`algorithm ${String(b.alg)} not supported here`);
    const aad = b64u(b.aad);
    if (op === 'encrypt' || op === 'wrapkey') {
      if (b.iv) throw bad('iv must not be supplied for A256GCM encrypt on Managed HSM');
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', v.aes!, iv);
      c.setAAD(aad);
      const ct = Buffer.concat([c.update(value), c.final()]);
      return { value: ct.toString('base64url'), iv: iv.toString('base64url'), tag: c.getAuthTag().toString('base64url'), aad: aad.toString('base64url') };
    }
    const iv = b64u(b.iv);
    const tag = b64u(b.tag);
    if (iv.length !== 12 || tag.length !== 16) throw bad('iv and tag are required');
    const d = createDecipheriv('aes-256-gcm', v.aes!, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    try {
      return { value: Buffer.concat([d.update(value), d.final()]).toString('base64url') };
    } catch {
      throw bad('Decryption failed.');
    }
  }
}
