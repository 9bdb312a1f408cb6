import type { Command } from 'commander';
import { withStore } from './with-store';

export async function migrate(env: NodeJS.ProcessEnv, print: (line: string) => void, opts: { check?: boolean }): Promise<number> {
  return withStore(env, async (store) => {
    if (opts.check) {
      const pending = await store.hasPendingMigrations();
      print(pending ? 'the database has pending migrations' : 'the database schema is up to date');
      return pending ? 1 : 0;
    }
    const applied = await store.migrate();
    print(applied.length ? `applied: ${applied.join(', ')}` : 'the database schema is already up to date');
    return 0;
  });
}

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply pending database migrations (safe to run repeatedly)')
    .option('--check', 'only report whether migrations are pending (exit 1 if so)')
    .action(async (opts: { check?: boolean }) => {
      process.exitCode = await migrate(process.env, console.log, opts);
    });
}
