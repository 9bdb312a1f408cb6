import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { delay, Faults, listen, type Running, sendJson, strictBase64 } from './common';

/**
 * HashiCorp Vault emulator: the Transit engine on mount `transit` (encrypt, decrypt, rewrap,
 * keys read/create/rotate) plus AppRole and Kubernetes login, with X-Vault-Token checks,
 * an optional required X-Vault-Namespace, per-key denial, min_decryption_version, and fault
 * injection (429, 503 sealed, delays). aes256-gcm96 ciphertexts are
 * `vault:vN:` + base64(nonce(12) || ct || tag(16)) with associated_data as GCM AAD, like Vault.
 */
interface TransitKey {
  type: 'aes256-gcm96' | 'rsa-2048';
  versions: Buffer[];
  rsa: { publicKey: KeyObject; privateKey: KeyObject }[];
  minDecryptionVersion: number;
  denied: boolean;
}

class VaultFault extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class VaultEmulator {
  readonly faults = new Faults();
  readonly keys = new Map<string, TransitKey>();
  readonly tokens = new Set<string>(['root-test-token']);
  appRole = { roleId: 'role-1', secretId: 'secret-1' };
  k8s = { role: 'crypto-server', jwt: 'eyJ.k8s.jwt' };
  /** Lease given to login tokens, seconds. */
  leaseSeconds = 3600;
  namespace?: string;
  logins = 0;
  private running?: Running;

  constructor(private readonly tls?: { key: string; cert: string }) {}

  get hostPort(): string {
    return `127.0.0.1:${this.running!.port}`;
  }

  async start(): Promise<this> {
    this.running = await listen((req, body, res) => this.handle(req, body, res), this.tls);
    return this;
  }

  async close(): Promise<void> {
    await this.running?.close();
  }

  addKey(name: string, type: TransitKey['type'] = 'aes256-gcm96'): TransitKey {
    const key: TransitKey = { type, versions: [], rsa: [], minDecryptionVersion: 1, denied: false };
    this.keys.set(name, key);
    this.rotate(name);
    return key;
  }

  rotate(name: string): void {
    const k = this.keys.get(name)!;
    if (k.type === 'rsa-2048') k.rsa.push(generateKeyPairSync('rsa', { modulusLength: 2048 }));
    else k.versions.push(randomBytes(32));
  }

  latest(k: TransitKey): number {
    return k.type === 'rsa-2048' ? k.rsa.length : k.versions.length;
  }

  private async handle(req: IncomingMessage, raw: Buffer, res: ServerResponse): Promise<void> {
    try {
      const fault = this.faults.take();
      if (fault === 'throttle') throw new VaultFault(429, 'request path "transit/": rate limit quota exceeded');
      if (fault === 'error') throw new VaultFault(503, 'Vault is sealed');
      if (fault === 'delay') await delay(this.faults.delayMs);
      if (this.namespace && req.headers['x-vault-namespace'] !== this.namespace) throw new VaultFault(404, 'no handler for route');
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const body = raw.length ? (JSON.parse(raw.toString('utf8')) as Record<string, unknown>) : {};
      const out = this.route(req.method ?? 'GET', path, body, String(req.headers['x-vault-token'] ?? ''));
      if (out === undefined) {
        res.writeHead(204).end();
        return;
      }
      sendJson(res, 200, { request_id: randomUUID(), ...out });
    } catch (err) {
      const f = err instanceof VaultFault ? err : new VaultFault(500, String(err));
      sendJson(res, f.status, { errors: [f.message] });
    }
  }

