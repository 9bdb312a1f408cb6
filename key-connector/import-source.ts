import { readFileSync } from 'node:fs';
import { DataSource } from 'typeorm';

/**
 * Reads a running Bitwarden Key Connector's store, in the layouts its source defines
 * (bitwarden/key-connector src/KeyConnector):
 * - JSON file (Repositories/JsonFile/*, JsonFlatFileDataStore): `{"symmetricKey": "<b64>",
 *   "userKey": [{"id": "<guid>", "key": "<b64>", "creationDate": …, "revisionDate": …, "lastAccessDate": …}]}`;
 * - SQL (Migrations/{PostgreSql,MySql,Sqlite}/*_InitialCreate.cs): tables `ApplicationDatas`
 *   (`Id`, `SymmetricKey`) and `UserKeys` (`Id`, `Key`, `CreationDate`, `RevisionDate`, `LastAccessDate`).
 * Nothing here decrypts: it returns the stored (encrypted) values.
 */
export interface SourceUserKey {
  id: string;
  /** base64 of AES-256-GCM ciphertext ‖ 16-byte tag ‖ 12-byte nonce under the symmetric key. */
  key: string | null;
  creationDate: string | null;
  revisionDate: string | null;
  lastAccessDate: string | null;
}

export interface KeyConnectorSource {
  /** base64 of the symmetric key encrypted with RSA-OAEP (SHA-1) to Key Connector's RSA key. */
  symmetricKey: string;
  users: SourceUserKey[];
}

export class SourceError extends Error {}

/** A property by name, ignoring case (JsonFlatFileDataStore writes camelCase; be lenient). */
function prop(o: Record<string, unknown>, name: string): unknown {
  const k = Object.keys(o).find((x) => x.toLowerCase() === name.toLowerCase());
  return k === undefined ? undefined : o[k];
}

/** ISO-8601 UTC; a time without a zone is UTC (Key Connector stores DateTime.UtcNow). */
function isoTime(v: unknown): string | null {
  if (v === null || v === undefined || v === '') return null;
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString();
  if (typeof v !== 'string') return null;
  const s = v.trim().replace(' ', 'T');
  const withZone = /(Z|[+-]\d\d:?\d\d)$/.test(s) ? s : `${s}Z`;
  // JavaScript keeps milliseconds only; .NET writes up to 7 fractional digits.
  const t = Date.parse(withZone.replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(t) ? null : new Date(t).toISOString();
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : v === null || v === undefined ? null : String(v));

export function readJsonStore(path: string): KeyConnectorSource {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new SourceError(`cannot read ${path} as JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (typeof doc !== 'object' || doc === null) throw new SourceError(`${path} is not a Key Connector JSON store`);
  const d = doc as Record<string, unknown>;
  const symmetricKey = prop(d, 'symmetricKey');
  if (typeof symmetricKey !== 'string') throw new SourceError(`${path} has no "symmetricKey": not a Key Connector JSON store, or Key Connector never stored a key`);
  const list = prop(d, 'userKey') ?? [];
  if (!Array.isArray(list)) throw new SourceError(`${path}: "userKey" must be a list`);
  const users = list.map((u: Record<string, unknown>) => ({
    id: str(prop(u, 'id')) ?? '',
    key: str(prop(u, 'key')),
    creationDate: isoTime(prop(u, 'creationDate')),
    revisionDate: isoTime(prop(u, 'revisionDate')),
    lastAccessDate: isoTime(prop(u, 'lastAccessDate')),
  }));
  return { symmetricKey, users };
}

/** `postgres://…`, `mysql://…` / `mariadb://…`, or `sqlite:/path/file.db`. */
export async function readSqlStore(url: string): Promise<KeyConnectorSource> {
  let ds: DataSource;
  let q: (name: string) => string;
  // Times as text: a driver would read a zone-less timestamp in the process's local time zone.
  let asText = (col: string) => `CAST(${col} AS CHAR)`;
  if (/^postgres(ql)?:\/\//.test(url)) {
    ds = new DataSource({ type: 'postgres', url });
    q = (n) => `"${n}"`;
    asText = (col) => `CAST(${col} AS text)`;
  } else if (/^(mysql|mariadb):\/\//.test(url)) {
    ds = new DataSource({ type: 'mysql', url: url.replace(/^mariadb:/, 'mysql:') });
    q = (n) => `\`${n}\``;
  } else if (url.startsWith('sqlite:')) {
    ds = new DataSource({ type: 'better-sqlite3', database: url.slice('sqlite:'.length), readonly: true });
    q = (n) => `"${n}"`;
    asText = (col) => col;
  } else {
    throw new SourceError('the source database URL must start with postgres://, mysql://, mariadb:// or sqlite:');
  }
  await ds.initialize();
  try {
    const app = (await ds.query(`SELECT ${q('SymmetricKey')} AS k FROM ${q('ApplicationDatas')} ORDER BY ${q('Id')}`)) as { k: string | null }[];
    const symmetricKey = app.find((r) => typeof r.k === 'string')?.k;
    if (!symmetricKey) throw new SourceError('ApplicationDatas holds no SymmetricKey: Key Connector never stored a key');
    const rows = (await ds.query(
      `SELECT ${q('Id')} AS id, ${q('Key')} AS k, ${asText(q('CreationDate'))} AS c, ${asText(q('RevisionDate'))} AS r, ${asText(q('LastAccessDate'))} AS a FROM ${q('UserKeys')} ORDER BY ${q('Id')}`,
    )) as { id: unknown; k: unknown; c: unknown; r: unknown; a: unknown }[];
    return {
      symmetricKey,
      users: rows.map((r) => ({ id: str(r.id) ?? '', key: str(r.k), creationDate: isoTime(r.c), revisionDate: isoTime(r.r), lastAccessDate: isoTime(r.a) })),
    };
  } finally {
    await ds.destroy();
  }
}
