import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from './cli-process';

/**
 * The source loader every process-level test uses runs commands that load a KMS adapter lazily
 * (`import('./local.js')` in the registry): without resolving that to the .ts source, any such
 * command died with "Cannot find module './local.js'".
 */
test('`doctor` runs from source through the shared loader and checks the local KEK', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-doctor-'));
  try {
    const r = await runCli(['doctor'], { CS_DATA_DIR: dir, CS_LOG_LEVEL: 'silent' });
    expect(r.stderr).not.toMatch(/Cannot find module/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ok\s+binding: a different owner is refused/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);
