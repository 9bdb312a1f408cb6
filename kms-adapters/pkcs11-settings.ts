import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { ConfigError } from './errors';
import { secretFileExposure } from './secret-file';

/**
 * Settings of the PKCS#11 adapter, validated once at start-up. Messages name the environment
 * setting an operator has to fix and never contain the PIN.
 */
export interface Pkcs11Settings {
  /** Absolute path of the vendor's PKCS#11 library (CS_PKCS11_MODULE). */
  module: string;
  /** User PIN (CS_PKCS11_PIN, or read from CS_PKCS11_PIN_FILE). */
  pin: string;
  /** Sessions per token (CS_PKCS11_SESSIONS): how many operations may run on the HSM at once. */
  sessions: number;
  /** Token for createKey, logged into at start-up so a wrong PIN stops boot (CS_PKCS11_TOKEN). */
  token?: string;
  /** How long a caller waits for the HSM before a 503 (CS_KMS_TIMEOUT_MS). */
  timeoutMs: number;
}

const DEFAULT_TIMEOUT_MS = 5000;

const DEFAULT_SESSIONS = 4;
const MAX_SESSIONS = 64;

export function readPkcs11Settings(s: Readonly<Record<string, unknown>>): Pkcs11Settings {
  const module = s.module;
  if (typeof module !== 'string' || module === '') {
    throw new ConfigError('CS_PKCS11_MODULE: set it to the absolute path of the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so)');
  }
  // A bare name would be resolved through the dynamic loader's search path: refuse the ambiguity.
  if (!isAbsolute(module)) throw new ConfigError('CS_PKCS11_MODULE: must be an absolute path to the PKCS#11 library');
  if (!existsSync(module) || !statSync(module).isFile()) throw new ConfigError(`CS_PKCS11_MODULE: ${module} does not exist or is not a file`);

  const timeoutMs = typeof s.timeoutMs === 'number' && s.timeoutMs > 0 ? s.timeoutMs : DEFAULT_TIMEOUT_MS;
  const settings: Pkcs11Settings = { module, pin: readPin(s.pin, s.pinFile), sessions: readSessions(s.sessions), timeoutMs };
  if (s.token !== undefined && s.token !== '') {
    if (typeof s.token !== 'string' || Buffer.byteLength(s.token, 'utf8') > 32) {
      throw new ConfigError('CS_PKCS11_TOKEN: must be a token label of at most 32 bytes');
    }
    settings.token = s.token;
  }
  return settings;
}

function readPin(pin: unknown, pinFile: unknown): string {
  const hasPin = pin !== undefined && pin !== '';
  const hasFile = pinFile !== undefined && pinFile !== '';
  if (hasPin && hasFile) throw new ConfigError('CS_PKCS11_PIN and CS_PKCS11_PIN_FILE are both set; set only one');
  if (!hasPin && !hasFile) throw new ConfigError('CS_PKCS11_PIN or CS_PKCS11_PIN_FILE must be set to the token user PIN');
  if (hasPin) {
    if (typeof pin !== 'string') throw new ConfigError('CS_PKCS11_PIN: must be a string');
    return pin;
  }
  if (typeof pinFile !== 'string' || !isAbsolute(pinFile)) throw new ConfigError('CS_PKCS11_PIN_FILE: must be an absolute path');
  if (!existsSync(pinFile) || !statSync(pinFile).isFile()) throw new ConfigError(`CS_PKCS11_PIN_FILE: ${pinFile} does not exist or is not a file`);
  const exposed = secretFileExposure(statSync(pinFile));
  if (exposed) throw new ConfigError(`CS_PKCS11_PIN_FILE: ${pinFile} is readable by ${exposed === 'group' ? 'a group other than this process\'s primary group, or group-writable' : 'others'}; chmod 600 it`);
  // Editors and `echo` add one trailing newline; it is not part of the PIN.
  const fromFile = readFileSync(pinFile, 'utf8').replace(/\r?\n$/, '');
  if (fromFile === '') throw new ConfigError(`CS_PKCS11_PIN_FILE: ${pinFile} is empty`);
  return fromFile;
}

function readSessions(value: unknown): number {
  if (value === undefined || value === '') return DEFAULT_SESSIONS;
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_SESSIONS) {
    throw new ConfigError(`CS_PKCS11_SESSIONS: must be a whole number from 1 to ${MAX_SESSIONS}`);
  }
  return n;
}
