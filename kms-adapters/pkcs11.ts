import { randomBytes } from 'node:crypto';
import { endianness } from 'node:os';
import type * as Pkcs11Js from 'pkcs11js';
import { checkAdapter } from './check';
import type { AdapterFactory, BindingContext, KmsAdapter, WrapResult } from './types';
import { canonicalContext } from './associated-data';
import { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11KeyRef } from './pkcs11-uri';
import { SessionPool } from './pkcs11-session-pool';
import { readPkcs11Settings, type Pkcs11Settings } from './pkcs11-settings';
import { ckrOf, DECRYPT_REFUSALS, faultKind, PIN_FAULTS, toKmsError } from './pkcs11-errors';
import { ConfigError, KmsConfigurationError, KmsRequestError, KmsUnavailableError, UnwrapRefusedError } from './errors';

/**
 * `pkcs11:token=LABEL;object=KEYLABEL` — AES-256-GCM inside a PKCS#11 token (HSM, SoftHSM2).
 * The KEK never leaves the token: it is CKA_SENSITIVE and not CKA_EXTRACTABLE (checked on first
 * use), and every encryption and decryption runs in the token.
 *
 * Ciphertext layout (never change in place; add a new adapter scheme or version instead):
 *
 *   iv (12 bytes, random) || AES-GCM ciphertext (same length as the plaintext) || tag (16 bytes)
 *   AAD = canonicalContext(context); CKM_AES_GCM with ulIvBits = 96, ulTagBits = 128.
 *
 * The IV comes from node's CSPRNG: random 96-bit IVs are safe for well under 2^32 wraps per key.
 * pkcs11js runs C_Encrypt/C_Decrypt/C_GenerateKey on libuv worker threads (the *Async variants),
 * so the event loop only does the short C_*Init calls; that is also why C_Initialize passes
 * CKF_OS_LOCKING_OK: several threads call into the library at once (on different sessions).
 */
type Api = typeof Pkcs11Js;
type Handle = Buffer;

const IV = 12;
const TAG = 16;
const AES_256_BYTES = 32;
const STALE_HANDLE = new Set(['CKR_KEY_HANDLE_INVALID', 'CKR_OBJECT_HANDLE_INVALID']);
const CKS_RW_USER_FUNCTIONS = 3; // CK_STATE of a logged-in R/W session (PKCS#11 2.40 §5.7)

/** One loaded library per module path and process: Cryptoki state (init, login) is per process. */
interface Library {
  api: Api;
  p11: Pkcs11Js.PKCS11;
  refs: number;
  /** False when someone else in this process initialised the library; then they finalise it. */
  ownsInit: boolean;
}
const libraries = new Map<string, Library>();

interface Token {
  label: string;
  slot: Handle;
  pool: SessionPool<Handle>;
  /** Object handles by CKA_LABEL, valid for every session of this application. */
  keys: Map<string, Handle>;
  /** Set after the token refused the PIN: we never retry, so we cannot lock the PIN out. */
  loginRefused?: KmsConfigurationError;
}

export interface Pkcs11Stats {
  sessionsOpened: number;
  logins: number;
  keyLookups: number;
}

export class Pkcs11Adapter implements KmsAdapter {
  readonly scheme = 'pkcs11';
  private readonly api: Api;
  private readonly p11: Pkcs11Js.PKCS11;
  private readonly tokens = new Map<string, Token>();
  private retired: SessionPool<Handle>[] = [];
  private readonly counters: Pkcs11Stats = { sessionsOpened: 0, logins: 0, keyLookups: 0 };
  private creating: Promise<unknown> = Promise.resolve();
  private pin: string;
  private closed = false;

  constructor(
    private readonly library: Library,
    private readonly settings: Pkcs11Settings,
  ) {
    this.api = library.api;
    this.p11 = library.p11;
    this.pin = settings.pin;
  }

  /** Counters for tests and metrics: sessions must be reused, keys looked up once. */
  get stats(): Pkcs11Stats & { sessionsOpen: number } {
    const open = [...this.tokens.values()].reduce((n, t) => n + t.pool.openCount, 0);
    return { ...this.counters, sessionsOpen: open };
  }

