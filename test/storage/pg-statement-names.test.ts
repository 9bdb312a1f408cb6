import { MAX_NAMED_STATEMENTS, pgStatementName } from '../../server/repositories/raw-driver';

/**
 * Named pg statements stay prepared on every pooled connection, and any SCIM client can send new
 * filter shapes: the names are bounded, and past the bound a text runs unnamed.
 */
describe('pgStatementName', () => {
  it('gives one stable name per text, distinct texts distinct names, and none past the bound', () => {
    const first = pgStatementName('SELECT 1');
    expect(first).toMatch(/^cs_q_[0-9a-f]{24}$/);
    expect(pgStatementName('SELECT 1')).toBe(first);
    expect(pgStatementName('SELECT 2')).not.toBe(first);
    for (let i = 3; i <= MAX_NAMED_STATEMENTS; i++) expect(pgStatementName(`SELECT ${i}`)).toBeDefined();
    expect(pgStatementName(`SELECT ${MAX_NAMED_STATEMENTS + 1}`)).toBeUndefined();
    // Texts named before the bound keep their names.
    expect(pgStatementName('SELECT 1')).toBe(first);
  });
});
