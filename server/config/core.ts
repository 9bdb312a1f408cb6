import { z } from 'zod';
import { join } from 'node:path';
import { ConfigError } from '../errors';

/** Core settings: server, database, KMS, keys. Env names are the contract; see docs/configuration.md. */
const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => ['true', '1', 'yes'].includes(v));
const list = z.string().transform((v) => v.split(',').map((s) => s.trim()).filter(Boolean));

export const USER_KEY_ALGORITHMS = ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] as const;
export type UserKeyAlgorithm = (typeof USER_KEY_ALGORITHMS)[number];

export const coreEnv = z.object({
  CS_HOST: z.string().min(1).default('127.0.0.1'),
  CS_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  /** Worker processes `serve` runs on the one port (node:cluster); unset = one per CPU (docs/operations.md). */
  CS_WORKERS: z.coerce.number().int().min(1).max(64).optional(),
  CS_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CS_DATA_DIR: z.string().min(1).default('./data'),
  CS_DATABASE_URL: z
    .string()
    .regex(/^(sqlite:|postgres(ql)?:\/\/|mysql:\/\/|mariadb:\/\/)/, 'must start with sqlite:, postgres://, mysql:// or mariadb://')
    .optional(),
  /** Read by loadConfig into CS_DATABASE_URL (a file keeps the password out of the environment). */
  CS_DATABASE_URL_FILE: z.string().optional(),
  CS_MIGRATE_ON_START: bool.optional(),
  /** Connections per process (PostgreSQL/MariaDB) and the longest a request waits for one before a 503. */
  CS_DB_POOL_SIZE: z.coerce.number().int().min(2).max(500).default(10),
  CS_DB_ACQUIRE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(5000),
  /** Liveness (/healthz) fails beyond these: event-loop delay since the last probe, pool stalled with requests waiting. */
  CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS: z.coerce.number().int().min(50).max(600_000).default(2000),
  CS_HEALTH_MAX_POOL_STALL_MS: z.coerce.number().int().min(1000).max(3_600_000).default(30_000),
  /** Readiness (/readyz): deadline of each check, and how long a KMS check result is reused. */
  CS_READY_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(2000),
  CS_READY_KMS_CACHE_MS: z.coerce.number().int().min(0).max(60_000).default(5000),
  /**
   * Which proxies' X-Forwarded-For to believe for the client address (rate limits, logs):
   * unset = none; a hop count, or comma-separated proxy addresses/CIDRs (Express "trust proxy").
   */
  CS_TRUST_PROXY: z
    .string()
    .regex(/^(\d{1,2}|([0-9a-fA-F.:/]+|loopback|linklocal|uniquelocal)(\s*,\s*([0-9a-fA-F.:/]+|loopback|linklocal|uniquelocal))*)$/, 'must be a hop count or comma-separated proxy addresses/CIDRs (e.g. 10.0.0.0/8)')
    .optional(),
  CS_MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(256 * 1024),
  /** Slow or silent clients: time to send all headers, the whole request (body included), and idle keep-alive. */
  CS_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000),
  CS_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(30_000),
  CS_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(5_000),
  /** In-process TLS (both or neither); the pair is reloaded when the files change. */
  CS_TLS_CERT_FILE: z.string().min(1).optional(),
  CS_TLS_KEY_FILE: z.string().min(1).optional(),
  CS_TLS_RELOAD_INTERVAL_MS: z.coerce.number().int().min(100).max(3_600_000).default(30_000),
  /** SIGTERM/SIGINT: how long in-flight requests may take to finish before their connections are cut. */
  CS_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(25_000),
  CS_KEK_URI: z.string().regex(/^[a-z][a-z0-9+.-]*:/, 'must be a key URI such as local://default or pkcs11:token=...;object=...').default('local://default'),
  CS_PREVIOUS_KEK_URIS: list.default([]),
  CS_KEK_MODE: z.enum(['shared', 'per-user']).default('shared'),
  CS_USER_KEY_ALGORITHM: z.enum(USER_KEY_ALGORITHMS).default('ec-p256'),
  CS_LOCAL_MASTER_KEY: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be 32 random bytes, base64-encoded (openssl rand -base64 32)').optional(),
  CS_LOCAL_MASTER_KEY_FILE: z.string().min(1).optional(),
  CS_LOCAL_CREATE_MASTER_KEY: bool.optional(),
  CS_PKCS11_MODULE: z.string().min(1).optional(),
  CS_PKCS11_PIN: z.string().min(1).optional(),
  CS_PKCS11_PIN_FILE: z.string().min(1).optional(),
  CS_PKCS11_TOKEN: z.string().min(1).optional(),
  CS_PKCS11_SESSIONS: z.coerce.number().int().min(1).max(64).optional(),
});

/** Settings whose values must never appear in a message. */
export const SECRET_SETTINGS = new Set(['CS_LOCAL_MASTER_KEY', 'CS_PKCS11_PIN', 'CS_DATABASE_URL']);

