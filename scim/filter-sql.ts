/**
 * SCIM filter → SQL condition, for TypeORM's SelectQueryBuilder.where(sql, params).
 *
 * The filter is parsed into an AST (filter-parser.ts) and translated over an explicit column map.
 * Values only ever travel as named parameters; attribute names are looked up in the map, never
 * copied into SQL, so nothing from the request is interpolated. Every emitted condition is
 * two-valued (never SQL NULL), so `not (...)` means what SCIM says it means.
 */
import { invalidFilter, parseFilter, type FilterNode } from './filter-parser';

export { parseFilter };

export type SqlDialect = 'postgres' | 'mysql' | 'sqlite';

export type FilterColumn =
  /**
   * A string column. `lowered`: the column already holds the lower-cased value (an indexed *_norm column).
   * `prefixIndexed`: PostgreSQL has a text_pattern_ops index of the live users over it (migration
   * 1764810000000), so `sw` there is an index range whatever the prefix.
   */
  | { kind: 'string'; expr: string; caseExact: boolean; lowered?: boolean; prefixIndexed?: boolean }
  | { kind: 'boolean'; expr: string }
  /** ISO-8601 UTC strings in varchar(24): lexicographic order is chronological. */
  | { kind: 'datetime'; expr: string }
  /** A string inside a JSON text column (the stored SCIM attributes), e.g. the enterprise manager's id. */
  | { kind: 'json'; column: string; path: readonly string[]; caseExact: boolean }
  /** A value in a related table: EXISTS (SELECT 1 FROM <table> WHERE <join> AND <condition on column>). */
  | { kind: 'exists'; table: string; alias: string; join: string; column: Exclude<FilterColumn, { kind: 'exists' }> };

/** Lower-cased attribute path ("name.familyname", "meta.lastmodified") → column. */
export type ColumnMap = Readonly<Record<string, FilterColumn>>;

export interface SqlCondition {
  sql: string;
  params: Record<string, unknown>;
  /**
   * Whether a good plan depends on the values (a LIKE pattern, a range's bounds): PostgreSQL must
   * plan such a statement with them each time, not keep one generic plan (user-list.ts).
   */
  steered?: boolean;
}

const CORE_PREFIXES = ['urn:ietf:params:scim:schemas:core:2.0:user:', 'urn:ietf:params:scim:schemas:core:2.0:group:'];

type Comparison = { op: string; value: unknown };

export function normalisePath(path: string): string {
  let p = path.toLowerCase();
  for (const prefix of CORE_PREFIXES) if (p.startsWith(prefix)) p = p.slice(prefix.length);
  return p;
}

/** Escapes LIKE wildcards with "!" (portable: no backslash-escaping differences between engines). */
function likeEscape(v: string): string {
  return v.replace(/[!%_]/g, (c) => `!${c}`);
}

/**
 * The least string above every string that starts with `prefix`, in code point order (SQLite's
 * BINARY collation and PostgreSQL's ~<~ operators compare UTF-8 bytes, which orders as code
 * points): the last code point plus one. Undefined when there is none (empty prefix, or it ends in
 * U+10FFFF), or when the prefix holds a lone surrogate (the drivers would send U+FFFD for it, which
 * the bounds would not bracket).
 */
export function prefixRange(prefix: string): string | undefined {
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(prefix)) return undefined;
  const chars = Array.from(prefix);
  const last = chars.pop()?.codePointAt(0);
  if (last === undefined || last >= 0x10ffff) return undefined;
  const next = last + 1 === 0xd800 ? 0xe000 : last + 1; // skip the surrogate range
  return chars.join('') + String.fromCodePoint(next);
}

class Builder {
  readonly params: Record<string, unknown> = {};
  /** Set by any condition whose good plan depends on its value (SqlCondition.steered). */
  steered = false;
  private n = 0;
  constructor(
    private readonly dialect: SqlDialect,
    private readonly prefix: string,
  ) {}

  param(value: unknown): string {
    const name = `${this.prefix}${this.n++}`;
    this.params[name] = value;
    return `:${name}`;
  }

  /** The JSON value at `path` as text, or NULL when absent, in each engine's own JSON functions. */
  private jsonText(column: Extract<FilterColumn, { kind: 'json' }>): string {
    // Path segments come from our column map, never from the request; refuse anything that would need escaping.
    if (!column.path.every((p) => /^[\w:.$-]+$/.test(p))) throw new Error(`unsafe JSON path in column map: ${column.path.join('/')}`);
    if (this.dialect === 'postgres') return `(CAST(${column.column} AS jsonb) #>> '{${column.path.map((p) => `"${p}"`).join(',')}}')`;
    const jsonPath = `'$${column.path.map((p) => `."${p}"`).join('')}'`;
    return this.dialect === 'mysql' ? `JSON_VALUE(${column.column}, ${jsonPath})` : `json_extract(${column.column}, ${jsonPath})`;
  }

