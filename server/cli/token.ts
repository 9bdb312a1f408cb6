import type { Command } from 'commander';
import { withStore } from './with-store';
import { describeDatabase } from '../config/core';
import { wholeNumber } from './options';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService, TOKEN_SCOPES } from '../../scim/tokens';
import { ownWrites } from '../repositories/runner';

/** `crypto-server token create|list|revoke`: bearer tokens for the IdP's SCIM connector. */
export async function tokenCommand(
  env: NodeJS.ProcessEnv,
  print: (line: string) => void,
  action: { create: { name: string; scope: string; expiresDays?: number; allowFrom?: string } } | { list: true } | { revoke: string; allWithName?: boolean },
): Promise<number> {
  return withStore(env, async (store, config) => {
    if (await store.hasPendingMigrations()) {
      print(`the database (${describeDatabase(config.database)}) is not migrated: is this the server's database (CS_DATABASE_URL, CS_DATA_DIR)? If so, run \`crypto-server migrate\` first`);
      return 2;
    }
    const tokens = new TokenService(ownWrites(store, (m) => new ApiTokenRepository(m)));
    if ('create' in action) {
      const { name, scope, expiresDays, allowFrom } = action.create;
      if (expiresDays !== undefined && !(Number.isInteger(expiresDays) && expiresDays > 0)) {
        print('--expires-days must be a whole number of days greater than 0');
        return 2;
      }
      const expiresAt = expiresDays ? new Date(Date.now() + expiresDays * 86_400_000) : undefined;
      const { token, info } = await tokens.create({ name, scope, expiresAt, allowedAddresses: allowFrom });
      print(token);
      print(`# token ${info.id} "${info.name}" (scope ${info.scope}${info.expires_at ? `, expires ${info.expires_at}` : ''}${info.allowed_addresses ? `, only from ${info.allowed_addresses}` : ''}).`);
      print(
        scope === 'backend'
          ? '# Shown once: only its hash is stored. Give it to the cloud service as its backend API token.'
          : '# Shown once: only its hash is stored. Paste it into the IdP as the SCIM secret token.',
      );
      return 0;
    }
    if ('list' in action) {
      const rows = await tokens.list();
      if (rows.length === 0) print('no tokens');
      for (const t of rows) {
        const state = t.revoked_at ? `revoked ${t.revoked_at}` : t.expires_at && t.expires_at <= new Date().toISOString() ? `expired ${t.expires_at}` : 'active';
        print(`${t.id}\t${t.scope}\t${state}\tcreated ${t.created_at}\tlast used ${t.last_used_at ?? 'never'}\t${t.name}${t.allowed_addresses ? `\tonly from ${t.allowed_addresses}` : ''}`);
      }
      return 0;
    }
    const r = await tokens.revoke(action.revoke, { allWithName: action.allWithName });
    if (r.ambiguous) {
      print(`${r.ambiguous.length} active tokens are named "${action.revoke}": ${r.ambiguous.join(', ')}; revoke one by id, or all of them with --all-with-name`);
      return 1;
    }
    print(r.revoked.length ? `revoked ${r.revoked.join(', ')}` : `no active token with id or name "${action.revoke}"`);
    return r.revoked.length ? 0 : 1;
  });
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('bearer tokens for machine clients (SCIM provisioning, the cloud service\'s backend API)');
  token
    .command('create')
    .description('create a token; it is printed once and only its hash is stored')
    .requiredOption('--scope <scope>', `what the token may do (${TOKEN_SCOPES.join(', ')})`)
    .option('--name <name>', 'a label, e.g. the IdP it is for', 'scim')
    .option('--expires-days <days>', 'expire after this many days (default: never)', wholeNumber(1, 3650))
    .option('--allow-from <addresses>', 'accept the token only from these client addresses (comma-separated IPs or CIDR ranges)')
    .action(async (o: { scope: string; name: string; expiresDays?: number; allowFrom?: string }) => {
      process.exitCode = await tokenCommand(process.env, console.log, { create: o });
    });
  token
    .command('list')
    .description('list tokens (never their values)')
    .action(async () => {
      process.exitCode = await tokenCommand(process.env, console.log, { list: true });
    });
  token
    .command('revoke <idOrName>')
    .description('revoke a token by id, or by name when only one active token has it')
    .option('--all-with-name', 'revoke every active token with this name')
    .action(async (idOrName: string, opts: { allWithName?: boolean }) => {
      process.exitCode = await tokenCommand(process.env, console.log, { revoke: idOrName, allWithName: opts.allWithName });
    });
}
