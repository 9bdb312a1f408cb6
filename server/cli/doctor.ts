import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { loadConfig } from '../config';
import { buildRegistry } from '../../kms-adapters/registry';
import { UnwrapRefusedError } from '../errors';
import { describeFailure } from './failure';

/**
 * Checks each configured KEK end to end: wrap, unwrap, and that a blob does not open under
 * different associated data (binding). Exit code 0 only if every check passes.
 */
export async function doctor(env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  const config = loadConfig(env);
  const kms = await buildRegistry({ ...config.kms, notice: print });
  let failures = 0;
  const step = async (label: string, fn: () => Promise<void>) => {
    try {
      await fn();
      print(`  ok    ${label}`);
    } catch (err) {
      failures++;
      print(`  FAIL  ${label}: ${describeFailure(err)}`);
    }
  };
  try {
    for (const uri of [config.kms.kekUri, ...config.kms.previousKekUris]) {
      print(`KEK ${uri}`);
      const probe = randomBytes(32);
      const ctx = { purpose: 'health-check', user: 'doctor' };
      let envelope = '';
      await step('wrap', async () => {
        envelope = await kms.wrap(uri, probe, ctx);
      });
      if (!envelope) continue;
      await step('unwrap returns the same key', async () => {
        const back = await kms.unwrap(envelope, ctx);
        if (!back.equals(probe)) throw new Error('unwrapped bytes differ');
      });
      await step('binding: a different owner is refused', async () => {
        const refused = await kms.unwrap(envelope, { ...ctx, user: 'someone-else' }).then(
          () => false,
          (e: unknown) => e instanceof UnwrapRefusedError,
        );
        if (!refused) throw new Error('the KMS opened a blob under different associated data');
      });
    }
  } finally {
    await kms.close();
  }
  print(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
  return failures === 0 ? 0 : 1;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check the configured KEKs end to end (wrap, unwrap, binding) with the current credentials')
    .action(async () => {
      process.exitCode = await doctor(process.env, console.log);
    });
}
