import { createPostgres } from '../support/databases';
import { Conn, listening, oneTimeCode, provisionUser, startServe, tokenRequestBody, type ClusterProcess } from '../cluster/support';
import { loadConfig } from '../../server/config';
import { openStore } from '../../server/boot';
import { buildRegistry } from '../../kms-adapters/registry';
import { verifyAuditChain } from '../../server/audit/verify';
import { until } from './forward-support';

/**
 * Two app instances (CS_WORKERS=2: two worker processes, each with its own pool) on one
 * PostgreSQL database: 200 concurrent audited operations — key API unwraps (the group commit) and
 * refused tokens (a transaction each) — land on both; the chain verifies, seq is gapless, and the
 * periodic sealer of both processes (1 s interval, one lease) seals without clashing.
 */
jest.setTimeout(240_000);

let p: ClusterProcess | undefined;
afterAll(async () => p?.close());

test('200 concurrent audited operations from 2 processes on PostgreSQL: the chain verifies, seq gapless, seals from one process at a time', async () => {
  p = await startServe({ workers: 2, db: await createPostgres(), env: { CS_AUDIT_SEAL_INTERVAL_S: '1' } });
  if (!(await listening(p))) throw new Error(p.stderr());
  const alice = await provisionUser(p, 'chain-alice');
  const { code, verifier } = await oneTimeCode(p, alice);
  const tokenRes = await (await Conn.open(p.port)).request('POST', '/oauth/token', tokenRequestBody(code, verifier));
  const token = JSON.parse(tokenRes.body).access_token as string;
  const me = await fetch(`${p.url}/api/keys/me`, { headers: { authorization: `Bearer ${token}` } });
  const { wrappedPasswordKey } = (await me.json()) as { wrappedPasswordKey: string };

  // A fresh connection each (Connection: close): the primary hands them to both workers.
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const conn = await Conn.open(p!.port);
      const bad = i % 4 === 3;
      const r = await conn.request('POST', '/api/keys/password-key/unwrap', { type: 'application/json', text: JSON.stringify({ wrappedPasswordKey }) }, { authorization: `Bearer ${bad ? 'not-a-token' : token}`, 'x-request-id': `chain-${i}` });
      return { bad, status: r.status };
    }),
  );
  expect(results.filter((r) => !r.bad).every((r) => r.status === 200)).toBe(true);
  expect(results.filter((r) => r.bad).every((r) => r.status === 401)).toBe(true);

  const config = loadConfig(p.env);
  const store = await openStore(config);
  const kms = await buildRegistry({ ...config.kms });
  try {
    // A seal made after the requests (1 s interval), waited for rather than slept on: under load a
    // fixed wait may cover no seal at all.
    const maxSeq = async (sql: string) => Number(((await store.dataSource.query(sql)) as { n: string | null }[])[0].n ?? 0);
    const lastOurs = await maxSeq(`SELECT max(seq) AS n FROM audit_events WHERE request_id LIKE 'chain-%'`);
    await until('a seal covering the requests', async () => (await maxSeq(`SELECT max(seq) AS n FROM audit_seals WHERE kind = 'seal'`)) >= lastOurs);
    const rows = (await store.dataSource.query(`SELECT seq, request_id, outcome FROM audit_events ORDER BY seq`)) as { seq: string; request_id: string | null; outcome: string }[];
    expect(rows.map((r) => Number(r.seq))).toEqual(rows.map((_, i) => i + 1));
    const ours = rows.filter((r) => r.request_id?.startsWith('chain-'));
    expect(ours.filter((r) => r.outcome === 'success')).toHaveLength(150);
    // Junk tokens are rate-bound per client address (10 rows a minute per worker process, the rest counted later).
    const refused = ours.filter((r) => r.outcome === 'refused').length;
    expect(refused).toBeGreaterThan(0);
    expect(refused).toBeLessThanOrEqual(20);
    const seals = (await store.dataSource.query(`SELECT seq, sealed_at FROM audit_seals WHERE kind = 'seal' ORDER BY seq`)) as { seq: string; sealed_at: string }[];
    expect(seals.length).toBeGreaterThan(0);
    // One lease per interval: no two seals closer than most of an interval, whichever process made them.
    const times = seals.map((s) => Date.parse(s.sealed_at));
    for (let i = 1; i < times.length; i++) expect(times[i] - times[i - 1]).toBeGreaterThan(500);
    const v = await verifyAuditChain(store.dataSource, kms);
    expect(v).toMatchObject({ ok: true, rows: rows.length, seals: seals.length });
  } finally {
    await kms.close();
    await store.close();
  }
});
