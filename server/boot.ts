import type { Config } from './config';
import { describeDatabase } from './config/core';
import { createDataSource } from '../entities/data-source';
import { buildRegistry, type KmsRegistry } from '../kms-adapters/registry';
import { KeyService } from './keys/key-service';
import { Store } from './repositories/store';
import type { Logger } from './log';
import type { AppDeps } from './http/app';
import { ConfigError } from './errors';
import { configureAuditChain } from './audit/chain';
import type { CheckpointLog } from './repositories/sqlite-checkpoint';

export interface BootOptions {
  /** Tells the operator what was created or done (printed by serve). */
  notice?: (message: string) => void;
  /** Apply pending migrations instead of refusing to start. */
  migrate?: boolean;
}

/** Wires config → database → KMS → services. Used by `serve` and by the tests alike. */
export async function boot(config: Readonly<Config>, log: Logger, opts: BootOptions = {}): Promise<AppDeps & { close: () => Promise<void> }> {
  const store = await openStore(config, log);
  let kms: KmsRegistry | undefined;
  try {
    // KMS first: a wrong KEK setting must stop start-up before anything touches the database.
    kms = await buildRegistry({ ...config.kms, notice: opts.notice });
    if (config.kms.kekMode === 'per-user' && !kms.canCreateKeys(config.kms.kekUri)) {
      throw new ConfigError(
        `CS_KEK_MODE=per-user: the ${kms.forUri(config.kms.kekUri).scheme} adapter cannot create keys as configured ` +
          '(gcp-kms needs CS_GCP_KMS_KEY_RING; azure-kv needs CS_AZURE_KV_CREATE_KEYS_IN; vault-transit needs CS_VAULT_CREATE_KEYS_AT); or use CS_KEK_MODE=shared',
      );
    }
    if (await store.hasPendingMigrations()) {
      if (!opts.migrate) {
        throw new ConfigError(`the database (${describeDatabase(config.database)}) is not migrated: run \`crypto-server migrate\` first (or set CS_MIGRATE_ON_START=true)`);
      }
      // Another replica may have applied them while this one waited for the migration lock.
      const applied = await store.migrate();
      if (applied.length) opts.notice?.(`applied ${applied.length} database migration(s): ${applied.join(', ')}`);
    }
    const keys = new KeyService(store, kms, { kekUri: config.kms.kekUri, kekMode: config.kms.kekMode, userKeyAlgorithm: config.keys.userKeyAlgorithm, groupRekey: config.scim.groupRekey });
    const registry = kms;
    return { config, store, kms, keys, log, close: async () => { await registry.close(); await store.close(); } };
  } catch (err) {
    await kms?.close();
    await store.close();
    throw err;
  }
}

/** `log` gets what the store tells on its own (SQLite checkpoint failures); one-shot commands pass none. */
export async function openStore(config: Readonly<Config>, log?: CheckpointLog): Promise<Store> {
  const ds = createDataSource(config.database);
  try {
    await ds.initialize();
  } catch (err) {
    throw new ConfigError(`CS_DATABASE_URL: cannot connect to the ${config.database.type} database (${(err as Error).message.split('\n')[0]})`);
  }
  configureAuditChain(ds, { enabled: config.auditIntegrity.chain });
  return new Store(ds, config.database.pool, log);
}
