import { newUser } from '../scim/support';
import { faultFixture, SLACK_MS, type FaultFixture } from './fixture';
import { timed } from './support';

const ACQUIRE_TIMEOUT_MS = 400;
// better-sqlite3 ships no type declarations; this test needs only a second connection's exec and close.
const Database = require('better-sqlite3') as new (path: string) => { exec(sql: string): void; close(): void };

/**
 * SQLite's counterpart of a lost connection: another process (a backup job, an operator's sqlite3
 * shell) holds the database's write lock. A write waits CS_DB_ACQUIRE_TIMEOUT_MS (busy_timeout),
 * then gets 503 + Retry-After with nothing written; once the lock is released writes succeed.
 */
describe('SQLite write lock held by another process', () => {
  let f: FaultFixture;
  beforeAll(async () => {
    f = await faultFixture('sqlite', { CS_DB_ACQUIRE_TIMEOUT_MS: String(ACQUIRE_TIMEOUT_MS) });
  });
  afterAll(async () => f?.close());

  test('SCIM create: 503 + Retry-After after the busy timeout, no half-write, then 201', async () => {
    const intruder = new Database(f.db.url.slice('sqlite:'.length));
    try {
      intruder.exec('BEGIN IMMEDIATE'); // takes the write lock and keeps it
      const r = await timed(Promise.resolve(f.scimPost('/Users', newUser('locked-out@example.com'))));
      expect(r.ms).toBeLessThan(ACQUIRE_TIMEOUT_MS + SLACK_MS);
      expect(r.value?.status).toBe(503);
      expect(Number(r.value?.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(r.value?.body).toMatchObject({ schemas: ['urn:ietf:params:scim:api:messages:2.0:Error'], status: '503' });
      expect(JSON.stringify(r.value?.body)).not.toMatch(/SQLITE|locked/i);
      intruder.exec('ROLLBACK');
    } finally {
      intruder.close();
    }
    const found = await f.scimGet(`/Users?filter=${encodeURIComponent('userName eq "locked-out@example.com"')}`).expect(200);
    expect(found.body.totalResults).toBe(0);
    await f.scimPost('/Users', newUser('locked-out@example.com')).expect(201);
  });
});