  /** Every condition is two-valued (never SQL NULL), so NOT(...) behaves as SCIM expects. */
  positive(path: string, column: FilterColumn, c: Comparison): string {
    if (column.kind === 'json') return this.positive(path, { kind: 'string', expr: this.jsonText(column), caseExact: column.caseExact }, c);
    if (column.kind === 'exists') {
      const from = `SELECT 1 FROM ${column.table} ${column.alias} WHERE ${column.join}`;
      if (c.op === 'pr') return `EXISTS (${from})`;
      if (c.op === 'np') return `NOT EXISTS (${from})`;
      if (c.op === 'ne') return `NOT EXISTS (${from} AND ${this.positive(path, column.column, { ...c, op: 'eq' })})`;
      return `EXISTS (${from} AND ${this.positive(path, column.column, c)})`;
    }
    const col = column.expr;
    if (c.op === 'pr' || (c.op === 'ne' && c.value === null)) {
      return column.kind === 'string' ? `(${col} IS NOT NULL AND ${col} <> '')` : `${col} IS NOT NULL`;
    }
    if (c.op === 'np' || (c.op === 'eq' && c.value === null)) {
      return column.kind === 'string' ? `(${col} IS NULL OR ${col} = '')` : `${col} IS NULL`;
    }
    if (c.op === 'ne') return `(${col} IS NULL OR NOT (${this.positive(path, column, { ...c, op: 'eq' })}))`;

    switch (column.kind) {
      case 'boolean': {
        const v = typeof c.value === 'string' ? c.value.toLowerCase() : c.value;
        if (v !== true && v !== false && v !== 'true' && v !== 'false') throw invalidFilter(`"${path}" is boolean; compare it with true or false`);
        if (c.op !== 'eq') throw invalidFilter(`operator "${c.op}" is not supported for boolean "${path}"`);
        const b = v === true || v === 'true';
        return `(${col} IS NOT NULL AND ${col} = ${this.param(this.dialect === 'postgres' ? b : b ? 1 : 0)})`;
      }
      case 'datetime': {
        if (typeof c.value !== 'string') throw invalidFilter(`"${path}" is a date-time; compare it with an ISO-8601 string`);
        const t = Date.parse(c.value);
        if (Number.isNaN(t)) throw invalidFilter(`"${String(c.value)}" is not an ISO-8601 date-time`);
        const iso = new Date(t).toISOString();
        const ops: Record<string, string> = { eq: '=', gt: '>', ge: '>=', lt: '<', le: '<=' };
        if (!ops[c.op]) throw invalidFilter(`operator "${c.op}" is not supported for date-time "${path}"`);
        if (c.op !== 'eq') this.steered = true;
        return `(${col} IS NOT NULL AND ${col} ${ops[c.op]} ${this.param(iso)})`;
      }
      case 'string':
        return this.stringCondition(path, column, c);
    }
  }