  async wrap(keyUri: string, plaintext: Uint8Array, context: BindingContext): Promise<WrapResult> {
    const ref = parsePkcs11Uri(keyUri);
    const aad = canonicalContext(context);
    // Tokens disagree on zero-length GCM input (SoftHSM2: CKR_ARGUMENTS_BAD); a key is never empty.
    if (plaintext.byteLength === 0) throw new KmsRequestError('pkcs11: nothing to wrap (empty plaintext)');
    const iv = randomBytes(IV);
    // A view, not a copy, so there is no second plaintext buffer to zero.
    const input = Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
    const sealed = await this.withKey(ref, 'wrap', async (session, key) => {
      this.p11.C_EncryptInit(session, this.gcm(iv, aad), key);
      return this.p11.C_EncryptAsync(session, input, Buffer.alloc(input.length + TAG));
    });
    return { ciphertext: Buffer.concat([iv, sealed]) };
  }

  async unwrap(keyUri: string, ciphertext: Uint8Array, context: BindingContext): Promise<Buffer> {
    const ref = parsePkcs11Uri(keyUri);
    const aad = canonicalContext(context);
    const data = Buffer.from(ciphertext);
    // We never wrap an empty plaintext, so a blob holds at least iv, one byte and the tag.
    if (data.length <= IV + TAG) throw new UnwrapRefusedError('pkcs11: ciphertext too short');
    const body = data.subarray(IV);
    return this.withKey(ref, 'unwrap', async (session, key) => {
      // Zeroed when the token is done with it, even if the caller stopped waiting (timeout).
      const out = Buffer.alloc(body.length); // SoftHSM2 wants room for the tag as well
      try {
        this.p11.C_DecryptInit(session, this.gcm(data.subarray(0, IV), aad), key);
        let opened: Buffer;
        try {
          opened = await this.p11.C_DecryptAsync(session, body, out);
        } catch (err) {
          throw this.refusalOrFault(session, err);
        }
        const plaintext = Buffer.alloc(opened.length);
        opened.copy(plaintext);
        return plaintext;
      } finally {
        out.fill(0);
      }
    });
  }

  async check(keyUri: string): Promise<void> {
    await checkAdapter(this, keyUri);
  }

  /** A new AES-256 key in the token named by CS_PKCS11_TOKEN (or the only token present). */
  async createKey(label: string): Promise<string> {
    if (typeof label !== 'string' || label === '' || Buffer.byteLength(label, 'utf8') > 255 || /[\u0000-\u001f\u007f]/.test(label)) {
      throw new KmsRequestError('a pkcs11 key label must be 1 to 255 bytes of printable text');
    }
    const ref: Pkcs11KeyRef = { token: this.settings.token ?? this.onlyTokenLabel(), object: label };
    // One at a time, so two callers cannot both see "no such label" and create twins.
    const created = this.creating.then(() => this.generate(ref));
    this.creating = created.catch(() => undefined);
    return created;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Login state belongs to the process, not to this adapter: log out only as the last user.
    if (this.library.refs === 1) {
      for (const t of this.tokens.values()) {
        if (t.pool.openCount > 0) await t.pool.run(async (s) => this.p11.C_Logout(s)).catch(() => undefined);
      }
    }
    await Promise.all([...this.tokens.values()].map((t) => t.pool.close()).concat(this.retired.map((p) => p.close())));
    this.tokens.clear();
    this.pin = '';
    releaseLibrary(this.settings.module, this.library);
  }

  /** Logs into `tokenLabel` now, so a wrong PIN or token label stops start-up. */
  async login(tokenLabel: string): Promise<void> {
    const t = this.token({ token: tokenLabel, object: '' });
    await t.pool.run(async () => undefined).catch((err) => {
      throw toKmsError(err, `login to token "${tokenLabel}"`);
    });
  }

  private gcm(iv: Buffer, aad: Buffer): Pkcs11Js.Mechanism {
    const parameter: Pkcs11Js.AesGCM = { type: this.api.CK_PARAMS_AES_GCM, iv, aad, ivBits: IV * 8, tagBits: TAG * 8 };
    return { mechanism: this.api.CKM_AES_GCM, parameter };
  }

  /** Runs `fn` on a borrowed session with the key's handle; maps token errors to typed ones. */
  private async withKey<T>(ref: Pkcs11KeyRef, op: string, fn: (session: Handle, key: Handle) => Promise<T>): Promise<T> {
    const t = this.token(ref);
    const where = `${op} with key "${ref.object}" on token "${ref.token}"`;
    const attempt = () => this.bounded(t.pool.run(async (session) => fn(session, this.keyHandle(t, session, ref.object))), where);
    try {
      try {
        return await attempt();
      } catch (err) {
        // A cached handle can go stale (key re-created, token re-logged-in): look it up once more.
        if (!STALE_HANDLE.has(ckrOf(err) ?? '')) throw err;
        t.keys.delete(ref.object);
        return await attempt();
      }
    } catch (err) {
      throw this.fault(t, err, where);
    }
  }