/** `pool` is optional so that code building a DatabaseConfig by hand gets the defaults. */
export type DatabaseConfig = (
  | { type: 'sqlite'; path: string; embedded: boolean; migrateOnStart: boolean }
  | { type: 'postgres' | 'mysql'; url: string; embedded: false; migrateOnStart: boolean }
) & { pool?: { size: number; acquireTimeoutMs: number } };

export function coreConfig(e: z.infer<typeof coreEnv>) {
  const embedded = e.CS_DATABASE_URL === undefined;
  const dbUrl = e.CS_DATABASE_URL ?? `sqlite:${join(e.CS_DATA_DIR, 'crypto-server.db')}`;
  const migrateOnStart = e.CS_MIGRATE_ON_START ?? embedded;
  const pool = { size: e.CS_DB_POOL_SIZE, acquireTimeoutMs: e.CS_DB_ACQUIRE_TIMEOUT_MS };
  const database: DatabaseConfig = dbUrl.startsWith('sqlite:')
    ? { type: 'sqlite', path: dbUrl.slice('sqlite:'.length), embedded, migrateOnStart, pool }
    : { type: dbUrl.startsWith('postgres') ? 'postgres' : 'mysql', url: dbUrl.replace(/^mariadb:/, 'mysql:'), embedded: false, migrateOnStart, pool };
  return {
    server: {
      host: e.CS_HOST,
      port: e.CS_PORT,
      /** undefined = decided by `serve` (one per CPU). */
      workers: e.CS_WORKERS,
      maxBodyBytes: e.CS_MAX_BODY_BYTES,
      // Node requires headersTimeout <= requestTimeout; a smaller request timeout bounds both.
      headersTimeoutMs: Math.min(e.CS_HEADERS_TIMEOUT_MS, e.CS_REQUEST_TIMEOUT_MS),
      requestTimeoutMs: e.CS_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.CS_KEEP_ALIVE_TIMEOUT_MS,
      tls: tlsFiles(e),
      shutdownTimeoutMs: e.CS_SHUTDOWN_TIMEOUT_MS,
      trustProxy: e.CS_TRUST_PROXY === undefined ? false : /^\d+$/.test(e.CS_TRUST_PROXY) ? Number(e.CS_TRUST_PROXY) : e.CS_TRUST_PROXY.split(',').map((x) => x.trim()),
    },
    log: { level: e.CS_LOG_LEVEL },
    health: {
      maxEventLoopDelayMs: e.CS_HEALTH_MAX_EVENT_LOOP_DELAY_MS,
      maxPoolStallMs: e.CS_HEALTH_MAX_POOL_STALL_MS,
      readyTimeoutMs: e.CS_READY_TIMEOUT_MS,
      readyKmsCacheMs: e.CS_READY_KMS_CACHE_MS,
    },
    dataDir: e.CS_DATA_DIR,
    database,
    kms: {
      kekUri: e.CS_KEK_URI,
      previousKekUris: e.CS_PREVIOUS_KEK_URIS,
      kekMode: e.CS_KEK_MODE,
      adapters: {
        local: {
          masterKey: e.CS_LOCAL_MASTER_KEY,
          masterKeyFile: e.CS_LOCAL_MASTER_KEY_FILE ?? join(e.CS_DATA_DIR, 'master.key'),
          createMasterKey: e.CS_LOCAL_CREATE_MASTER_KEY ?? embedded,
        },
        pkcs11: { module: e.CS_PKCS11_MODULE, pin: e.CS_PKCS11_PIN, pinFile: e.CS_PKCS11_PIN_FILE, token: e.CS_PKCS11_TOKEN, sessions: e.CS_PKCS11_SESSIONS },
      } as Record<string, Record<string, unknown>>,
    },
    keys: { userKeyAlgorithm: e.CS_USER_KEY_ALGORITHM as UserKeyAlgorithm },
  };
}

function tlsFiles(e: z.infer<typeof coreEnv>): { certFile: string; keyFile: string; reloadIntervalMs: number } | undefined {
  if (!e.CS_TLS_CERT_FILE !== !e.CS_TLS_KEY_FILE) {
    const missing = e.CS_TLS_CERT_FILE ? 'CS_TLS_KEY_FILE' : 'CS_TLS_CERT_FILE';
    throw new ConfigError(`CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: set both (https) or neither (http); ${missing} is missing`);
  }
  return e.CS_TLS_CERT_FILE && e.CS_TLS_KEY_FILE ? { certFile: e.CS_TLS_CERT_FILE, keyFile: e.CS_TLS_KEY_FILE, reloadIntervalMs: e.CS_TLS_RELOAD_INTERVAL_MS } : undefined;
}

/** Where the data lives, for messages: the SQLite file, or the server without credentials. */
export function describeDatabase(db: DatabaseConfig): string {
  if (db.type === 'sqlite') return `sqlite ${db.path}`;
  try {
    const u = new URL(db.url);
    return `${db.type} ${u.hostname}${u.port ? `:${u.port}` : ''}${u.pathname}`;
  } catch {
    return db.type;
  }
}
