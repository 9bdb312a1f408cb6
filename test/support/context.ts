import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadConfig, type Config } from '../../server/config';
import { boot } from '../../server/boot';
import { createApp, type AppDeps } from '../../server/http/app';
import { DATABASE_FACTORIES, type DatabaseName, type TestDatabase } from './databases';

export interface TestContext extends AppDeps {
  db: TestDatabase;
  app: ReturnType<typeof createApp>;
  /** Closes the app's connections and drops the database. */
  cleanup: () => Promise<void>;
}

/**
 * A migrated database of the given kind, the local KMS adapter with a fresh random master key,
 * and the real Express app. `env` overrides CS_* settings.
 */
export async function createTestContext(kind: DatabaseName = 'sqlite', env: Record<string, string> = {}): Promise<TestContext> {
  const db = await DATABASE_FACTORIES[kind]();
  try {
    const config: Readonly<Config> = loadConfig({
      CS_DATABASE_URL: db.url,
      CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'),
      CS_LOG_LEVEL: 'silent',
      ...env,
    });
    const deps = await boot(config, pino({ level: 'silent' }), { migrate: true });
    return {
      ...deps,
      db,
      app: createApp(deps),
      cleanup: async () => {
        await deps.close();
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}
