import pino from 'pino';
import request from 'supertest';
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import { boot } from '../../server/boot';
import { createRequestListener } from '../../server/http/app';
import type { RequestListener } from 'node:http';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { ownWrites } from '../../server/repositories/runner';
import { testDatabaseNames } from '../support/databases';
import { ENTRA_DISABLE_USER } from '../scim/idp-bodies';
import { createAuthFixture, signedInUser, signInForToken, type AuthFixture } from '../support/auth-fixture';

// better-sqlite3 ships no type declarations; this test needs only a second connection's exec and close.
const Database = require('better-sqlite3') as new (path: string) => { exec(sql: string): void; close(): void };

/**
 * The key API's hot path (issue 10): raw statements, group-committed audit, verified-token cache.
 * What must still hold: every response's audit row is committed before the response; a failed
 * audit batch fails its requests (503, no key); a deactivation refuses the next request, on every
 * instance.
 */
const UNWRAP = '/api/keys/password-key/unwrap';
/** Each case runs through what `serve` runs (the fast path ahead of Express) and through the Express routes alone. */
const PATHS: [string, (f: AuthFixture) => RequestListener][] = [
  ['fast path', (f) => createRequestListener(f)],
  ['Express routes', (f) => f.app],
];

describe.each(PATHS.flatMap(([via, make]) => testDatabaseNames().map((kind) => [kind, via, make] as const)))('key API hot path on %s, %s', (kind, _via, make) => {
  let f: AuthFixture;
  let app: RequestListener;
  let alice: { id: string; wrappedPasswordKey: string };
  let token: string;

  beforeAll(async () => {
    f = await createAuthFixture(kind);
    app = make(f);
    ({ token, ...alice } = await signedInUser(f, 'alice@example.com'));
  });
  afterAll(async () => {
    await f?.cleanupAll();
  });

  test('50 concurrent unwraps: each 200 has its own success audit row, written in fewer transactions than requests', async () => {
    const batches: number[] = [];
    const hot = f.store.hot;
    const insertAudit = hot.insertAudit;
    hot.insertAudit = (rows) => {
      batches.push(rows.length);
      return insertAudit(rows);
    };
    try {
      const ids = Array.from({ length: 50 }, (_, i) => `hot-${kind}-${i}`);
      const responses = await Promise.all(
        ids.map((id) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', id).send({ wrappedPasswordKey: alice.wrappedPasswordKey })),
      );
      for (const r of responses) {
        expect(r.status).toBe(200);
        expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
        // No ETag: it would be a hash of the plaintext key.
        expect(r.headers.etag).toBeUndefined();
        expect(Buffer.from(r.body.passwordKey, 'base64url')).toHaveLength(32);
      }
      const rows = await f.store.repos.audit.recent(500, { action: 'password-key.unwrap', outcome: 'success' });
      for (const id of ids) expect(rows.filter((e) => e.requestId === id)).toHaveLength(1);
      expect(batches.reduce((a, b) => a + b, 0)).toBe(50);
      expect(batches.length).toBeLessThan(50);
    } finally {
      hot.insertAudit = insertAudit;
    }
  });

  test('the row is committed before the response: read back through another connection right after each 200', async () => {
    const r = await request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `seq-${kind}`).send({ wrappedPasswordKey: alice.wrappedPasswordKey });
    expect(r.status).toBe(200);
    // A transaction's view on PostgreSQL/MariaDB is another pooled connection; on SQLite the
    // separate read-only connection sees only committed rows.
    const rows = await f.store.repos.audit.recent(10, { action: 'password-key.unwrap', outcome: 'success' });
    expect(rows.some((e) => e.requestId === `seq-${kind}`)).toBe(true);
  });
});

