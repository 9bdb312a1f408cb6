import { filterToSql, parseFilter, sortColumn, type ColumnMap } from '../../scim/filter-sql';

const columns: ColumnMap = {
  id: { kind: 'string', expr: 'u.id', caseExact: true },
  username: { kind: 'string', expr: 'u.user_name_norm', caseExact: false, lowered: true },
  externalid: { kind: 'string', expr: 'u.external_id', caseExact: true },
  displayname: { kind: 'string', expr: 'u.display_name', caseExact: false },
  active: { kind: 'boolean', expr: 'u.active' },
  'meta.created': { kind: 'datetime', expr: 'u.created_at' },
  'members.value': {
    kind: 'exists',
    table: 'group_members',
    alias: 'gm',
    join: 'gm.group_id = g.id',
    column: { kind: 'string', expr: 'gm.user_id', caseExact: true },
  },
};

const t = (f: string, dialect: 'postgres' | 'mysql' | 'sqlite' = 'postgres') => filterToSql(parseFilter(f), columns, { dialect });

describe('SCIM filter → SQL', () => {
  it('eq on a case-insensitive, pre-lowered column lower-cases the parameter', () => {
    expect(t('userName eq "Alice@Example.COM"')).toEqual({
      sql: '((u.user_name_norm IS NOT NULL AND u.user_name_norm = :f0))',
      params: { f0: 'alice@example.com' },
      steered: false,
    });
  });

  it('marks the conditions whose good plan depends on their values (PostgreSQL plans those per request)', () => {
    const steered = (f: string) => t(f).steered;
    expect(steered('userName eq "a" or externalId eq "b" and active eq true')).toBe(false);
    expect(steered('externalId pr and not (userName ne "a") and meta.created eq "2020-01-01T00:00:00Z"')).toBe(false);
    expect(steered('members[value eq "u1"]')).toBe(false);
    for (const f of ['userName sw "a"', 'userName co "a"', 'displayName ew "a"', 'meta.created gt "2020-01-01T00:00:00Z"', 'userName lt "b"', 'userName eq "a" or userName sw "b"']) expect([f, steered(f)]).toEqual([f, true]);
  });

  it('never interpolates values, even hostile ones', () => {
    const r = t(`displayName eq "x' OR 1=1 --"`);
    expect(r.sql).not.toContain('OR 1=1');
    expect(r.params).toEqual({ f0: "x' or 1=1 --" });
    expect(r.sql).toContain('LOWER(u.display_name) = :f0');
  });

  it('co/sw/ew escape LIKE wildcards', () => {
    expect(t('displayName co "50%_!"').params).toEqual({ f0: '%50!%!_!!%' });
    expect(t('displayName sw "a"').params).toEqual({ f0: 'a%' });
    expect(t('displayName ew "a"').params).toEqual({ f0: '%a' });
  });

  it('and/or/not, pr, booleans per dialect', () => {
    const r = t('userName sw "a" and not (active eq true) or externalId pr');
    expect(r.sql).toBe(
      "((((u.user_name_norm IS NOT NULL AND u.user_name_norm LIKE :f0 ESCAPE '!') AND NOT ((u.active IS NOT NULL AND u.active = :f1))) OR (u.external_id IS NOT NULL AND u.external_id <> '')))",
    );
    expect(r.params).toEqual({ f0: 'a%', f1: true });
    expect(t('active eq false', 'sqlite').params).toEqual({ f0: 0 });
    expect(t('active eq "True"', 'mysql').params).toEqual({ f0: 1 });
  });

  it('negated groups keep their meaning (scimmy flattens these wrongly)', () => {
    expect(t('not (userName eq "a" or userName eq "b")').sql).toBe(
      '(NOT (((u.user_name_norm IS NOT NULL AND u.user_name_norm = :f0) OR (u.user_name_norm IS NOT NULL AND u.user_name_norm = :f1))))',
    );
    expect(t('(userName eq "a" or userName eq "b") and not (active eq true)').sql).toBe(
      '((((u.user_name_norm IS NOT NULL AND u.user_name_norm = :f0) OR (u.user_name_norm IS NOT NULL AND u.user_name_norm = :f1)) AND NOT ((u.active IS NOT NULL AND u.active = :f2))))',
    );
    expect(t('userName eq "x" and (displayName co "y" or not (active eq true))').sql).toContain('OR NOT ((u.active');
  });

  it('string escapes are JSON escapes', () => {
    expect(t('displayName eq "say \\"hi\\" \\\\ \\u00e9"').params).toEqual({ f0: 'say "hi" \\ é' });
    expect(() => t('displayName eq "bad \\q"')).toThrow(expect.objectContaining({ scimType: 'invalidFilter' }));
  });

  it('a value path on a related table tests one element for the whole inner filter', () => {
    expect(t('members[value eq "a" or value eq "b"]').sql).toBe(
      '(EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = g.id AND ((gm.user_id IS NOT NULL AND gm.user_id = :f0) OR (gm.user_id IS NOT NULL AND gm.user_id = :f1))))',
    );
    expect(() => t('members[display eq "x"]')).toThrow(expect.objectContaining({ scimType: 'invalidFilter' }));
  });

  it('case-exact eq on MariaDB adds a binary comparison', () => {
    expect(t('externalId eq "AbC"', 'mysql').sql).toBe('((u.external_id IS NOT NULL AND u.external_id = :f0 AND BINARY u.external_id = :f1))');
  });

  it('dates are normalised to the stored ISO-8601 form', () => {
    const r = t('meta.created gt "2026-01-01T00:00:00+01:00" and meta.created le "2027-01-01T00:00:00Z"');
    expect(r.params).toEqual({ f0: '2025-12-31T23:00:00.000Z', f1: '2027-01-01T00:00:00.000Z' });
    expect(() => t('meta.created gt "yesterday"')).toThrow(expect.objectContaining({ status: 400, scimType: 'invalidFilter' }));
  });

  it('ne includes resources without the attribute', () => {
    expect(t('externalId ne "x"').sql).toBe('((u.external_id IS NULL OR NOT ((u.external_id IS NOT NULL AND u.external_id = :f0))))');
  });

  it('value paths into related tables become EXISTS subqueries (Entra group membership check)', () => {
    const r = t('id eq "g1" and members[value eq "u1"]');
    expect(r.sql).toBe(
      '(((u.id IS NOT NULL AND u.id = :f0) AND EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = g.id AND (gm.user_id IS NOT NULL AND gm.user_id = :f1))))',
    );
  });

  it('URN-prefixed core attributes resolve to the same column', () => {
    expect(t('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"').sql).toContain('u.user_name_norm = :f0');
  });

  it.each([
    ['unknown attribute', 'nickName eq "x"'],
    ['syntax error', 'userName eq "x" and ('],
    ['missing value', 'userName eq'],
    ['dangling operator', 'userName eq "x" or'],
    ['unbalanced parenthesis', '(userName eq "x"'],
    ['trailing text', 'userName eq "x" junk'],
    ['unterminated string', 'userName eq "x'],
    ['wrong type', 'userName eq 5'],
    ['boolean with gt', 'active gt true'],
  ])('rejects %s with invalidFilter', (_name, f) => {
    expect(() => t(f)).toThrow(expect.objectContaining({ status: 400, scimType: 'invalidFilter' }));
  });

  it('sortBy resolves through the same map', () => {
    expect(sortColumn('userName', columns)).toBe('u.user_name_norm');
    expect(sortColumn('meta.created', columns)).toBe('u.created_at');
    expect(() => sortColumn('members.value', columns)).toThrow(expect.objectContaining({ scimType: 'invalidFilter' }));
  });
});

