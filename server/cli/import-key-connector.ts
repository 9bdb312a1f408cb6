import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config';
import { boot } from '../boot';
import { describeDatabase } from '../config/core';
import { ImportError, importKeyConnector, loadRsaPrivateKey } from '../../key-connector/import';
import { readJsonStore, readSqlStore, SourceError, type KeyConnectorSource } from '../../key-connector/import-source';

export interface ImportKeyConnectorOptions {
  json?: string;
  database?: string;
  databaseUrlFile?: string;
  rsaKey: string;
  rsaKeyPasswordFile?: string;
  dryRun?: boolean;
}

/** A one-line bar on a terminal; nothing when stderr is a pipe or a file (logs stay clean). */
function progressBar(stream: NodeJS.WriteStream): ((done: number, total: number) => void) | undefined {
  if (!stream.isTTY) return undefined;
  return (done, total) => {
    const width = 30;
    const filled = total ? Math.round((done / total) * width) : width;
    stream.write(`\r[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

/**
 * `crypto-server import key-connector`: moves every user key of a running Bitwarden Key Connector
 * here (docs/key-connector.md). Reads its JSON store or SQL database, opens the keys with its RSA
 * key and re-wraps each under this server's KEK, bound to the user. Resumable; --dry-run counts only.
 */
export async function importKeyConnectorCommand(env: NodeJS.ProcessEnv, print: (line: string) => void, o: ImportKeyConnectorOptions, progress?: (done: number, total: number) => void): Promise<number> {
  const sources = [o.json, o.database, o.databaseUrlFile].filter((s) => s !== undefined);
  if (sources.length !== 1) {
    print('give the Key Connector store: exactly one of --json <file>, --database <url> or --database-url-file <file>');
    return 2;
  }
  const config = loadConfig(env);
  let source: KeyConnectorSource;
  let rsaFile: Buffer;
  let password: string | undefined;
  try {
    rsaFile = readFileSync(o.rsaKey);
    password = o.rsaKeyPasswordFile === undefined ? undefined : readFileSync(o.rsaKeyPasswordFile, 'utf8').replace(/\r?\n$/, '');
    const url = o.databaseUrlFile !== undefined ? readFileSync(o.databaseUrlFile, 'utf8').trim() : o.database;
    source = o.json !== undefined ? readJsonStore(o.json) : await readSqlStore(url!);
  } catch (err) {
    print(`cannot read the Key Connector store or key: ${err instanceof SourceError ? err.message : (err as Error).message}`);
    return 2;
  }
  let rsa;
  try {
    rsa = loadRsaPrivateKey(rsaFile, password);
  } catch (err) {
    print((err as Error).message);
    return 2;
  } finally {
    rsaFile.fill(0);
  }
  const deps = await boot(config, pino({ level: 'silent' }), { notice: print });
  try {
    if (await deps.store.hasPendingMigrations()) {
      print(`the database (${describeDatabase(config.database)}) is not migrated: run \`crypto-server migrate\` first`);
      return 2;
    }
    const s = await importKeyConnector(deps.store, deps.kms, config.kms.kekUri, source, rsa, { dryRun: o.dryRun === true, progress });
    for (const f of s.failed) print(`failed: user ${f.id}: ${f.reason}`);
    print(
      o.dryRun
        ? `dry run: ${s.total} user key(s) found; ${s.imported} would be imported, ${s.skipped} skipped (already here), ${s.failed.length} failed; nothing was written`
        : `${s.total} user key(s) found; imported ${s.imported}, skipped ${s.skipped} (already here), failed ${s.failed.length}`,
    );
    return s.failed.length ? 1 : 0;
  } catch (err) {
    if (err instanceof ImportError) {
      print(err.message);
      return 2;
    }
    throw err;
  } finally {
    await deps.close();
  }
}

export function registerImportKeyConnector(program: Command): void {
  const imp = program.commands.find((c) => c.name() === 'import') ?? program.command('import').description('import keys from another system');
  imp
    .command('key-connector')
    .description('import every user key of a Bitwarden Key Connector (JSON file or SQL database), re-wrapped under this server\'s KEK')
    .option('--json <file>', 'Key Connector JSON store (keyConnectorSettings__database__jsonFilePath)')
    .option('--database <url>', 'Key Connector database: postgres://…, mysql://… / mariadb://…, or sqlite:/path/file.db')
    .option('--database-url-file <file>', 'file holding the --database URL (keeps its password out of the process list)')
    .requiredOption('--rsa-key <file>', 'Key Connector\'s RSA private key: PEM, or its PKCS#12 (.pfx) certificate file')
    .option('--rsa-key-password-file <file>', 'file holding the password of the PKCS#12 file or encrypted PEM')
    .option('--dry-run', 'open every key and count; call no KMS, write nothing')
    .action(async (o: ImportKeyConnectorOptions) => {
      process.exitCode = await importKeyConnectorCommand(process.env, console.log, o, progressBar(process.stderr));
    });
}