  /**
   * Stops waiting for a hung HSM after `timeoutMs` with a 503. The native call cannot be
   * cancelled: its session stays borrowed until the token answers, so it is never reused mid-call.
   */
  private bounded<T>(work: Promise<T>, where: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new KmsUnavailableError(`pkcs11: ${where}: no answer from the HSM within ${this.settings.timeoutMs} ms`)), this.settings.timeoutMs);
    });
    work.catch(() => undefined); // a late failure after the timeout is nobody's to handle
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  private fault(t: Token, err: unknown, where: string): unknown {
    const ckr = ckrOf(err);
    if (ckr && faultKind(ckr) === 'token') this.forget(t);
    if (ckr && faultKind(ckr) === 'key') t.keys.clear();
    return toKmsError(err, where);
  }

  /** After a token-level fault: drop its sessions, handles and slot, and look it up afresh. */
  private forget(t: Token): void {
    t.pool.reset();
    t.keys.clear();
    for (const [k, v] of this.tokens) if (v === t) this.tokens.delete(k);
    // Kept until its borrowed sessions come back, so close() can wait for them.
    this.retired = this.retired.filter((p) => p.openCount > 0).concat(t.pool);
  }

  /**
   * A decrypt error is a refusal (tag mismatch) only if the session still answers; otherwise the
   * token itself is failing and the caller should hear "unavailable", not "not yours".
   */
  private refusalOrFault(session: Handle, err: unknown): unknown {
    const ckr = ckrOf(err);
    if (!ckr || !DECRYPT_REFUSALS.has(ckr)) return err;
    try {
      this.p11.C_GetSessionInfo(session);
    } catch (probe) {
      return probe;
    }
    return new UnwrapRefusedError(`pkcs11: C_Decrypt returned ${ckr}`);
  }

  private token(ref: Pkcs11KeyRef): Token {
    if (this.closed) throw new KmsConfigurationError('pkcs11: adapter is closed');
    const cacheKey = `${ref.token}\u0000${ref.slotId ?? ''}`;
    const cached = this.tokens.get(cacheKey);
    if (cached) return cached;
    const slot = this.findSlot(ref);
    const t: Token = { label: ref.token, slot, pool: undefined as never, keys: new Map() };
    t.pool = new SessionPool<Handle>(this.settings.sessions, () => this.openSession(t), (s) => this.p11.C_CloseSession(s));
    // Two URIs naming the same slot (with and without slot-id) share one pool and one login.
    const same = [...this.tokens.values()].find((o) => o.slot.equals(slot));
    this.tokens.set(cacheKey, same ?? t);
    return same ?? t;
  }

  private findSlot(ref: Pkcs11KeyRef): Handle {
    let matches: Handle[];
    try {
      matches = this.p11.C_GetSlotList(true).filter((slot) => {
        const info = this.p11.C_GetTokenInfo(slot);
        if ((info.flags & this.api.CKF_TOKEN_INITIALIZED) === 0) return false;
        if (info.label.replace(/ +$/, '') !== ref.token) return false;
        return ref.slotId === undefined || slotDecimal(slot) === ref.slotId;
      });
    } catch (err) {
      throw toKmsError(err, 'listing slots');
    }
    const slotText = ref.slotId === undefined ? '' : ` in slot ${ref.slotId}`;
    if (matches.length === 0) {
      throw new KmsConfigurationError(`pkcs11: no initialised token labelled "${ref.token}"${slotText} in CS_PKCS11_MODULE ${this.settings.module}`);
    }
    if (matches.length > 1) {
      throw new KmsConfigurationError(`pkcs11: ${matches.length} tokens are labelled "${ref.token}"; add ;slot-id=N to the key URI`);
    }
    return matches[0];
  }

  private openSession(t: Token): Handle {
    if (t.loginRefused) throw t.loginRefused;
    const { api, p11 } = this;
    let session: Handle;
    try {
      session = p11.C_OpenSession(t.slot, api.CKF_SERIAL_SESSION | api.CKF_RW_SESSION);
    } catch (err) {
      throw toKmsError(err, `opening a session on token "${t.label}"`);
    }
    this.counters.sessionsOpened++;
    try {
      // Login is per token and application: later sessions are born logged in.
      if (p11.C_GetSessionInfo(session).state !== CKS_RW_USER_FUNCTIONS) {
        this.counters.logins++;
        // We were logged out (every session closed): handles of private objects died with it.
        t.keys.clear();
        try {
          p11.C_Login(session, api.CKU_USER, this.pin);
        } catch (err) {
          const ckr = ckrOf(err);
          if (ckr !== 'CKR_USER_ALREADY_LOGGED_IN') {
            const typed = toKmsError(err, `login to token "${t.label}"`);
            if (ckr && PIN_FAULTS.has(ckr)) t.loginRefused = typed as KmsConfigurationError;
            throw typed;
          }
        }
      }
      return session;
    } catch (err) {
      try {
        p11.C_CloseSession(session);
      } catch {
        // The session is unusable either way; report the first error.
      }
      throw toKmsError(err, `opening a session on token "${t.label}"`);
    }
  }

  private findKeys(session: Handle, label: string): Handle[] {
    this.p11.C_FindObjectsInit(session, [
      { type: this.api.CKA_CLASS, value: this.api.CKO_SECRET_KEY },
      { type: this.api.CKA_LABEL, value: Buffer.from(label, 'utf8') },
    ]);
    try {
      return this.p11.C_FindObjects(session, 2);
    } finally {
      this.p11.C_FindObjectsFinal(session);
    }
  }

  private keyHandle(t: Token, session: Handle, label: string): Handle {
    const cached = t.keys.get(label);
    if (cached) return cached;
    this.counters.keyLookups++;
    const found = this.findKeys(session, label);
    if (found.length === 0) {
      throw new KmsConfigurationError(`pkcs11: no secret key labelled "${label}" on token "${t.label}"; fix the key URI or create the key (docs/kms/pkcs11.md)`);
    }
    if (found.length > 1) throw new KmsConfigurationError(`pkcs11: several secret keys are labelled "${label}" on token "${t.label}"; labels must be unique`);
    this.checkKey(session, found[0], label);
    t.keys.set(label, found[0]);
    return found[0];
  }

  /** Refuses keys that could leave the token or are not AES-256 for encrypt and decrypt. */
  private checkKey(session: Handle, key: Handle, label: string): void {
    const { api } = this;
    const types = [api.CKA_KEY_TYPE, api.CKA_VALUE_LEN, api.CKA_ENCRYPT, api.CKA_DECRYPT, api.CKA_SENSITIVE, api.CKA_EXTRACTABLE];
    const [keyType, length, encrypt, decrypt, sensitive, extractable] = this.p11
      .C_GetAttributeValue(session, key, types.map((type) => ({ type })))
      .map((a) => a.value);
    const problems: string[] = [];
    if (ulong(keyType) !== api.CKK_AES || ulong(length) !== AES_256_BYTES) problems.push('it must be an AES-256 key (CKK_AES, CKA_VALUE_LEN 32)');
    if (!bool(encrypt) || !bool(decrypt)) problems.push('it must allow CKA_ENCRYPT and CKA_DECRYPT');
    if (!bool(sensitive) || bool(extractable)) problems.push('it must be CKA_SENSITIVE=true and CKA_EXTRACTABLE=false so it cannot leave the token');
    if (problems.length > 0) throw new KmsConfigurationError(`pkcs11: key "${label}" is not usable: ${problems.join('; ')}`);
  }

  private async generate(ref: Pkcs11KeyRef): Promise<string> {
    const { api } = this;
    const t = this.token(ref);
    try {
      await t.pool.run(async (session) => {
        if (this.findKeys(session, ref.object).length > 0) {
          throw new KmsConfigurationError(`pkcs11: a secret key labelled "${ref.object}" already exists on token "${ref.token}"`);
        }
        const key = await this.p11.C_GenerateKeyAsync(session, { mechanism: api.CKM_AES_KEY_GEN }, [
          { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
          { type: api.CKA_KEY_TYPE, value: api.CKK_AES },
          { type: api.CKA_VALUE_LEN, value: AES_256_BYTES },
          { type: api.CKA_LABEL, value: Buffer.from(ref.object, 'utf8') },
          { type: api.CKA_TOKEN, value: true },
          { type: api.CKA_PRIVATE, value: true },
          { type: api.CKA_SENSITIVE, value: true },
          { type: api.CKA_EXTRACTABLE, value: false },
          { type: api.CKA_ENCRYPT, value: true },
          { type: api.CKA_DECRYPT, value: true },
          // Only what wrapping needs: no key wrapping, signing or derivation with a KEK.
          { type: api.CKA_WRAP, value: false },
          { type: api.CKA_UNWRAP, value: false },
          { type: api.CKA_SIGN, value: false },
          { type: api.CKA_VERIFY, value: false },
          { type: api.CKA_DERIVE, value: false },
        ]);
        t.keys.set(ref.object, key);
      });
    } catch (err) {
      throw this.fault(t, err, `creating key "${ref.object}" on token "${ref.token}"`);
    }
    return formatPkcs11Uri(ref);
  }

  private onlyTokenLabel(): string {
    let labels: string[];
    try {
      labels = this.p11
        .C_GetSlotList(true)
        .map((slot) => this.p11.C_GetTokenInfo(slot))
        .filter((info) => (info.flags & this.api.CKF_TOKEN_INITIALIZED) !== 0)
        .map((info) => info.label.replace(/ +$/, ''));
    } catch (err) {
      throw toKmsError(err, 'listing slots');
    }
    if (labels.length !== 1) throw new KmsConfigurationError(`pkcs11: ${labels.length} tokens present; set CS_PKCS11_TOKEN to the token that holds new keys`);
    return labels[0];
  }
}

