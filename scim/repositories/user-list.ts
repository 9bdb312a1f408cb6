/**
 * The SCIM user list as plain SQL on the caller's manager (issue 10): a page of users with their
 * key rows in one statement, only the columns a SCIM resource shows, and COUNT(*) only when the
 * page does not tell the total. TypeORM's query building and entity hydration cost more than the
 * database did for a page of 100, and its getCount() is COUNT(DISTINCT id), several times slower
 * than COUNT(*) on the live-users index.
 *
 * Pages deeper than the first skip over ids alone (the live-users index, or the filter's), from
 * whichever end of the list is nearer, then read the page's rows and keys by those ids. On
 * PostgreSQL the rows also bring their groups, and a deep page its count: one statement a page.
 */
import type { EntityManager } from 'typeorm';
import type { UserKeysRow } from '../../entities';
import type { SqlCondition, SqlDialect } from '../filter-sql';
import type { ListedUser } from '../resources';
import { truthy, userKeysRowOf } from '../../server/repositories/hot-queries';
import { pgQuery, pgStatementName, type PgPool } from '../../server/repositories/raw-driver';
import { placeholderFor } from '../../server/repositories/placeholders';

export interface UserListQuery {
  where?: SqlCondition;
  orderBy?: string;
  descending?: boolean;
  startIndex: number;
  count: number;
}

type Raw = Record<string, unknown>;

/**
 * `:name` parameters (filter-sql.ts) → the driver's positional ones, in order. Quoted SQL literals
 * (JSON paths hold colons) are copied as they are.
 */
export function positional(sql: string, params: Record<string, unknown>, dialect: SqlDialect, values: unknown[]): string {
  const p = placeholderFor(dialect);
  let out = '';
  for (let i = 0; i < sql.length; ) {
    const c = sql[i]!;
    if (c === "'") {
      const end = sql.indexOf("'", i + 1);
      const stop = end < 0 ? sql.length : end + 1;
      out += sql.slice(i, stop);
      i = stop;
      continue;
    }
    if (c === ':') {
      const m = /^:(\w+)/.exec(sql.slice(i, i + 64));
      if (m && Object.prototype.hasOwnProperty.call(params, m[1]!)) {
        values.push(params[m[1]!]);
        out += p(values.length);
        i += m[0].length;
        continue;
      }
    }
    out += c;
    i++;
  }
  return out;
}

function param(dialect: SqlDialect, values: unknown[], v: unknown): string {
  values.push(v);
  return placeholderFor(dialect)(values.length);
}

const LIVE = 'u.deleted_at IS NULL';
const KEYED = 'u.id, u.user_name, u.external_id, u.active, u.scim_attributes, u.created_at, u.updated_at, u.version, k.key_alg, k.public_jwk, k.private_jwe, k.wrapped_password_key, k.kek_uri, k.created_at AS keys_created_at';
/**
 * On PostgreSQL each row brings its groups (RFC 7643 User.groups) as JSON, in the order
 * ScimQueries.groupsOf gives them: one round trip per page instead of two. The aggregate (a sort
 * set up per row) runs only for members of some group: ~0.4 ms less a page where none is.
 */
const PG_GROUPS = `CASE WHEN EXISTS (SELECT 1 FROM group_members gm WHERE gm.user_id = u.id) THEN (SELECT json_agg(json_build_array(gm.group_id, g.display_name) ORDER BY g.display_name_norm) FROM group_members gm JOIN "groups" g ON g.id = gm.group_id WHERE gm.user_id = u.id AND g.origin = 'scim') END AS groups_json`;

export type UserGroups = Map<string, { groupId: string; display: string }[]>;

function userOf(r: Raw): ListedUser {
  return {
    id: String(r.id),
    userName: String(r.user_name),
    externalId: (r.external_id as string | null) ?? null,
    active: truthy(r.active),
    scimAttributes: String(r.scim_attributes ?? ''),
    createdAt: String(r.created_at),
    updatedAt: String(r.updated_at),
    version: Number(r.version),
  };
}

