import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { register, type Gauge } from 'prom-client';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { runCli as run } from '../fault/cli-process';
import { verifyAuditChain, type VerifyOptions } from '../../server/audit/verify';
import { sealAuditHead, startAuditSealer } from '../../server/audit/seal';
import { GENESIS_HASH } from '../../server/audit/chain-hash';
import { auditSeal, auditVerify } from '../../server/cli/audit-integrity';

jest.setTimeout(120_000);

/** The cluster tests' loader: it also resolves the KMS adapters' ESM-style imports (buildRegistry). */
const runCli = (args: string[], env: Record<string, string>) => run(args, env, 60_000, join(__dirname, '..', 'cluster', 'ts-register.js'));

/**
 * Review findings F4 and F1 (issue 13 follow-up): the sealer trusts only KMS-authentic seals, a
 * seal's age is bound into its associated data, a tail deleted with its seals shows as "unproven",
 * and anchors recorded outside the database must still be in the chain. The attacker has the
 * database (raw SQL) only; seals are made by the real local KMS adapter.
 */
describe.each(testDatabaseNames())('audit seal hardening (%s)', (kind) => {
  let ctx: TestContext;
  const masterKey = randomBytes(32).toString('base64');
  beforeAll(async () => {
    ctx = await createTestContext(kind, { CS_LOCAL_MASTER_KEY: masterKey });
  });
  afterAll(async () => ctx?.cleanup());

  const p = (n: number) => (kind === 'postgres' ? `$${n}` : '?');
  const q = (sql: string, params: unknown[] = []) => ctx.store.dataSource.query(sql, params) as Promise<Record<string, unknown>[]>;
  const verify = (o: VerifyOptions = {}) => verifyAuditChain(ctx.store.dataSource, ctx.kms, { pageSize: 4, ...o });
  const hashAt = async (seq: number) => String((await q(`SELECT hash FROM audit_events WHERE seq = ${p(1)}`, [seq]))[0].hash);
  const sealSeqs = async () => (await q(`SELECT seq FROM audit_seals WHERE kind = 'seal' ORDER BY seq`)).map((r) => Number(r.seq));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const write = async (n: number) => {
    for (let i = 0; i < n; i++) await ctx.store.auditCommitted({ actor: `user:${i}`, action: 'password-key.unwrap', outcome: 'success' });
  };
  /** What a DBA does to hide the tail: rows and seals after `seq` deleted, the head moved back. */
  const cutTailAfter = async (seq: number) => {
    await q(`DELETE FROM audit_seals WHERE seq > ${p(1)}`, [seq]);
    await q(`DELETE FROM audit_events WHERE seq > ${p(1)}`, [seq]);
    await q(`UPDATE audit_chain_head SET seq = ${p(1)}, hash = ${p(2)}`, [seq, await hashAt(seq)]);
  };
  const forgeSeal = (seq: number, sealedAt: string) =>
    q(`INSERT INTO audit_seals (kind, seq, hash, envelope, sealed_at) VALUES ('seal', ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})`, [seq, 'f'.repeat(64), 'cs1.bogus', sealedAt]);

  beforeEach(async () => {
    await q('DELETE FROM audit_events');
    await q('DELETE FROM audit_seals');
    await q(`UPDATE audit_chain_head SET seq = 0, hash = ${p(1)}`, [GENESIS_HASH]);
  });

  describe('F4: the sealer decides from authentic seals only', () => {
    test('a forged seal row beyond the head (sealed_at in the future) is warned about and ignored', async () => {
      await write(3);
      expect(await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri)).toMatchObject({ sealed: true, seq: 3n });
      await forgeSeal(999999999, '2999-01-01T00:00:00.000Z');
      await write(3);
      const warnings: string[] = [];
      const r = await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri, { warn: (_f, m) => warnings.push(m) });
      expect(r).toMatchObject({ sealed: true, seq: 6n });
      expect(warnings).toEqual(['audit seal row ignored: sealed_at is in the future or not a time (forged or edited)']);
    });

    test('a forged seal row at the head with a plausible time does not verify: warned about, and sealing refused loudly', async () => {
      await write(4);
      await forgeSeal(4, new Date().toISOString());
      const warnings: string[] = [];
      const r = await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri, { warn: (_f, m) => warnings.push(m) });
      // Not "already sealed at seq 4" (the forged row's claim): the chain is checked from the start and the forgery named.
      expect(r).toMatchObject({ sealed: false, seq: 4n, reason: 'not sealed, the chain is broken: seal at seq 4: does not verify under the KMS (forged or edited)' });
      expect(warnings).toEqual(['audit seal row ignored: it does not verify under the KMS (forged or edited)']);
      expect((await verify()).problem).toBe('seal at seq 4: does not verify under the KMS (forged or edited)');
    });

    test('a rewound head (an authentic seal beyond it) is refused and reported as an error', async () => {
      await write(5);
      expect(await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri)).toMatchObject({ sealed: true, seq: 5n });
      await q(`DELETE FROM audit_events WHERE seq > 3`);
      await q(`UPDATE audit_chain_head SET seq = 3, hash = ${p(1)}`, [await hashAt(3)]);
      await write(4); // seq 4..7 again, new hashes
      await q(`DELETE FROM audit_events WHERE seq > 4`);
      await q(`UPDATE audit_chain_head SET seq = 4, hash = ${p(1)}`, [await hashAt(4)]);
      const r = await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      expect(r).toMatchObject({ sealed: false, reason: 'not sealed, the chain head was rewound: head at seq 4 but the KMS sealed seq 5 (rows deleted)' });
      expect(await sealSeqs()).toEqual([5]);

      const errors: string[] = [];
      const sealer = startAuditSealer(ctx.store, ctx.kms, {
        intervalS: 1,
        kekUri: ctx.config.kms.kekUri,
        warn: () => undefined,
        error: (_f, m) => errors.push(m),
        takeLease: async () => true,
        releaseLease: async () => undefined,
      });
      try {
        for (let i = 0; i < 100 && errors.length === 0; i++) await sleep(50);
      } finally {
        await sealer.stop();
      }
      expect(errors[0]).toBe(`audit seal: ${r.reason}`);
      expect(await sealSeqs()).toEqual([5]);
    });

    test('the periodic sealer is not stopped by a forged recent seal row; it exports the seal age and warns when it grows old', async () => {
      await write(2);
      await forgeSeal(999, new Date().toISOString()); // "another process sealed seq 999 just now"
      const warnings: string[] = [];
      const opts = { intervalS: 1, kekUri: ctx.config.kms.kekUri, warn: (_f: Record<string, unknown>, m: string) => warnings.push(m), takeLease: async () => true, releaseLease: async () => undefined };
      let sealer = startAuditSealer(ctx.store, ctx.kms, opts);
      try {
        for (let i = 0; i < 100 && !(await sealSeqs()).includes(2); i++) await sleep(50);
      } finally {
        await sealer.stop();
      }
      expect(await sealSeqs()).toEqual([2, 999]);
      expect(warnings).toContain('audit seal row ignored: it does not verify under the KMS (forged or edited)');
      // The periodic sealer announces its seal: the audit.sealed event, seq 3.
      const [ev] = await q(`SELECT seq, actor, detail FROM audit_events WHERE action = 'audit.sealed'`);
      expect(Number(ev.seq)).toBe(3);
      expect(JSON.parse(String(ev.detail))).toEqual({ seq: '2', hash: await hashAt(2) });

      // Sealing now fails (a row after the seal edited): the newest authentic seal ages past 2 × 1 s.
      await q(`UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 3`);
      warnings.length = 0;
      sealer = startAuditSealer(ctx.store, ctx.kms, opts);
      try {
        for (let i = 0; i < 200 && !warnings.some((w) => w.includes('older than twice')); i++) await sleep(50);
      } finally {
        await sealer.stop();
      }
      expect(warnings).toContain('audit seal: the newest authentic seal is older than twice the interval (2 s)');
      expect(warnings).toContain('audit seal: not sealed, the chain is broken: seq 3: hash mismatch (row modified)');
      const age = (await (register.getSingleMetric('crypto_server_audit_last_seal_age_seconds') as Gauge).get()).values[0].value;
      expect(age).toBeGreaterThan(2);
    });
  });

  describe('F1: a deleted tail does not verify green', () => {
    test('sealed_at is bound into the seal: editing it makes the seal a forgery', async () => {
      await write(3);
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      expect(await verify()).toMatchObject({ ok: true, seals: 1 });
      await q(`UPDATE audit_seals SET sealed_at = ${p(1)}`, [new Date(Date.now() + 1000).toISOString()]);
      expect((await verify()).problem).toBe('seal at seq 3: does not verify under the KMS (forged or edited)');
    });

    test('tail and newer seals deleted, head rewound: unproven once the remaining seal is older than the bound', async () => {
      await write(5);
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      await sleep(1100);
      await write(5);
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      expect(await verify({ maxSealAgeS: 1, sealIntervalS: 1 })).toMatchObject({ ok: true, rows: 10, seals: 2 });
      await cutTailAfter(5);
      expect(await verify()).toMatchObject({ ok: true, rows: 5 }); // without the bound: what the reviewer saw
      const r = await verify({ maxSealAgeS: 1, sealIntervalS: 1 });
      expect(r).toMatchObject({ ok: false, unproven: true, rows: 5, seals: 1 });
      expect(r.problem).toMatch(/^unproven tail: newest seal at seq 5 is \d+ s old; sealing interval 1 s$/);
    });

    test('everything deleted is fine only when empty; rows with no seal older than the bound are unproven', async () => {
      expect(await verify({ maxSealAgeS: 1 })).toMatchObject({ ok: true, rows: 0 });
      await write(2);
      expect(await verify({ maxSealAgeS: 60 })).toMatchObject({ ok: true, rows: 2 });
      await sleep(1100);
      const r = await verify({ maxSealAgeS: 1, sealIntervalS: 300 });
      expect(r).toMatchObject({ ok: false, unproven: true });
      expect(r.problem).toMatch(/^unproven tail: no seal, but the row at seq 1 is \d+ s old; sealing interval 300 s$/);
      // --since: seals before the start are not looked at, so "no seal" is not claimed.
      expect(await verify({ since: '2', maxSealAgeS: 1 })).toMatchObject({ ok: true, rows: 1 });
    });

    test('an anchor recorded outside the database catches a tail cut with its seals, and a rewritten anchored row', async () => {
      await write(3);
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri, { announce: true });
      await write(2);
      await sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri, { announce: true });
      const announced = (await q(`SELECT detail FROM audit_events WHERE action = 'audit.sealed' ORDER BY seq`)).map((r) => JSON.parse(String(r.detail)) as { seq: string; hash: string });
      expect(announced.map((a) => a.seq)).toEqual(['3', '6']);
      const anchor = { seq: BigInt(announced[1].seq), hash: announced[1].hash };
      expect(await verify({ anchors: [anchor] })).toMatchObject({ ok: true, anchors: 1 });
      expect((await verify({ anchors: [{ seq: anchor.seq, hash: 'a'.repeat(64) }] })).problem).toBe('anchor at seq 6: the row\'s hash differs from the anchor (rows rewritten)');
      await cutTailAfter(3);
      expect(await verify()).toMatchObject({ ok: true }); // the cut is invisible in the database alone
      expect((await verify({ anchors: [anchor] })).problem).toBe('anchor at seq 6: no row with that seq, the chain ends at seq 3 (tail truncated)');
    });
  });

  test('audit verify and seal commands in process: printed line and exit code for anchors and an unproven tail', async () => {
    const env = { CS_DATABASE_URL: ctx.db.url, CS_LOCAL_MASTER_KEY: masterKey, CS_LOG_LEVEL: 'silent' };
    const lines: string[] = [];
    const out = { print: (l: string) => void lines.push(l), note: () => undefined };
    await write(3);
    expect(await auditSeal(env, out)).toBe(0);
    expect(lines.pop()).toMatch(/^sealed the audit chain at seq 3 /);
    const [ev] = await q(`SELECT seq, hash FROM audit_events WHERE action = 'audit.sealed'`);
    const anchor = { seq: BigInt(String(ev.seq)), hash: String(ev.hash) };
    expect(await auditVerify(env, out, { anchor: [anchor] })).toBe(0);
    expect(lines.pop()).toBe('audit chain intact: 4 rows (seq 1–4), 1 seals verified, 1 anchors found');
    await cutTailAfter(3);
    expect(await auditVerify(env, out, { anchor: [anchor] })).toBe(1);
    expect(lines.pop()).toBe('audit chain BROKEN: anchor at seq 4: no row with that seq, the chain ends at seq 3 (tail truncated)');
    expect(await auditVerify(env, out)).toBe(0); // the default bound is 2 × 300 s: a fresh seal passes
    await sleep(1100);
    expect(await auditVerify(env, out, { maxSealAge: 1 })).toBe(4);
    expect(lines.pop()).toMatch(/^audit chain UNPROVEN: unproven tail: newest seal at seq 3 is \d+ s old; sealing interval 300 s$/);
    expect(await auditVerify(env, out, { maxSealAge: 0 })).toBe(0);
  });

  test('audit verify CLI: --anchor, --anchors-file from the file sink, --max-seal-age (exit 4), bad values (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-hardening-'));
    const env = { CS_DATABASE_URL: ctx.db.url, CS_LOCAL_MASTER_KEY: masterKey, CS_LOG_LEVEL: 'silent' };
    try {
      await write(3);
      const sealed = await runCli(['audit', 'seal'], env);
      expect(sealed).toMatchObject({ code: 0, stderr: "" });
      expect(sealed.stdout).toMatch(/^sealed the audit chain at seq 3 /);
      const [ev] = await q(`SELECT seq, hash, detail FROM audit_events WHERE action = 'audit.sealed'`);
      expect(Number(ev.seq)).toBe(4);
      const detail = JSON.parse(String(ev.detail)) as { seq: string; hash: string };
      // Two forwarded lines as the file sink writes them, then a torn line.
      const file = join(dir, 'audit.jsonl');
      writeFileSync(file, `${JSON.stringify({ seq: 3, hash: await hashAt(3), action: 'password-key.unwrap' })}\n${JSON.stringify({ seq: 4, hash: String(ev.hash), action: 'audit.sealed', detail })}\n{"seq":5,"ha`);

      expect(await runCli(['audit', 'verify', '--anchor', `${detail.seq}:${detail.hash}`, '--anchors-file', file], env)).toMatchObject({ code: 0, stdout: 'audit chain intact: 4 rows (seq 1–4), 1 seals verified, 3 anchors found\n' });
      await cutTailAfter(3);
      expect(await runCli(['audit', 'verify', '--anchors-file', file], env)).toMatchObject({ code: 1, stdout: 'audit chain BROKEN: anchor at seq 4: no row with that seq, the chain ends at seq 3 (tail truncated)\n' });
      await sleep(1100);
      const unproven = await runCli(['audit', 'verify', '--max-seal-age', '1'], env);
      expect(unproven.code).toBe(4);
      expect(unproven.stdout).toMatch(/^audit chain UNPROVEN: unproven tail: newest seal at seq 3 is \d+ s old; sealing interval 300 s\n$/);

      for (const args of [['--anchor', '3:xyz'], ['--max-seal-age', 'soon'], ['--anchors-file', join(dir, 'missing.jsonl')]]) {
        const bad = await runCli(['audit', 'verify', ...args], env);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/--anchor|--max-seal-age|--anchors-file/);
        expect(bad.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
