import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { coreConfig, coreEnv, SECRET_SETTINGS as CORE_SECRETS } from './core';
import { kmsAdapterSettings, kmsEnv, KMS_SECRET_SETTINGS } from './kms';
import { authConfigFrom, authEnvSchema } from './auth';
import { ConfigError } from '../errors';
import { scimConfig, scimEnv, SCIM_SECRET_SETTINGS } from './scim';
import { keyConnectorConfig, keyConnectorEnv } from './key-connector';
import { backendConfig, backendEnv } from './backend';
import { adminConfig, adminEnv } from './admin';
import { auditConfig, auditEnv } from './audit';
import { auditIntegrityConfig, auditIntegrityEnv } from './audit-integrity';

/**
 * Configuration is parsed once at boot from environment variables (optionally a JSON file named
 * by CS_CONFIG_FILE, which the environment overrides), validated, typed and frozen.
 * Each section adds its env schema and its mapper here, one line each.
 */
const envSchema = coreEnv.extend(kmsEnv.shape).extend(authEnvSchema.shape).extend(scimEnv.shape).extend(keyConnectorEnv.shape).extend(backendEnv.shape).extend(adminEnv.shape).extend(auditEnv.shape).extend(auditIntegrityEnv.shape);

const SECRET_SETTINGS = new Set([...CORE_SECRETS, ...KMS_SECRET_SETTINGS, ...SCIM_SECRET_SETTINGS]);

export type Env = z.infer<typeof envSchema>;

function build(e: Env) {
  const core = coreConfig(e);
  return {
    ...core,
    kms: {
      ...core.kms,
      adapters: {
        ...core.kms.adapters,
        pkcs11: { ...core.kms.adapters.pkcs11, timeoutMs: e.CS_KMS_TIMEOUT_MS },
        ...kmsAdapterSettings(e),
      } as Record<string, Record<string, unknown>>,
    },
    auth: authConfigFrom(e, core.server),
    ...scimConfig(e),
    ...keyConnectorConfig(e),
    ...backendConfig(e),
    ...adminConfig(e),
    ...auditConfig(e),
    ...auditIntegrityConfig(e),
  };
}

export type Config = ReturnType<typeof build>;

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const raw: Record<string, string> = {};
  if (env.CS_CONFIG_FILE) Object.assign(raw, readConfigFile(env.CS_CONFIG_FILE));
  for (const [k, v] of Object.entries(env)) if (k.startsWith('CS_') && k !== 'CS_CONFIG_FILE' && v !== undefined && v !== '') raw[k] = v;
  readSecretFile(raw, 'CS_DATABASE_URL');
  const parsed = envSchema.safeParse(raw);
  // A misspelt setting would otherwise be ignored silently and a default used in its place.
  const unknown = Object.keys(raw).filter((k) => !(k in envSchema.shape) && !k.startsWith('CS_TEST_'));
  if (!parsed.success || unknown.length > 0) {
    const lines = (parsed.error?.issues ?? []).map((i) => {
      const name = String(i.path[0] ?? 'configuration');
      // zod messages describe the expected form, not the received value; secrets get a fixed text.
      return SECRET_SETTINGS.has(name) ? `${name}: invalid value (not shown); ${i.message}` : `${name}: ${i.message}`;
    });
    for (const k of unknown) lines.push(`${k}: not a known setting${suggest(k)} (see docs/configuration.md)`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return deepFreeze(build(parsed.data));
}

/** The known setting closest to a misspelt one, when it is close. */
function suggest(name: string): string {
  let best = '';
  let bestDistance = 4;
  for (const known of Object.keys(envSchema.shape)) {
    const d = distance(name, known);
    if (d < bestDistance) [best, bestDistance] = [known, d];
  }
  return best ? `; did you mean ${best}?` : '';
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/** `NAME_FILE` holds the value of `NAME` (Docker/Kubernetes secrets); never both. */
function readSecretFile(raw: Record<string, string>, name: string): void {
  const file = raw[`${name}_FILE`];
  if (file === undefined) return;
  delete raw[`${name}_FILE`];
  if (raw[name] !== undefined) throw new ConfigError(`${name} and ${name}_FILE are both set; set only one`);
  try {
    raw[name] = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function readConfigFile(path: string): Record<string, string> {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`CS_CONFIG_FILE: cannot read ${path} as JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ConfigError(`CS_CONFIG_FILE: ${path} must hold a JSON object of CS_* settings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(data)) {
    if (!k.startsWith('CS_')) throw new ConfigError(`CS_CONFIG_FILE: ${path} has "${k}", which is not a CS_* setting`);
    out[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