/** Makes the audit batch fail the way a dying database does, then checks no key got out. */
describe.each(PATHS)('a failed audit batch fails every request in it: 503, no key (%s)', (_via, make) => {
  test('sqlite: another process holds the write lock past the acquire timeout', async () => {
    const f = await createAuthFixture('sqlite', { CS_DB_ACQUIRE_TIMEOUT_MS: '300' });
    const app = make(f);
    try {
      const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      const token = await signInForToken(f, { nameId: 'alice@example.com' });
      const path = (f.config.database as { path: string }).path;
      const other = new Database(path);
      other.exec('BEGIN IMMEDIATE');
      let responses: request.Response[];
      try {
        responses = await Promise.all(
          Array.from({ length: 5 }, (_, i) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `locked-${i}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey })),
        );
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
      for (const r of responses) {
        expect(r.status).toBe(503);
        expect(r.headers['content-type']).toMatch(/application\/problem\+json/);
        expect(r.body.passwordKey).toBeUndefined();
        expect(JSON.stringify(r.body)).not.toMatch(/at .*\.js/);
      }
      const rows = await f.store.repos.audit.recent(100, { action: 'password-key.unwrap', outcome: 'success' });
      expect(rows.filter((e) => e.requestId?.startsWith('locked-'))).toHaveLength(0);
      // The lock gone, the next request succeeds.
      const ok = await request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey });
      expect(ok.status).toBe(200);
    } finally {
      await f.cleanupAll();
    }
  });

  test('postgres: the connection writing the batch is killed mid-insert', async () => {
    const f = await createAuthFixture('postgres');
    const app = make(f);
    const admin = new Client({ connectionString: f.db.url });
    await admin.connect();
    try {
      const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      const token = await signInForToken(f, { nameId: 'alice@example.com' });
      // The server process of whichever connection inserts an unwrap's success row ends itself.
      await admin.query(`CREATE FUNCTION p1_kill_writer() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.action = 'password-key.unwrap' AND NEW.outcome = 'success' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF; RETURN NEW; END $$`);
      await admin.query('CREATE TRIGGER p1_kill_writer BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION p1_kill_writer()');
      const responses = await Promise.all(
        Array.from({ length: 5 }, (_, i) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `killed-${i}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey })),
      );
      for (const r of responses) {
        expect(r.status).toBe(503);
        expect(r.headers['retry-after']).toBeDefined();
        expect(r.body.passwordKey).toBeUndefined();
      }
      await admin.query('DROP TRIGGER p1_kill_writer ON audit_events');
      const rows = await f.store.repos.audit.recent(100, { action: 'password-key.unwrap', outcome: 'success' });
      expect(rows.filter((e) => e.requestId?.startsWith('killed-'))).toHaveLength(0);
      // The pool replaces the dead connection: the next request succeeds and is recorded.
      const ok = await request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', 'after-kill').send({ wrappedPasswordKey: a.keys.wrappedPasswordKey });
      expect(ok.status).toBe(200);
      expect((await f.store.repos.audit.recent(10, { action: 'password-key.unwrap', outcome: 'success' })).some((e) => e.requestId === 'after-kill')).toBe(true);
    } finally {
      await admin.end();
      await f.cleanupAll();
    }
  });
  test('mariadb: the connections writing the batches are killed while they wait for the table', async () => {
    const f = await createAuthFixture('mariadb');
    const app = make(f);
    // One session holds the table; another finds the waiting INSERTs and kills them.
    const holder = await createConnection(f.db.url);
    const killer = await createConnection(f.db.url);
    try {
      const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      const token = await signInForToken(f, { nameId: 'alice@example.com' });
      await holder.query('LOCK TABLES audit_events WRITE');
      let settled = false;
      const all = Promise.all(
        Array.from({ length: 5 }, (_, i) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).set('X-Request-Id', `killed-${i}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey })),
      ).finally(() => (settled = true));
      let kills = 0;
      while (!settled) {
        const [rows] = await killer.query("SELECT id FROM information_schema.processlist WHERE info LIKE 'INSERT INTO audit_events%'");
        for (const r of rows as { id: number }[]) {
          await killer.query(`KILL ${Number(r.id)}`).catch(() => undefined);
          kills++;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await holder.query('UNLOCK TABLES');
      const responses = await all;
      expect(kills).toBeGreaterThan(0);
      for (const r of responses) {
        expect(r.status).toBe(503);
        expect(r.headers['retry-after']).toBeDefined();
        expect(r.body.passwordKey).toBeUndefined();
      }
      const rows = await f.store.repos.audit.recent(100, { action: 'password-key.unwrap', outcome: 'success' });
      expect(rows.filter((e) => e.requestId?.startsWith('killed-'))).toHaveLength(0);
      const ok = await request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey });
      expect(ok.status).toBe(200);
    } finally {
      await holder.end();
      await killer.end();
      await f.cleanupAll();
    }
  });
});

/**
 * Nothing about the user is cached (only a token's signature check is): the active flag is read
 * from the database on every call, so the bound for a deactivation is zero — the first request
 * that starts after the SCIM response is refused, on every instance.
 */
describe('deactivation through one instance refuses the next request on another (one PostgreSQL database)', () => {
  test('bound: the next request', async () => {
    const f = await createAuthFixture('postgres');
    const other = await boot(f.config, pino({ level: 'silent' }), { migrate: false });
    try {
      // The other instance as `serve` runs it: the fast path ahead of its Express app.
      const otherApp = createRequestListener(other);
      const a = await f.keys.provisionUser({ userName: 'alice@example.com' }, { actor: 'test' });
      const token = await signInForToken(f, { nameId: 'alice@example.com' });
      const unwrap = (app: RequestListener) => request(app).post(UNWRAP).set('Authorization', `Bearer ${token}`).send({ wrappedPasswordKey: a.keys.wrappedPasswordKey });
      // Both instances have verified (and cached) the token.
      expect((await unwrap(f.app)).status).toBe(200);
      expect((await unwrap(otherApp)).status).toBe(200);

      const scim = new TokenService(ownWrites(f.store, (m) => new ApiTokenRepository(m)));
      const { token: scimToken } = await scim.create({ name: 'idp', scope: 'scim' });
      const patch = await request(f.app)
        .patch(`/scim/v2/Users/${a.id}`)
        .set('Authorization', `Bearer ${scimToken}`)
        .set('Content-Type', 'application/scim+json')
        // Microsoft Entra's documented disable-user request, verbatim (idp-bodies.ts cites the page).
        .send(ENTRA_DISABLE_USER);
      expect(patch.status).toBe(200);

      const refused = await unwrap(otherApp);
      expect(refused.status).toBe(403);
      expect(refused.body.passwordKey).toBeUndefined();
      expect((await unwrap(f.app)).status).toBe(403);
      const bundle = await request(otherApp).get('/api/keys/me').set('Authorization', `Bearer ${token}`);
      expect(bundle.status).toBe(403);
    } finally {
      await other.close();
      await f.cleanupAll();
    }
  });
});