/** CK_ULONG attribute values and slot ids arrive as native-endian bytes. */
function ulong(value: Buffer): number {
  if (value.length === 8) return Number(endianness() === 'LE' ? value.readBigUInt64LE() : value.readBigUInt64BE());
  return endianness() === 'LE' ? value.readUInt32LE() : value.readUInt32BE();
}

function bool(value: Buffer): boolean {
  return value.length > 0 && value[0] !== 0;
}

function slotDecimal(slot: Handle): string {
  if (slot.length === 8) return (endianness() === 'LE' ? slot.readBigUInt64LE() : slot.readBigUInt64BE()).toString();
  return ulong(slot).toString();
}

async function loadApi(): Promise<Api> {
  // pkcs11js is CommonJS: node's import() puts module.exports on `default`, jest's interop does not.
  const mod = (await import('pkcs11js')) as Api & { default?: Api };
  return mod.default ?? mod;
}

async function acquireLibrary(path: string): Promise<Library> {
  const api = await loadApi();
  let lib = libraries.get(path);
  if (!lib) {
    const p11 = new api.PKCS11();
    try {
      p11.load(path);
    } catch (err) {
      throw new ConfigError(`CS_PKCS11_MODULE: ${path} could not be loaded as a PKCS#11 library (${(err as Error).message})`);
    }
    let ownsInit = true;
    try {
      p11.C_Initialize({ flags: api.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckrOf(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        p11.close();
        throw new ConfigError(`CS_PKCS11_MODULE: C_Initialize of ${path} failed (${ckrOf(err) ?? (err as Error).message})`);
      }
      ownsInit = false;
    }
    lib = { api, p11, refs: 0, ownsInit };
    libraries.set(path, lib);
  }
  lib.refs++;
  return lib;
}

function releaseLibrary(path: string, lib: Library): void {
  if (--lib.refs > 0) return;
  libraries.delete(path);
  try {
    if (lib.ownsInit) lib.p11.C_Finalize();
    lib.p11.close();
  } catch {
    // Finalising a library whose token vanished can fail; the process state is released anyway.
  }
}

export const createAdapter: AdapterFactory = async ({ settings }) => {
  const options = readPkcs11Settings(settings);
  const adapter = new Pkcs11Adapter(await acquireLibrary(options.module), options);
  if (options.token) {
    try {
      await adapter.login(options.token);
    } catch (err) {
      await adapter.close();
      if (err instanceof KmsConfigurationError) throw new ConfigError(`CS_PKCS11_TOKEN / CS_PKCS11_PIN: ${err.internalDetail}`);
      throw err;
    }
  }
  return adapter;
};

/** Start-up check of a configured key URI (throws with the expected form). */
export function assertKeyUri(keyUri: string): void {
  parsePkcs11Uri(keyUri);
}
