import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { checkAdapter } from './check';
import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { canonicalContext } from './associated-data';
import { ConfigError, UnknownKekError, UnwrapRefusedError } from './errors';
import { secretFileExposure } from './secret-file';

/**
 * `local://NAME` — AES-256-GCM with KEKs derived from one master key (HKDF-SHA256, info names the
 * KEK), so each NAME is a distinct key and per-user KEKs cost nothing. For evaluation and tests:
 * the master key lives on this host, not in an HSM.
 *
 * Ciphertext: iv (12 bytes) || AES-GCM ciphertext || tag (16 bytes); AAD = canonicalContext().
 */
const IV = 12;
const TAG = 16;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function localKeyName(keyUri: string): string {
  const m = /^local:\/\/([^/?#]+)$/.exec(keyUri);
  if (!m || !NAME.test(m[1])) throw new UnknownKekError(`"${keyUri}" is not a local key URI (local://NAME, NAME of letters, digits, . _ -)`);
  return m[1];
}

export class LocalAdapter implements KmsAdapter {
  readonly scheme = 'local';
  private readonly keks = new Map<string, Buffer>();

  constructor(private readonly masterKey: Buffer) {
    if (masterKey.length !== 32) throw new ConfigError('CS_LOCAL_MASTER_KEY: must be 32 bytes, base64-encoded');
  }

  private kek(keyUri: string): Buffer {
    const name = localKeyName(keyUri);
    let k = this.keks.get(name);
    if (!k) {
      k = Buffer.from(hkdfSync('sha256', this.masterKey, Buffer.alloc(0), `crypto-server/local-kek/v1/${name}`, 32));
      this.keks.set(name, k);
    }
    return k;
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const iv = randomBytes(IV);
    const cipher = createCipheriv('aes-256-gcm', this.kek(keyUri), iv);
    cipher.setAAD(canonicalContext(context));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { ciphertext: Buffer.concat([iv, ct, cipher.getAuthTag()]) };
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext): Promise<Buffer> {
    const data = Buffer.from(ciphertext);
    if (data.length < IV + TAG) throw new UnwrapRefusedError('local: ciphertext too short');
    const decipher = createDecipheriv('aes-256-gcm', this.kek(keyUri), data.subarray(0, IV));
    decipher.setAAD(canonicalContext(context));
    decipher.setAuthTag(data.subarray(data.length - TAG));
    const out = decipher.update(data.subarray(IV, data.length - TAG));
    try {
      decipher.final();
    } catch {
      out.fill(0);
      throw new UnwrapRefusedError('local: authentication tag mismatch');
    }
    return out;
  }

  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  async createKey(label: string): Promise<string> {
    const name = label.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 128);
    return `local://${name}`;
  }

  async close(): Promise<void> {
    for (const k of this.keks.values()) k.fill(0);
    this.keks.clear();
    this.masterKey.fill(0);
  }
}

/** Reads the master key file, or creates it (0600, exclusive) when allowed. */
export function loadOrCreateMasterKey(path: string, create: boolean): { key: Buffer; created: boolean } {
  if (existsSync(path)) {
    const exposed = secretFileExposure(statSync(path));
    if (exposed) throw new ConfigError(`local master key file ${path} is readable by ${exposed === 'group' ? 'a group other than this process\'s primary group, or group-writable' : 'others'}; chmod 600 it`);
    const key = Buffer.from(readFileSync(path, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new ConfigError(`local master key file ${path} does not hold 32 base64-encoded bytes`);
    return { key, created: false };
  }
  if (!create) {
    throw new ConfigError(
      `CS_LOCAL_MASTER_KEY_FILE: ${path} does not exist. If this database already holds keys, put the master key that wrapped them there ` +
        '(or in CS_LOCAL_MASTER_KEY): a new key cannot open them. Only for a new, empty deployment set CS_LOCAL_CREATE_MASTER_KEY=true. ' +
        'In production, use an HSM or cloud KMS (docs/kms/).',
    );
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    writeSync(fd, key.toString('base64') + '\n');
  } finally {
    closeSync(fd);
  }
  return { key, created: true };
}

export const createAdapter: AdapterFactory = async ({ settings, notice }) => {
  if (typeof settings.masterKey === 'string' && settings.masterKey.length > 0) {
    return new LocalAdapter(Buffer.from(settings.masterKey, 'base64'));
  }
  const path = String(settings.masterKeyFile ?? '');
  const { key, created } = loadOrCreateMasterKey(path, settings.createMasterKey === true);
  if (created) notice?.(`created local master key ${path} (mode 0600) — back it up: without it, wrapped keys cannot be opened`);
  return new LocalAdapter(key);
};

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  localKeyName(keyUri);
}
