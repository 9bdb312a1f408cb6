#!/usr/bin/env node
import { Command } from 'commander';
import { registerServe } from './serve';
import { registerMigrate } from './migrate';
import { registerKeks } from './keks';
import { ConfigError } from '../errors';
import { describeFailure } from './failure';
import { registerDoctor } from './doctor';
import { registerSigningKeys } from './signing-keys';
import { registerToken } from './token';
import { registerOutbox } from './outbox';
import { registerGroups } from './groups';
import { registerImportKeyConnector } from './import-key-connector';
import { registerAudit } from './audit';
import { addAuditIntegrityCommands } from './audit-integrity';
import { registerInstances } from './instances';
import { packageVersion } from '../instances/version';

export { describeFailure };

/** The `crypto-server` command. Each command lives in its own file and registers itself here. */
export function buildProgram(): Command {
  const program = new Command('crypto-server')
    .description('Crypto Server: SAML sign-on, SCIM provisioning and KMS-wrapped keys for end-to-end encryption')
    .version(packageVersion());
  registerServe(program);
  registerMigrate(program);
  registerKeks(program);
  registerDoctor(program);
  registerSigningKeys(program);
  registerToken(program);
  registerOutbox(program);
  registerGroups(program);
  registerImportKeyConnector(program);
  addAuditIntegrityCommands(registerAudit(program));
  registerInstances(program);
  return program;
}


if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      console.error(`crypto-server: ${describeFailure(err)}`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    });
}