/**
 * The list's reads. On PostgreSQL outside a transaction, pages and counts go to the pool as named
 * statements (raw-driver.ts pgStatementName): planning an `eq` filter page cost PostgreSQL more
 * than running it, on every request. Only where the plan cannot depend on the values
 * (SqlCondition.steered): after five runs PostgreSQL may keep one generic plan for a named
 * statement, and a plan made without the pattern of a LIKE (co, ew, sw on other columns) or the
 * bounds of a range (gt, lt) can walk every user. `sw` on userName / externalId is named: its range
 * is an index condition in any plan (filter-sql.ts); a prefix most users share is then read whole
 * from the index and sorted rather than walked in list order, no worse than the count its full page
 * needs anyway. A deep page is named on the same terms: its LIMIT and OFFSET only set how far the
 * ordered walk of the ids goes, from whichever end (a generic plan walks the same index, checked
 * with EXPLAIN), and planning it cost PostgreSQL ~0.9 ms a request.
 */
function reads(m: EntityManager, dialect: SqlDialect) {
  const pool = dialect === 'postgres' && !m.queryRunner ? (m.connection.driver as unknown as { master: PgPool }).master : undefined;
  const plain = async (sql: string, values: unknown[]) => (await m.query(sql, values)) as Raw[];
  const named = (sql: string, values: unknown[], where: SqlCondition | undefined) => {
    const name = pool && where?.steered !== true && pgStatementName(sql);
    return name ? pgQuery(pool!, { name, text: sql, values }) : plain(sql, values);
  };
  return { plain, named };
}

/** The total when the page itself tells it (a page neither full nor empty ends the list). */
export function knownTotal(q: { startIndex: number; count: number }, rows: number): number | undefined {
  if (q.count > 0 && rows > 0 && rows < q.count) return q.startIndex - 1 + rows;
  if (q.count > 0 && rows === 0 && q.startIndex === 1) return 0;
  return undefined;
}

