import type { Command } from 'commander';
import pino from 'pino';
import { loadConfig } from '../config';
import { boot } from '../boot';
import { scimServiceFor } from '../../scim/router';

/**
 * `crypto-server groups rotate <groupId>`: a new key version for one group now (with
 * CS_GROUP_REKEY=manual, after removals; or after a suspected exposure). One KMS wrap; the new
 * membership key is sealed to every current member; the webhook gets a `group.key.rotated` event.
 */
export async function rotateGroupCommand(env: NodeJS.ProcessEnv, print: (line: string) => void, groupId: string): Promise<number> {
  const config = loadConfig(env);
  const deps = await boot(config, pino({ level: 'silent' }), { notice: print });
  try {
    const r = await scimServiceFor(deps).rotateGroup(groupId, { actor: 'cli' });
    print(`group ${groupId} rotated to key version ${r.keyVersion}, sealed to ${r.members} member(s)`);
    return 0;
  } finally {
    await deps.close();
  }
}

export function registerGroups(program: Command): void {
  const cmd = program.command('groups').description('manage group keys');
  cmd
    .command('rotate')
    .argument('<groupId>', 'the group id (as in SCIM)')
    .description('make a new key version for the group now, sealed to its current members')
    .action(async (groupId: string) => {
      process.exitCode = await rotateGroupCommand(process.env, console.log, groupId);
    });
}
