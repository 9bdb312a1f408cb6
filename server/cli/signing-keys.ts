import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config';
import { boot } from '../boot';
import { SigningKeyService } from '../auth/signing-keys';

/**
 * `crypto-server signing-keys rotate`: makes a new access-token signing key active now (e.g. after
 * a suspected exposure, or on a schedule shorter than CS_TOKEN_KEY_ROTATION_DAYS). Tokens signed by
 * the previous key keep verifying until they expire; then it leaves the JWKS.
 */
export async function rotateSigningKey(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<string> {
  const config = loadConfig(env);
  const deps = await boot(config, pino({ level: 'silent' }), { notice: print });
  try {
    const service = SigningKeyService.fromConfig(config, deps.store, deps.kms);
    const kid = await service.rotate({ actor: 'cli' });
    print(`new token-signing key ${kid} is active; previous keys stay published for ${config.auth.tokens.ttlSeconds + 60} s`);
    return kid;
  } finally {
    await deps.close();
  }
}

export function registerSigningKeys(program: Command): void {
  const cmd = program.command('signing-keys').description('manage the access-token signing keys (wrapped by the KMS)');
  cmd
    .command('rotate')
    .description('make a new signing key active now; tokens of the old key verify until they expire')
    .action(async () => {
      await rotateSigningKey(process.env, console.log);
    });
}