/** A page of users with their keys; on PostgreSQL with their groups too (otherwise `groups` is undefined: ask groupsOf). */
export async function listUserPage(m: EntityManager, dialect: SqlDialect, q: UserListQuery): Promise<{ total: number; rows: ListedUser[]; keys: Map<string, UserKeysRow>; groups?: UserGroups }> {
  const COLUMNS = dialect === 'postgres' ? `${KEYED}, ${PG_GROUPS}` : KEYED;
  const query = reads(m, dialect);
  const countValues: unknown[] = [];
  const countWhere = q.where ? ` AND ${positional(q.where.sql, q.where.params, dialect, countValues)}` : '';
  const count = async () => Number((await query.named(`SELECT COUNT(*) AS n FROM users u WHERE ${LIVE}${countWhere}`, countValues, q.where))[0]?.n ?? 0);
  const none = () => ({ rows: [], keys: new Map(), groups: dialect === 'postgres' ? new Map() : undefined });
  if (q.count <= 0) return { total: await count(), ...none() };

  const values: unknown[] = [];
  const where = q.where ? ` AND ${positional(q.where.sql, q.where.params, dialect, values)}` : '';
  const dir = q.descending ? 'DESC' : 'ASC';
  const back = q.descending ? 'ASC' : 'DESC';
  // A stable order: the requested column, then id (unique), so pages never overlap or skip.
  const order = q.orderBy ? `${q.orderBy} ${dir}, u.id ASC` : 'u.created_at ASC, u.id ASC';
  const reverse = q.orderBy ? `${q.orderBy} ${back}, u.id DESC` : 'u.created_at DESC, u.id DESC';
  const skip = q.startIndex - 1;
  const ids = (backwards: boolean, limit: string) => `SELECT u.id FROM users u WHERE ${LIVE}${where} ORDER BY ${backwards ? reverse : order} ${limit}`;
  let raw: Raw[];
  let total: number;
  if (skip === 0) {
    const limit = `LIMIT ${param(dialect, values, q.count)}`;
    // Unfiltered lists are full pages until the end: on a pool, count beside the page.
    const early = !q.where && dialect !== 'sqlite' ? count() : undefined;
    early?.catch(() => undefined);
    // PostgreSQL, filtered: the page's ids first, then their rows by primary key. The plan of the
    // ids alone can be generic (one index range for `sw`), while the rows' join and groups would
    // price a generic plan above one made per prefix: PostgreSQL would plan every request.
    const from = dialect === 'postgres' && q.where ? `WHERE u.id = ANY(ARRAY(${ids(false, limit)})) ORDER BY ${order}` : `WHERE ${LIVE}${where} ORDER BY ${order} ${limit}`;
    raw = await query.named(`SELECT ${COLUMNS} FROM users u LEFT JOIN user_keys k ON k.user_id = u.id ${from}`, values, q.where);
    total = knownTotal(q, raw.length) ?? (await (early ?? count()));
  } else {
    // A deep page: it needs the total, and a page in the second half of the list is read walking the
    // index from the end, so skipping costs what is left, not what came before. The page's ids come
    // from the index alone; rows and keys are joined after.
    if (dialect === 'postgres') {
      // One statement (one snapshot, one round trip): the count, then the ids from the nearer end.
      // PostgreSQL joins a derived table of 100 ids by hashing a sequential scan of every user (its
      // planner prices 100 primary-key probes above one scan); an array of the ids probes the key.
      const [n, start, counted] = [param(dialect, values, q.count), param(dialect, values, skip), '(SELECT n FROM t)'];
      const fromEnd = `GREATEST(${counted} - ${start} - ${n}, 0)`;
      // A CASE runs only the branch it takes: the other ids subquery is never executed.
      const pageIds = `CASE WHEN ${fromEnd} < ${start} THEN ARRAY(${ids(true, `LIMIT GREATEST(LEAST(${n}, ${counted} - ${start}), 0) OFFSET ${fromEnd}`)}) ELSE ARRAY(${ids(false, `LIMIT ${n} OFFSET ${start}`)}) END`;
      raw = await query.named(`WITH t AS (SELECT COUNT(*) AS n FROM users u WHERE ${LIVE}${where}) SELECT ${counted} AS total_n, ${COLUMNS} FROM users u LEFT JOIN user_keys k ON k.user_id = u.id WHERE u.id = ANY(${pageIds}) ORDER BY ${order}`, values, q.where);
      // An empty page (past the end) has no row to tell the total.
      total = raw.length > 0 ? Number(raw[0]!.total_n) : await count();
    } else {
      total = await count();
      const left = total - skip;
      if (left <= 0) return { total, ...none() };
      const n = Math.min(q.count, left);
      const fromEnd = left - n;
      const backwards = fromEnd < skip;
      const limit = `LIMIT ${param(dialect, values, n)} OFFSET ${param(dialect, values, backwards ? fromEnd : skip)}`;
      raw = await query.plain(`SELECT ${COLUMNS} FROM (${ids(backwards, limit)}) p JOIN users u ON u.id = p.id LEFT JOIN user_keys k ON k.user_id = u.id ORDER BY ${order}`, values);
    }
  }
  const rows = raw.map(userOf);
  const keys = new Map<string, UserKeysRow>();
  for (const r of raw) {
    const k = userKeysRowOf(String(r.id), r);
    if (k) keys.set(k.userId, k);
  }
  if (dialect !== 'postgres') return { total, rows, keys };
  const groups: UserGroups = new Map();
  for (const r of raw) groups.set(String(r.id), ((r.groups_json as [string, string][] | null) ?? []).map(([groupId, display]) => ({ groupId, display })));
  return { total, rows, keys, groups };
}
