import { loadConfig, type Config } from '../config';
import { openStore } from '../boot';
import type { Store } from '../repositories/store';

/** For one-shot commands: parse config, open the database, run, always close. */
export async function withStore<T>(env: NodeJS.ProcessEnv, fn: (store: Store, config: Readonly<Config>) => Promise<T>): Promise<T> {
  const config = loadConfig(env);
  const store = await openStore(config);
  try {
    return await fn(store, config);
  } finally {
    await store.close();
  }
}