describe('SCIM filter → SQL on JSON attributes (enterprise manager)', () => {
  const json: ColumnMap = {
    manager: { kind: 'json', column: 'u.scim_attributes', path: ['urn:ietf:params:scim:schemas:extension:enterprise:2.0:User', 'manager', 'value'], caseExact: true },
    evil: { kind: 'json', column: 'u.scim_attributes', path: ["x'); DROP TABLE users; --"], caseExact: true },
  };
  const j = (f: string, dialect: 'postgres' | 'mysql' | 'sqlite') => filterToSql(parseFilter(f), json, { dialect });

  it('reads the value with each engine\'s JSON function; the value stays a parameter', () => {
    const path = '"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"';
    expect(j('manager eq "m1"', 'postgres').sql).toContain(`CAST(u.scim_attributes AS jsonb) #>> '{${path},"manager","value"}'`);
    expect(j('manager eq "m1"', 'mysql').sql).toContain(`JSON_VALUE(u.scim_attributes, '$.${path}."manager"."value"')`);
    expect(j('manager eq "m1"', 'sqlite').sql).toContain(`json_extract(u.scim_attributes, '$.${path}."manager"."value"')`);
    expect(j('manager eq "m1\' OR 1=1"', 'sqlite').params).toEqual({ f0: "m1' OR 1=1" });
  });

  it('refuses a column map path that would need escaping, and sorting on JSON attributes', () => {
    expect(() => j('evil eq "x"', 'postgres')).toThrow(/unsafe JSON path/);
    expect(() => sortColumn('manager', json)).toThrow(/sorting by "manager" is not supported/);
  });
});
