import request from 'supertest';
import { createRequestListener } from '../../server/http/app';
import { createAuthFixture, signedInUser, type AuthFixture } from '../support/auth-fixture';

// better-sqlite3 ships no type declarations; this test needs only a second connection's exec and close.
const Database = require('better-sqlite3') as new (path: string) => { exec(sql: string): void; close(): void };

const UNWRAP = '/api/keys/password-key/unwrap';

/**
 * Several worker processes on one SQLite file (CS_WORKERS): while another process holds the write
 * lock, a key-API call's audit batch waits for it without stopping this process's event loop, so
 * the process goes on serving meanwhile. (busy_timeout waited inside the statement: nothing else
 * ran until the lock came free or the timeout passed.) The row is still committed before the 200.
 */
describe('SQLite audit batch waiting for another process’s write lock', () => {
  let f: AuthFixture;
  let other: { exec(sql: string): void; close(): void };
  beforeAll(async () => {
    f = await createAuthFixture('sqlite', { CS_DB_ACQUIRE_TIMEOUT_MS: '5000' });
    other = new Database((f.config.database as { path: string }).path);
  });
  afterAll(async () => {
    other?.close();
    await f?.cleanupAll();
  });

  test('the event loop runs on while it waits; once the lock is released the unwrap answers 200 with its row committed', async () => {
    const app = createRequestListener(f);
    const alice = await signedInUser(f, 'alice@example.com');
    const me = await request(app).get('/api/keys/me').set('Authorization', `Bearer ${alice.token}`);
    expect(me.status).toBe(200);
    other.exec('BEGIN IMMEDIATE');
    const events: string[] = [];
    // Another process's transaction ending: only a running event loop gets here before the response.
    const release = setTimeout(() => {
      events.push('released');
      other.exec('ROLLBACK');
    }, 100);
    const response = request(app)
      .post(UNWRAP)
      .set('Authorization', `Bearer ${alice.token}`)
      .set('X-Request-Id', 'waited-for-lock')
      .send({ wrappedPasswordKey: alice.wrappedPasswordKey })
      .then((r) => (events.push('answered'), r));
    try {
      const r = await response;
      expect(r.status).toBe(200);
      expect(Buffer.from(r.body.passwordKey, 'base64url')).toHaveLength(32);
    } finally {
      clearTimeout(release);
    }
    expect(events).toEqual(['released', 'answered']);
    const rows = await f.store.repos.audit.recent(10, { action: 'password-key.unwrap', outcome: 'success' });
    expect(rows.filter((e) => e.requestId === 'waited-for-lock')).toHaveLength(1);
  });
});
