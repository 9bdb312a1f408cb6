import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import type { KmsRegistry } from '../../kms-adapters/registry';
import type { BindingContext } from '../../kms-adapters/types';
import type { Config } from '../config';
import type { Store } from '../repositories/store';
import type { SigningKeyRow } from '../../entities';
import type { OpContext } from '../keys/types';
import { TOKEN_ALG, type VerificationKey } from './tokens';
import { deadlock, uniqueViolation } from '../repositories/db-errors';

/**
 * Access-token signing keys. The private JWK is wrapped by the KMS (purpose=token-signing-key,
 * bound to its kid) and only unwrapped into memory to sign; the public JWKs of the active key and
 * of keys retired less than one token lifetime ago are published at /.well-known/jwks.json.
 *
 * Rotation: `rotate()` makes a new key active and retires the others; tokens they signed stay
 * verifiable until they expire. `signingKey()` rotates by itself when the active key is older
 * than the rotation period, so a fresh installation needs no step. Several replicas read the same
 * table and may find the key due at the same moment: each new key takes the next generation
 * number, which is unique, so one replica's key commits and the others drop theirs and sign with it.
 */
export const signingKeyBinding = (kid: string): BindingContext => ({ purpose: 'token-signing-key', kid });

/** Tries at a generation before giving up: a race is lost to a key that is then there to use. */
const GENERATION_ATTEMPTS = 3;

/** A new key, wrapped by the KMS, not yet stored. */
type NewKey = Omit<SigningKeyRow, 'generation' | 'createdAt'>;

export interface SigningKeyOptions {
  kekUri: string;
  rotationDays: number;
  tokenTtlSeconds: number;
  /** How long a replica trusts its in-memory view of the table (ms). */
  cacheMs?: number;
}

/** The public view of the table: what verifying and publishing need, loaded with no KMS call. */
interface Loaded {
  at: number;
  active?: SigningKeyRow;
  published: Map<string, { jwk: JWK; key: VerificationKey }>;
  /** The highest generation in the table when `active` was read: a rotation decided on this view takes the next. */
  generation: number;
}

interface Signer {
  kid: string;
  privateKey: VerificationKey;
}

export class SigningKeyService {
  private loaded?: Loaded;
  /**
   * The active key's private half, unwrapped only when a token is issued; never needed to verify.
   * Concurrent first requests share one unwrap; a failed one is not kept.
   */
  private signer?: { kid: string; opening: Promise<Signer> };
  private loading?: Promise<Loaded>;
  /** One automatic rotation at a time in this process (concurrent first requests share it). */
  private autoRotation?: Promise<unknown>;

  constructor(
    private readonly store: Store,
    private readonly kms: KmsRegistry,
    private readonly options: SigningKeyOptions,
    private readonly clock: () => Date = () => new Date(),
  ) {}

  static fromConfig(config: Readonly<Config>, store: Store, kms: KmsRegistry): SigningKeyService {
    return new SigningKeyService(store, kms, {
      kekUri: config.kms.kekUri,
      rotationDays: config.auth.tokens.rotationDays,
      tokenTtlSeconds: config.auth.tokens.ttlSeconds,
    });
  }

  /** Creates a new active key and retires the rest (`crypto-server signing-keys rotate`). */
  async rotate(ctx: OpContext): Promise<string> {
    const key = await this.newKey(ctx);
    for (let attempt = 1; attempt <= GENERATION_ATTEMPTS; attempt++) {
      if (await this.commit(key, (await this.store.repos.signingKeys.maxGeneration()) + 1, ctx)) return key.kid;
    }
    throw new Error(`token-signing key ${key.kid} lost ${GENERATION_ATTEMPTS} races for a generation to concurrent rotations; run the rotation again`);
  }

  /**
   * Rotates what `view` found due (no key, or an old one), at the generation after the view's: false
   * when another replica took that generation first (its key is the one to use).
   */
  private async rotateDue(ctx: OpContext, view: Loaded): Promise<boolean> {
    return this.commit(await this.newKey(ctx), view.generation + 1, ctx);
  }

  private async newKey(ctx: OpContext): Promise<NewKey> {
    const { publicKey, privateKey } = await generateKeyPair(TOKEN_ALG, { extractable: true });
    const publicJwk = await exportJWK(publicKey);
    const privateJwk = await exportJWK(privateKey);
    const kid = `${(await calculateJwkThumbprint(publicJwk)).slice(0, 16)}-${randomBytes(4).toString('hex')}`;
    const plaintext = Buffer.from(JSON.stringify(privateJwk), 'utf8');
    try {
      const wrapped = await this.kms.wrap(this.options.kekUri, plaintext, signingKeyBinding(kid));
      const jwk = JSON.stringify({ ...publicJwk, kid, alg: TOKEN_ALG, use: 'sig' });
      return { kid, alg: TOKEN_ALG, publicJwk: jwk, wrappedPrivateJwk: wrapped, kekUri: this.options.kekUri, state: 'active', retiredAt: null };
    } catch (err) {
      await this.store.audit({ ...ctx, action: 'token-signing-key.rotate', outcome: 'failure', targetType: 'signing-key', targetId: kid, kekUri: this.options.kekUri }).catch(() => undefined);
      throw err;
    } finally {
      plaintext.fill(0);
      delete privateJwk.d;
    }
  }