  private route(method: string, path: string, b: Record<string, unknown>, token: string): Record<string, unknown> | undefined {
    if (method === 'POST' && path === '/v1/auth/approle/login') {
      if (b.role_id !== this.appRole.roleId || b.secret_id !== this.appRole.secretId) throw new VaultFault(400, 'invalid role or secret ID');
      return this.login();
    }
    if (method === 'POST' && path === '/v1/auth/kubernetes/login') {
      if (b.role !== this.k8s.role || b.jwt !== this.k8s.jwt) throw new VaultFault(403, 'permission denied');
      return this.login();
    }
    if (!this.tokens.has(token)) throw new VaultFault(403, 'permission denied');
    const m = /^\/v1\/transit\/(encrypt|decrypt|rewrap|keys)\/([A-Za-z0-9_.-]+)(\/rotate)?$/.exec(path);
    if (!m) throw new VaultFault(404, 'no handler for route');
    const [, op, name, rotate] = m;
    if (op === 'keys' && method === 'POST' && !rotate) {
      this.addKey(name, b.type === 'rsa-2048' ? 'rsa-2048' : 'aes256-gcm96');
      return undefined;
    }
    const key = this.keys.get(name);
    if (key?.denied) throw new VaultFault(403, '1 error occurred:\n\t* permission denied\n\n');
    if (op === 'keys' && method === 'GET') {
      if (!key) throw new VaultFault(404, '');
      const versions = Object.fromEntries(Array.from({ length: this.latest(key) }, (_, i) => [String(i + 1), 1700000000]));
      return { data: { name, type: key.type, latest_version: this.latest(key), min_decryption_version: key.minDecryptionVersion, keys: versions, supports_encryption: true, supports_decryption: true } };
    }
    if (!key) throw new VaultFault(400, 'encryption key not found');
    if (rotate) {
      this.rotate(name);
      return undefined;
    }
    switch (op) {
      case 'encrypt': {
        const pt = strictBase64(b.plaintext);
        if (!pt) throw new VaultFault(400, 'failed to base64-decode plaintext');
        return { data: this.encrypt(key, pt, b.associated_data) };
      }
      case 'decrypt':
        return { data: { plaintext: this.decrypt(key, b.ciphertext, b.associated_data).toString('base64') } };
      case 'rewrap':
        return { data: this.encrypt(key, this.decrypt(key, b.ciphertext, b.associated_data), b.associated_data) };
    }
    throw new VaultFault(405, 'unsupported operation');
  }

  private login(): Record<string, unknown> {
    this.logins++;
    const token = `hvs.${randomBytes(12).toString('hex')}`;
    this.tokens.add(token);
    return { auth: { client_token: token, lease_duration: this.leaseSeconds, renewable: true, policies: ['crypto-server'] } };
  }

  private encrypt(key: TransitKey, pt: Buffer, ad: unknown): { ciphertext: string; key_version: number } {
    const v = this.latest(key);
    if (key.type === 'rsa-2048') {
      if (ad !== undefined) throw new VaultFault(400, 'associated data not supported for key type rsa-2048');
      const ct = publicEncrypt({ key: key.rsa[v - 1].publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, pt);
      return { ciphertext: `vault:v${v}:${ct.toString('base64')}`, key_version: v };
    }
    const aad = ad === undefined ? Buffer.alloc(0) : strictBase64(ad);
    if (!aad) throw new VaultFault(400, 'failed to base64-decode associated_data');
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key.versions[v - 1], iv);
    c.setAAD(aad);
    const ct = Buffer.concat([iv, c.update(pt), c.final(), c.getAuthTag()]);
    return { ciphertext: `vault:v${v}:${ct.toString('base64')}`, key_version: v };
  }

  private decrypt(key: TransitKey, ciphertext: unknown, ad: unknown): Buffer {
    const m = typeof ciphertext === 'string' ? /^vault:v(\d+):(.*)$/s.exec(ciphertext) : null;
    if (!m) throw new VaultFault(400, 'invalid ciphertext: no prefix');
    const v = Number(m[1]);
    if (v < 1 || v > this.latest(key)) throw new VaultFault(400, 'invalid ciphertext: invalid key version');
    if (v < key.minDecryptionVersion) throw new VaultFault(400, 'ciphertext or signature version is disallowed by policy (too old)');
    const blob = strictBase64(m[2]);
    if (!blob) throw new VaultFault(400, 'invalid ciphertext: could not decode');
    if (key.type === 'rsa-2048') {
      try {
        return privateDecrypt({ key: key.rsa[v - 1].privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, blob);
      } catch {
        throw new VaultFault(400, 'crypto/rsa: decryption error');
      }
    }
    const aad = ad === undefined ? Buffer.alloc(0) : strictBase64(ad);
    if (!aad || blob.length < 28) throw new VaultFault(400, 'invalid ciphertext: too short');
    const d = createDecipheriv('aes-256-gcm', key.versions[v - 1], blob.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(blob.subarray(blob.length - 16));
    try {
      return Buffer.concat([d.update(blob.subarray(12, blob.length - 16)), d.final()]);
    } catch {
      throw new VaultFault(400, 'cipher: message authentication failed');
    }
  }
}
