import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInThisContext } from 'node:vm';
import type * as Pkcs11Js from 'pkcs11js';

/**
 * A throwaway SoftHSM2 installation: its own config and token directory under a temp dir, with
 * the given tokens initialised. SoftHSM2 reads SOFTHSM2_CONF at C_Initialize, so this sets it for
 * the process; `cleanup()` restores it and deletes every token. Shared by tests and the bench.
 */
export const SOFTHSM_UTIL = '/usr/bin/softhsm2-util';
export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/**
 * The process whose environment native code reads. Jest hands each test file a copy of
 * process.env, so setting SOFTHSM2_CONF there never reaches SoftHSM2's getenv(); the outer
 * context's `process` is the real one (and is simply `process` outside jest).
 */
const realProcess = runInThisContext('process') as NodeJS.Process;

export interface SoftHsm {
  module: string;
  pin: string;
  dir: string;
  tokens: readonly string[];
  cleanup(): void;
}

export function createSoftHsm(tokens: readonly string[], paths = { util: SOFTHSM_UTIL, module: SOFTHSM_MODULE }): SoftHsm {
  // Fail loudly: a silently skipped HSM test would let a broken adapter through CI.
  if (!existsSync(paths.util) || !existsSync(paths.module)) {
    throw new Error(`SoftHSM2 is not installed (${paths.util} or ${paths.module} is missing): apt-get install softhsm2`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'cs-softhsm-'));
  const previous = realProcess.env.SOFTHSM2_CONF;
  const conf = join(dir, 'softhsm2.conf');
  mkdirSync(join(dir, 'tokens'), { mode: 0o700 });
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  realProcess.env.SOFTHSM2_CONF = conf;
  process.env.SOFTHSM2_CONF = conf;
  const pin = randomBytes(8).toString('hex');
  const soPin = randomBytes(8).toString('hex');
  const cleanup = () => {
    for (const env of [realProcess.env, process.env]) {
      if (previous === undefined) delete env.SOFTHSM2_CONF;
      else env.SOFTHSM2_CONF = previous;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const label of tokens) {
      execFileSync(paths.util, ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin], {
        env: { ...process.env, SOFTHSM2_CONF: conf },
        stdio: 'pipe',
      });
    }
  } catch (err) {
    cleanup();
    throw err;
  }
  return { module: paths.module, pin, dir, tokens, cleanup };
}

export type RawApi = typeof Pkcs11Js;

/**
 * Runs `fn` on a plain pkcs11js session logged into `token`, bypassing the adapter (to plant odd
 * keys or read attributes back). Cryptoki state is per process: if an adapter already initialised
 * the library, this shares it and leaves finalising to the adapter.
 */
export async function withRawSession<T>(
  hsm: SoftHsm,
  token: string,
  fn: (p11: Pkcs11Js.PKCS11, api: RawApi, session: Buffer) => T | Promise<T>,
): Promise<T> {
  const mod = (await import('pkcs11js')) as RawApi & { default?: RawApi };
  const api = mod.default ?? mod;
  const p11 = new api.PKCS11();
  p11.load(hsm.module);
  let owns = true;
  try {
    p11.C_Initialize({ flags: api.CKF_OS_LOCKING_OK });
  } catch (err) {
    if ((err as Error).message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw err;
    owns = false;
  }
  try {
    const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trimEnd() === token);
    if (!slot) throw new Error(`no SoftHSM2 token labelled ${token}`);
    const session = p11.C_OpenSession(slot, api.CKF_SERIAL_SESSION | api.CKF_RW_SESSION);
    try {
      try {
        p11.C_Login(session, api.CKU_USER, hsm.pin);
      } catch (err) {
        if ((err as Error).message !== 'CKR_USER_ALREADY_LOGGED_IN') throw err;
      }
      return await fn(p11, api, session);
    } finally {
      try {
        p11.C_CloseSession(session);
      } catch {
        // fn may have closed every session on purpose (C_CloseAllSessions).
      }
    }
  } finally {
    if (owns) p11.C_Finalize();
  }
}

/** The handle of the one secret key labelled `label` in a raw session. */
export function findRawKey(p11: Pkcs11Js.PKCS11, api: RawApi, session: Buffer, label: string): Buffer {
  p11.C_FindObjectsInit(session, [
    { type: api.CKA_CLASS, value: api.CKO_SECRET_KEY },
    { type: api.CKA_LABEL, value: Buffer.from(label, 'utf8') },
  ]);
  try {
    const found = p11.C_FindObjects(session, 2);
    if (found.length !== 1) throw new Error(`expected one key labelled ${label}, found ${found.length}`);
    return found[0];
  } finally {
    p11.C_FindObjectsFinal(session);
  }
}