  /**
   * Stores `key` as the active one at `generation` and retires the rest, with its audit row; false
   * (nothing written) when a concurrent rotation took the generation: the unique index refused it,
   * or, on MariaDB, the two inserts' locks deadlocked and this transaction was the one rolled back.
   */
  private async commit(key: NewKey, generation: number, ctx: OpContext): Promise<boolean> {
    const now = this.clock().toISOString();
    try {
      await this.store.transaction(async (t) => {
        await t.signingKeys.insert({ ...key, createdAt: now, generation });
        await t.signingKeys.retireOthers(key.kid, now);
        await t.audit.append({ ...ctx, action: 'token-signing-key.rotate', outcome: 'success', targetType: 'signing-key', targetId: key.kid, kekUri: key.kekUri });
      });
    } catch (err) {
      if (/generation/.test(uniqueViolation(err) ?? '') || deadlock(err)) return false;
      throw err;
    } finally {
      this.loaded = undefined;
    }
    return true;
  }

  /** The key to sign with now; creates or rotates it when due. */
  async signingKey(ctx: OpContext): Promise<{ kid: string; privateKey: VerificationKey }> {
    let view = await this.view();
    const maxAgeMs = this.options.rotationDays * 86_400_000;
    const due = (active: SigningKeyRow | undefined) => !active || this.clock().getTime() - Date.parse(active.createdAt) >= maxAgeMs;
    // A replica that lost the race reads the winner's key; if that has not committed yet (MariaDB
    // rolls back either side of a deadlock), its next try waits on the winner's generation.
    for (let attempt = 1; attempt <= GENERATION_ATTEMPTS && due(view.active); attempt++) {
      this.autoRotation ??= this.rotateDue(ctx, view).finally(() => {
        this.autoRotation = undefined;
      });
      await this.autoRotation;
      view = await this.view(true);
    }
    const active = view.active;
    if (!active) throw new Error('no active token-signing key after rotation');
    if (this.signer?.kid !== active.kid) {
      const opening = this.openPrivate(active);
      this.signer = { kid: active.kid, opening };
      opening.catch(() => {
        if (this.signer?.opening === opening) this.signer = undefined;
      });
    }
    return this.signer.opening;
  }

  /** A published verification key by kid; reloads once on an unknown kid (another replica rotated). */
  async verificationKey(kid: string): Promise<VerificationKey | undefined> {
    if (kid.length > 64) return undefined;
    let view = await this.view();
    if (!view.published.has(kid) && this.clock().getTime() - view.at > 1000) view = await this.view(true);
    return view.published.get(kid)?.key;
  }

  /** The JWK Set: public keys only. */
  async jwks(): Promise<{ keys: JWK[] }> {
    const view = await this.view();
    return { keys: [...view.published.values()].map((p) => p.jwk) };
  }

  private async view(force = false): Promise<Loaded> {
    const cacheMs = this.options.cacheMs ?? 10_000;
    if (!force && this.loaded && this.clock().getTime() - this.loaded.at < cacheMs) return this.loaded;
    if (!force && this.loading) return this.loading;
    const p = this.load().finally(() => {
      if (this.loading === p) this.loading = undefined;
    });
    this.loading = p;
    this.loaded = await p;
    return this.loaded;
  }

  private async load(): Promise<Loaded> {
    const now = this.clock();
    // A key retired now still verifies tokens for one lifetime plus a minute of clock skew.
    const since = new Date(now.getTime() - (this.options.tokenTtlSeconds + 60) * 1000).toISOString();
    // The generation first: a rotation committed between the two reads then shows in the rows (not
    // due) or collides with the next generation, and is never rotated a second time.
    const generation = await this.store.repos.signingKeys.maxGeneration();
    const rows = await this.store.repos.signingKeys.published(since);
    const published = new Map<string, { jwk: JWK; key: VerificationKey }>();
    for (const row of rows) {
      // A kid names one immutable key: import each once, not on every 10-second reload.
      const known = this.loaded?.published.get(row.kid);
      const jwk = known?.jwk ?? (JSON.parse(row.publicJwk) as JWK);
      published.set(row.kid, known ?? { jwk, key: (await importJWK(jwk, row.alg)) as VerificationKey });
    }
    // No KMS here: with the KMS down, keys stay published and tokens keep verifying.
    return { at: now.getTime(), active: rows.find((r) => r.state === 'active'), published, generation };
  }

  private async openPrivate(row: SigningKeyRow): Promise<Signer> {
    const plaintext = await this.kms.unwrapStored(row.wrappedPrivateJwk, signingKeyBinding(row.kid));
    try {
      const jwk = JSON.parse(plaintext.toString('utf8')) as JWK;
      const privateKey = (await importJWK(jwk, row.alg)) as VerificationKey;
      delete jwk.d;
      return { kid: row.kid, privateKey };
    } finally {
      plaintext.fill(0);
    }
  }
}
