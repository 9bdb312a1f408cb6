import { loadConfig } from '../../server/config';
import { workerCount } from '../../server/cli/serve';

/** How many worker processes `serve` starts: CS_WORKERS, else one per CPU, else 1 on SQLite. */
describe('CS_WORKERS', () => {
  const pg = { CS_DATABASE_URL: 'postgres://u@127.0.0.1:5432/db' };

  it('defaults to one per CPU on PostgreSQL/MariaDB and to 1 on SQLite', () => {
    expect(workerCount(loadConfig(pg), 4)).toBe(4);
    expect(workerCount(loadConfig({ CS_DATABASE_URL: 'mariadb://u@127.0.0.1:3306/db' }), 3)).toBe(3);
    expect(workerCount(loadConfig({}), 4)).toBe(1);
  });

  it('is taken as set, on every database', () => {
    expect(workerCount(loadConfig({ ...pg, CS_WORKERS: '1' }), 4)).toBe(1);
    expect(workerCount(loadConfig({ CS_WORKERS: '3' }), 4)).toBe(3);
  });

  it.each(['0', '-1', '1.5', 'many', '65'])('refuses CS_WORKERS=%s naming the setting', (v) => {
    expect(() => loadConfig({ CS_WORKERS: v })).toThrow(/CS_WORKERS: /);
  });
});
