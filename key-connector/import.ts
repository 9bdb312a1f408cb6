import { constants, createDecipheriv, createPrivateKey, privateDecrypt, type KeyObject } from 'node:crypto';
import forge from 'node-forge';
import type { KmsRegistry } from '../kms-adapters/registry';
import type { Store } from '../server/repositories/store';
import { uniqueViolation } from '../server/repositories/db-errors';
import { binding } from '../server/keys/binding';
import { nowIso } from '../entities/columns';
import { KeyConnectorRepository } from './repository';
import type { KeyConnectorSource } from './import-source';
import { GUID } from './oidc';

const TAG = 16;
const NONCE = 12;

export class ImportError extends Error {}

/**
 * Key Connector's RSA private key, from a PEM (PKCS#8 or PKCS#1, optionally encrypted) or a
 * PKCS#12 file (its filesystem certificate provider's .pfx). Parsed in memory only.
 */
export function loadRsaPrivateKey(file: Buffer, password?: string): KeyObject {
  // The Buffer itself, not a string copy of the key that could not be zeroed.
  if (file.includes('-----BEGIN')) {
    try {
      return createPrivateKey({ key: file, format: 'pem', passphrase: password });
    } catch (err) {
      throw new ImportError(`the PEM file holds no usable private key (${(err as Error).message}); an encrypted key needs its password`);
    }
  }
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(file.toString('latin1')), password ?? '');
  } catch (err) {
    throw new ImportError(`cannot open the PKCS#12 file (${(err as Error).message}); check the password`);
  }
  const bags = [
    ...(p12.getBags({ bagType: forge.pki.oids.pkcs8ShroudedKeyBag })[forge.pki.oids.pkcs8ShroudedKeyBag] ?? []),
    ...(p12.getBags({ bagType: forge.pki.oids.keyBag })[forge.pki.oids.keyBag] ?? []),
  ];
  const key = bags.find((b) => b.key)?.key;
  if (!key) throw new ImportError('the PKCS#12 file holds no private key');
  return createPrivateKey({ key: forge.pki.privateKeyToPem(key as forge.pki.rsa.PrivateKey), format: 'pem' });
}

/** The symmetric key: RSA-OAEP with SHA-1, as Key Connector's CryptoFunctionService encrypts it. */
function openSymmetricKey(rsa: KeyObject, symmetricKeyB64: string): Buffer {
  let key: Buffer;
  try {
    key = privateDecrypt({ key: rsa, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, Buffer.from(symmetricKeyB64, 'base64'));
  } catch {
    throw new ImportError('the stored symmetric key does not decrypt with this RSA key: is it the Key Connector\'s key?');
  }
  if (key.length !== 32) {
    key.fill(0);
    throw new ImportError(`the symmetric key is ${key.length} bytes, not the 32 of AES-256`);
  }
  return key;
}

/** A user key: base64 of AES-256-GCM ciphertext ‖ 16-byte tag ‖ 12-byte nonce (CryptoFunctionService.AesGcmEncryptAsync). */
function openUserKey(symmetricKey: Buffer, b64: string): Buffer {
  const data = Buffer.from(b64, 'base64');
  if (data.length <= TAG + NONCE) throw new Error('too short for ciphertext, tag and nonce');
  const end = data.length - TAG - NONCE;
  const decipher = createDecipheriv('aes-256-gcm', symmetricKey, data.subarray(end + TAG), { authTagLength: TAG });
  decipher.setAuthTag(data.subarray(end, end + TAG));
  const head = decipher.update(data.subarray(0, end));
  try {
    return Buffer.concat([head, decipher.final()]);
  } catch {
    throw new Error('does not decrypt (tampered, or under another symmetric key)');
  } finally {
    head.fill(0);
  }
}

export interface ImportSummary {
  total: number;
  imported: number;
  /** Already here (an earlier run, or the user wrote one through the API): left untouched. */
  skipped: number;
  failed: { id: string; reason: string }[];
}

export interface ImportOptions {
  dryRun: boolean;
  /** Called after each user, for a progress display. */
  progress?: (done: number, total: number) => void;
}

/**
 * Re-wraps every user key of a Key Connector store under this server's KEK, bound to
 * key-connector-user-key + the user id. Resumable and idempotent: users already here are skipped.
 * Each user is its own step — KMS wrap, then one transaction with the row and its audit event — so an
 * interrupted run loses nothing and a rerun continues. A dry run opens every key (proving the RSA key
 * and the data) but calls no KMS and writes nothing. Plaintext is zeroed after each user.
 */
export async function importKeyConnector(store: Store, kms: KmsRegistry, kekUri: string, source: KeyConnectorSource, rsa: KeyObject, opts: ImportOptions): Promise<ImportSummary> {
  const summary: ImportSummary = { total: source.users.length, imported: 0, skipped: 0, failed: [] };
  const symmetricKey = openSymmetricKey(rsa, source.symmetricKey);
  const repo = new KeyConnectorRepository(store.repos.manager);
  try {
    const present = await repo.existing(source.users.map((u) => u.id.toLowerCase()).filter((id) => GUID.test(id)));
    let done = 0;
    for (const u of source.users) {
      const sub = u.id.toLowerCase();
      try {
        if (!GUID.test(sub)) throw new Error('the user id is not a GUID');
        if (present.has(sub)) {
          summary.skipped++;
          continue;
        }
        if (!u.key) throw new Error('no key stored');
        const plaintext = openUserKey(symmetricKey, u.key);
        let wrappedKey: string | undefined;
        try {
          if (!opts.dryRun) wrappedKey = await kms.wrap(kekUri, plaintext, binding.keyConnectorUserKey(sub));
        } finally {
          plaintext.fill(0);
        }
        if (wrappedKey !== undefined) {
          const inserted = await store
            .transaction(async (t) => {
              await new KeyConnectorRepository(t.manager).insert({ sub, wrappedKey, kekUri, createdAt: u.creationDate ?? nowIso(), revisedAt: u.revisionDate, lastAccessAt: u.lastAccessDate });
              await t.audit.append({ actor: 'cli', action: 'key-connector.import', outcome: 'success', targetType: 'key-connector-user', targetId: sub, kekUri });
              return true;
            })
            .catch((err: unknown) => {
              if (uniqueViolation(err)) return false; // written through the API meanwhile: theirs stands
              throw err;
            });
          if (!inserted) {
            summary.skipped++;
            continue;
          }
        }
        summary.imported++;
      } catch (err) {
        summary.failed.push({ id: u.id.slice(0, 64), reason: (err as Error).message.slice(0, 200) });
      } finally {
        opts.progress?.(++done, summary.total);
      }
    }
  } finally {
    symmetricKey.fill(0);
  }
  if (!opts.dryRun) {
    await store.audit({ actor: 'cli', action: 'key-connector.import-run', outcome: summary.failed.length ? 'failure' : 'success', detail: { total: summary.total, imported: summary.imported, skipped: summary.skipped, failed: summary.failed.length } });
  }
  return summary;
}
