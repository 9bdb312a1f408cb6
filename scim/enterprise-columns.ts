/**
 * Filterable Enterprise User attributes (RFC 7643 §4.3). They have no columns of their own: the
 * filter reads them from the stored attribute JSON (filter-sql.ts `json` columns), which works the
 * same on PostgreSQL, MariaDB and SQLite. Entra ID asks `filter=id eq "…" and manager eq "…"`
 * before it sets a manager.
 */
import type { ColumnMap, FilterColumn } from './filter-sql';
import { ENTERPRISE_USER_SCHEMA } from './schemas';

const json = (path: string[], caseExact: boolean): FilterColumn => ({ kind: 'json', column: 'u.scim_attributes', path: [ENTERPRISE_USER_SCHEMA, ...path], caseExact });
const ENT = ENTERPRISE_USER_SCHEMA.toLowerCase();
const manager = json(['manager', 'value'], true);

export const ENTERPRISE_USER_COLUMNS: ColumnMap = {
  // Entra filters on the bare name; `manager` compares its `value` (the manager's id), exactly.
  manager,
  'manager.value': manager,
  [`${ENT}:manager`]: manager,
  [`${ENT}:manager.value`]: manager,
  ...Object.fromEntries(
    ['employeeNumber', 'costCenter', 'organization', 'division', 'department'].map((a) => [`${ENT}:${a.toLowerCase()}`, json([a], false)]),
  ),
};
