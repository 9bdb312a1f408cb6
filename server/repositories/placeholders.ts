/**
 * Bound-parameter placeholders for the plain SQL run beside TypeORM (hot-queries.ts, bulk-rows.ts,
 * the audit chain, the SCIM outbox and user list): PostgreSQL numbers them (`$1`, `$2`, …), SQLite
 * and MySQL/MariaDB take `?` in order. The one place that choice is made.
 */

/** The n-th (1-based) parameter's placeholder. */
export type Placeholder = (n: number) => string;

const numbered: Placeholder = (n) => `$${n}`;
/** `?`: SQLite's and MySQL/MariaDB's. */
export const unnumbered: Placeholder = () => '?';

/** For a TypeORM driver type (`postgres`, `better-sqlite3`, `mysql`, `mariadb`) or a filter-sql.ts dialect. */
export const placeholderFor = (type: string): Placeholder => (type === 'postgres' ? numbered : unnumbered);

/**
 * `count` placeholders, comma-separated, numbered after the statement's first `after`. A plain loop:
 * `Array.from({ length })` made a 1,000-row group write's statement text three times as slow to build.
 */
export function placeholderList(p: Placeholder, count: number, after = 0): string {
  let list = count > 0 ? p(after + 1) : '';
  for (let i = 2; i <= count; i++) list += `, ${p(after + i)}`;
  return list;
}