  private stringCondition(path: string, column: Extract<FilterColumn, { kind: 'string' }>, c: Comparison): string {
    if (typeof c.value !== 'string') throw invalidFilter(`"${path}" is a string; compare it with a quoted value`);
    const exact = column.caseExact;
    const value = exact ? c.value : c.value.toLowerCase();
    const col = exact || column.lowered ? column.expr : `LOWER(${column.expr})`;
    const guard = (sql: string) => `(${column.expr} IS NOT NULL AND ${sql})`;
    const binary = exact && this.dialect === 'mysql';
    switch (c.op) {
      case 'eq':
        // MariaDB's default collations ignore case: keep the indexable comparison and add a binary one.
        return guard(binary ? `${col} = ${this.param(value)} AND BINARY ${col} = ${this.param(value)}` : `${col} = ${this.param(value)}`);
      case 'gt':
      case 'ge':
      case 'lt':
      case 'le': {
        const ops: Record<string, string> = { gt: '>', ge: '>=', lt: '<', le: '<=' };
        this.steered = true;
        return guard(`${binary ? `BINARY ${col}` : col} ${ops[c.op]} ${this.param(value)}`);
      }
      case 'co':
      case 'sw':
      case 'ew': {
        const e = likeEscape(value);
        const pattern = c.op === 'co' ? `%${e}%` : c.op === 'sw' ? `${e}%` : `%${e}`;
        // SQLite's LIKE cannot use a BINARY-collated index: a range over the same prefix can.
        // Plain columns only: a JSON value may be a number, which compares below any text.
        const plainColumn = /^\w+\.\w+$/.test(column.expr);
        const sqliteRange = this.dialect === 'sqlite' && plainColumn && (exact || column.lowered);
        // PostgreSQL: the same range in the byte-wise operators of the text_pattern_ops index. Unlike
        // a LIKE pattern, bounds given as parameters are index conditions in a generic plan too, so
        // the statement can be planned once (the LIKE stays as the exact condition).
        const pgRange = this.dialect === 'postgres' && plainColumn && column.prefixIndexed === true && (exact || column.lowered);
        const range = c.op === 'sw' && (sqliteRange || pgRange) ? prefixRange(value) : undefined;
        const [ge, lt] = this.dialect === 'postgres' ? ['~>=~', '~<~'] : ['>=', '<'];
        const ranged = (sql: string) => (range ? `${col} ${ge} ${this.param(value)} AND ${col} ${lt} ${this.param(range)} AND ${sql}` : sql);
        if (!(range && pgRange)) this.steered = true;
        if (exact && this.dialect === 'sqlite') {
          // SQLite's LIKE ignores ASCII case; check the exact substring as well.
          const p = this.param(value);
          const exactCheck =
            c.op === 'co'
              ? `instr(${col}, ${p}) > 0`
              : c.op === 'sw'
                ? `substr(${col}, 1, length(${p})) = ${p}`
                : `substr(${col}, -length(${p})) = ${p}`;
          return guard(ranged(`${col} LIKE ${this.param(pattern)} ESCAPE '!' AND ${exactCheck}`));
        }
        return guard(ranged(`${binary ? `BINARY ${col}` : col} LIKE ${this.param(pattern)} ESCAPE '!'`));
      }
      default:
        throw invalidFilter(`operator "${c.op}" is not supported for "${path}"`);
    }
  }
}

export interface TranslateOptions {
  dialect: SqlDialect;
  /** Prefix for parameter names, so several conditions can share one query. Default "f". */
  paramPrefix?: string;
}

/** Translates a parsed filter into one parenthesised SQL condition with named parameters. */
export function filterToSql(filter: FilterNode, columns: ColumnMap, options: TranslateOptions): SqlCondition {
  const b = new Builder(options.dialect, options.paramPrefix ?? 'f');
  const column = (path: string): FilterColumn => {
    const c = columns[normalisePath(path)];
    if (!c) throw invalidFilter(`filtering on "${path}" is not supported`);
    return c;
  };
  const walk = (node: FilterNode, prefix: string): string => {
    switch (node.kind) {
      case 'and':
      case 'or':
        return `(${walk(node.left, prefix)} ${node.kind === 'and' ? 'AND' : 'OR'} ${walk(node.right, prefix)})`;
      case 'not':
        return `NOT (${walk(node.expr, prefix)})`;
      case 'cmp': {
        const path = prefix ? `${prefix}.${node.path}` : node.path;
        return b.positive(path, column(path), { op: node.op, value: node.value });
      }
      case 'valuePath': {
        if (prefix) throw invalidFilter('value paths cannot be nested');
        const outer = [columns[normalisePath(node.path)], columns[`${normalisePath(node.path)}.value`]].find((c) => c?.kind === 'exists');
        if (outer?.kind === 'exists') {
          // One element of a related table must satisfy the whole inner filter.
          const inner = (n: FilterNode): string => {
            switch (n.kind) {
              case 'and':
              case 'or':
                return `(${inner(n.left)} ${n.kind === 'and' ? 'AND' : 'OR'} ${inner(n.right)})`;
              case 'not':
                return `NOT (${inner(n.expr)})`;
              case 'cmp':
                if (normalisePath(n.path) !== 'value') throw invalidFilter(`filtering on "${node.path}.${n.path}" is not supported`);
                return b.positive(`${node.path}.value`, outer.column, { op: n.op, value: n.value });
              default:
                throw invalidFilter('value paths cannot be nested');
            }
          };
          return `EXISTS (SELECT 1 FROM ${outer.table} ${outer.alias} WHERE ${outer.join} AND ${inner(node.filter)})`;
        }
        // Single-valued projections (the stored work email): sub-attributes resolve as "attr.sub".
        return walk(node.filter, node.path);
      }
    }
  };
  const sql = `(${walk(filter, '')})`;
  return { sql, params: b.params, steered: b.steered };
}

/** ORDER BY target for sortBy; only plain columns sort. */
export function sortColumn(sortBy: string, columns: ColumnMap): string {
  const column = columns[normalisePath(sortBy)];
  if (!column || column.kind === 'exists' || column.kind === 'json') throw invalidFilter(`sorting by "${sortBy}" is not supported`);
  return column.expr;
}
