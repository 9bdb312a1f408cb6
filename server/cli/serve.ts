import type { Command } from 'commander';
import type { Server } from 'node:http';
import { loadConfig } from '../config';
import { createLogger } from '../log';
import { boot } from '../boot';
import { createApp } from '../http/app';

export interface Running {
  server: Server;
  url: string;
  stop: () => Promise<void>;
}

/** Starts the HTTP server; resolves once listening. Prints what it created and where. */
export async function serve(env: NodeJS.ProcessEnv = process.env, print: (line: string) => void = console.log): Promise<Running> {
  const config = loadConfig(env);
  const log = createLogger(config.log.level);
  const deps = await boot(config, log, { migrate: config.database.migrateOnStart, notice: print });
  const app = createApp(deps);
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.server.port, config.server.host, () => resolve(s));
    s.once('error', reject);
  }).catch(async (err) => {
    await deps.close();
    throw err;
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : config.server.port;
  const url = `http://${config.server.host.includes(':') ? `[${config.server.host}]` : config.server.host}:${port}`;
  const db = config.database.type === 'sqlite' ? `sqlite ${config.database.path}` : config.database.type;
  print(`Crypto Server listening on ${url} (database: ${db}; KEK: ${config.kms.kekUri}; user keys: ${config.keys.userKeyAlgorithm})`);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= new Promise<void>((resolve) => server.close(() => resolve())).then(() => deps.close()));
  return { server, url, stop };
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('start the HTTP server (configuration from CS_* environment variables; see docs/configuration.md)')
    .action(async () => {
      const running = await serve();
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.once(sig, () => {
          void running.stop().then(() => process.exit(0));
        });
      }
    });
}
