import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { verifyAuditChain } from '../../server/audit/verify';
import { sealAuditHead } from '../../server/audit/seal';
import { pruneAudit } from '../../server/audit/prune';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';
import { storedRow } from '../../server/audit/chain-sql';

/**
 * Each tampering a database administrator could do, done with raw SQL on a real database; verify
 * must report exactly the first broken link. Seals and prune checkpoints are made by the real
 * (local) KMS adapter; the "attacker" has the database only.
 */
describe.each(testDatabaseNames())('audit verify against tampering (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  const p = (n: number) => (kind === 'postgres' ? `$${n}` : '?');
  const q = (sql: string, params: unknown[] = []) => ctx.store.dataSource.query(sql, params) as Promise<Record<string, unknown>[]>;
  const verify = (since?: string) => verifyAuditChain(ctx.store.dataSource, ctx.kms, { since, pageSize: 4 });
  const problem = async () => (await verify()).problem;
  const seal = () => sealAuditHead(ctx.store, ctx.kms, ctx.config.kms.kekUri);
  const hashAt = async (seq: number) => String((await q(`SELECT hash FROM audit_events WHERE seq = ${p(1)}`, [seq]))[0].hash);
  const setSeq = (from: number, to: number) => q(`UPDATE audit_events SET seq = ${p(1)} WHERE seq = ${p(2)}`, [to, from]);
  /** The hash an attacker computes for a stored row (the algorithm is public). */
  const rehash = (r: Record<string, unknown>, prevHash: string) => chainHash({ ...storedRow(r), seq: String(r.seq), prevHash });
  const ROW_COLUMNS = 'seq, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail, prev_hash, hash';

  /** A row the attacker makes up, hashed correctly over `prevHash`. */
  async function insertForged(seq: number, prevHash: string): Promise<void> {
    const r = { seq, at: new Date().toISOString(), request_id: null, actor: 'user:mallory', action: 'password-key.unwrap', target_type: null, target_id: null, kek_uri: null, outcome: 'success', detail: null };
    await q(`INSERT INTO audit_events (${ROW_COLUMNS}) VALUES (${Array.from({ length: 12 }, (_, i) => p(i + 1)).join(', ')})`, [...Object.values(r), prevHash, rehash(r, prevHash)]);
  }

  /** `n` rows from the writers the app uses (stand-alone, group commit, transaction). */
  async function write(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      if (i % 3 === 0) await ctx.store.audit({ actor: `user:${i}`, action: 'password-key.unwrap', outcome: 'refused', requestId: `r${i}` });
      else if (i % 3 === 1) await ctx.store.auditCommitted({ actor: `user:${i}`, action: 'password-key.unwrap', outcome: 'success', targetType: 'user', targetId: `u${i}` });
      else await ctx.store.transaction((tx) => tx.audit.append({ actor: 'scim', action: 'user.update', outcome: 'success', detail: { i } }));
    }
  }

  /** 8 rows, a seal at seq 8, 4 more rows: seq 1..12. */
  beforeEach(async () => {
    await q('DELETE FROM audit_events');
    await q('DELETE FROM audit_seals');
    await q(`UPDATE audit_chain_head SET seq = 0, hash = ${p(1)}`, [GENESIS_HASH]);
    await write(8);
    expect(await seal()).toMatchObject({ sealed: true, seq: 8n });
    await write(4);
  });

  test('an untouched chain verifies, seals included; --since starts mid-chain', async () => {
    expect(await verify()).toMatchObject({ ok: true, rows: 12, seals: 1, from: 1n, to: 12n });
    expect(await verify('6')).toMatchObject({ ok: true, rows: 7, seals: 1, from: 6n, to: 12n });
    expect(await verify('9')).toMatchObject({ ok: true, rows: 4, seals: 0, from: 9n });
  });

  test.each([
    ['modified row', `UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 4`, 'seq 4: hash mismatch (row modified)'],
    ['deleted row', 'DELETE FROM audit_events WHERE seq = 5', 'gap after seq 4: next row is seq 6 (rows deleted)'],
    ['truncated tail, head left alone', 'DELETE FROM audit_events WHERE seq > 10', 'the chain head is at seq 12 but the last row is seq 10 (tail truncated)'],
  ])('%s', async (_name, sql, line) => {
    await q(sql);
    expect(await problem()).toBe(line);
  });

  test('inserted row, later rows renumbered, its own hash computed correctly', async () => {
    await q('UPDATE audit_events SET seq = seq + 1000000 WHERE seq > 6');
    await q('UPDATE audit_events SET seq = seq - 999999 WHERE seq > 1000000');
    await insertForged(7, await hashAt(6));
    expect(await problem()).toBe('seq 8: link mismatch (prev_hash is not the hash of seq 7: row inserted, or rows rewritten)');
  });

  test('inserted row appended after the head, chained correctly', async () => {
    await insertForged(13, await hashAt(12));
    expect(await problem()).toBe('seq 13: beyond the chain head at seq 12 (row inserted)');
  });

  test('reordered rows', async () => {
    await setSeq(3, 1000);
    await setSeq(4, 3);
    await setSeq(1000, 4);
    expect(await problem()).toBe('seq 3: rows reordered (the rows at seq 3 and 4 are swapped)');
  });

  test('truncated tail past the last seal, head rewound to match', async () => {
    await q('DELETE FROM audit_events WHERE seq > 6');
    await q(`UPDATE audit_chain_head SET seq = 6, hash = ${p(1)}`, [await hashAt(6)]);
    expect(await problem()).toBe('seal at seq 8: no row with that seq, the chain ends at seq 6 (tail truncated)');
  });

  test('a row edited and the whole chain recomputed by the attacker: the KMS seal catches it', async () => {
    await q(`UPDATE audit_events SET outcome = 'failure' WHERE seq = 2`);
    // Everything a DBA can recompute: every hash and link from seq 2 on, and the head.
    let prevHash = await hashAt(1);
    for (const r of await q(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq >= 2 ORDER BY seq`)) {
      const hash = rehash(r, prevHash);
      await q(`UPDATE audit_events SET prev_hash = ${p(1)}, hash = ${p(2)} WHERE seq = ${p(3)}`, [prevHash, hash, Number(r.seq)]);
      prevHash = hash;
    }
    await q(`UPDATE audit_chain_head SET hash = ${p(1)}`, [prevHash]);
    expect(await problem()).toBe('seq 8: hash differs from the KMS seal at seq 8 (rows rewritten)');
  });

  test('forged seal: the seal row edited to vouch for another position', async () => {
    await q(`UPDATE audit_seals SET seq = 6, hash = ${p(1)}`, [await hashAt(6)]);
    expect(await problem()).toBe('seal at seq 6: does not verify under the KMS (forged or edited)');
  });

  test('forged seal: the attacker rewrites the chain and moves the seal\'s hash along', async () => {
    await q(`UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 8`);
    const r = (await q(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq = 8`))[0];
    const hash = rehash(r, String(r.prev_hash));
    await q(`UPDATE audit_events SET hash = ${p(1)} WHERE seq = 8`, [hash]);
    await q(`UPDATE audit_events SET prev_hash = ${p(1)} WHERE seq = 9`, [hash]);
    await q(`UPDATE audit_seals SET hash = ${p(1)}`, [hash]);
    expect(await problem()).toBe('seal at seq 8: does not verify under the KMS (forged or edited)');
  });

  test('a broken chain is never sealed', async () => {
    await q(`UPDATE audit_events SET detail = '{"i":99}' WHERE seq = 11`);
    expect(await seal()).toMatchObject({ sealed: false, reason: 'not sealed, the chain is broken: seq 11: hash mismatch (row modified)' });
    expect((await q(`SELECT seq FROM audit_seals`)).map((r) => Number(r.seq))).toEqual([8]);
  });

  test('sealing twice at the same head stores one seal', async () => {
    expect(await seal()).toMatchObject({ sealed: true, seq: 12n });
    expect(await seal()).toMatchObject({ sealed: false, reason: 'already sealed at seq 12' });
    expect(await verify()).toMatchObject({ ok: true, seals: 2 });
  });

  describe('prune', () => {
    /** Rows 1..12 exist; prune everything before row 6's time. */
    async function pruneBeforeSeq6() {
      const at = String((await q(`SELECT at FROM audit_events WHERE seq = 6`))[0].at);
      return pruneAudit(ctx.store, ctx.kms, ctx.config.kms.kekUri, at);
    }

    beforeEach(async () => {
      // A pause between rows: each has its own time, so a cut at row 6's time keeps 6 and later.
      await q('DELETE FROM audit_events');
      await q('DELETE FROM audit_seals');
      await q(`UPDATE audit_chain_head SET seq = 0, hash = ${p(1)}`, [GENESIS_HASH]);
      for (let i = 0; i < 12; i++) {
        await write(1);
        await new Promise((r) => setTimeout(r, 3));
        if (i === 7) await seal();
      }
    });

    test('deletes the rows before the time behind a sealed checkpoint; the rest still verifies', async () => {
      const r = await pruneBeforeSeq6();
      expect(r).toEqual({ deleted: 5, checkpoint: 5n });
      const seqs = (await q('SELECT seq FROM audit_events ORDER BY seq')).map((x) => Number(x.seq));
      // 6..12, and the prune's own audit row.
      expect(seqs).toEqual([6, 7, 8, 9, 10, 11, 12, 13]);
      expect(await verify()).toMatchObject({ ok: true, rows: 8, seals: 1, from: 6n, to: 13n, checkpoint: 5n });
      expect(await pruneBeforeSeq6()).toMatchObject({ deleted: 0, checkpoint: 5n });
    });

    test('rows before the checkpoint reappearing are reported', async () => {
      const [old] = await q(`SELECT ${ROW_COLUMNS} FROM audit_events WHERE seq = 3`);
      await pruneBeforeSeq6();
      await q(`INSERT INTO audit_events (${ROW_COLUMNS}) VALUES (${Array.from({ length: 12 }, (_, i) => p(i + 1)).join(', ')})`, Object.values(old));
      expect(await problem()).toBe('seq 3: row at or before the prune checkpoint at seq 5 (rows reappeared or inserted)');
    });

    test('an edited checkpoint is reported', async () => {
      await pruneBeforeSeq6();
      await q(`UPDATE audit_seals SET seq = 4 WHERE kind = 'checkpoint'`);
      expect(await problem()).toBe('checkpoint at seq 4: does not verify under the KMS (forged or edited)');
    });

    test('a deleted checkpoint is reported as the rows it stood for', async () => {
      await pruneBeforeSeq6();
      await q(`DELETE FROM audit_seals WHERE kind = 'checkpoint'`);
      expect(await problem()).toBe('gap after seq 0: next row is seq 6 (rows deleted)');
    });

    test('a seal passed off as a checkpoint (rows deleted up to it) is refused by the KMS', async () => {
      await q('DELETE FROM audit_events WHERE seq <= 8');
      await q(`UPDATE audit_seals SET kind = 'checkpoint' WHERE seq = 8`);
      expect(await problem()).toBe('checkpoint at seq 8: does not verify under the KMS (forged or edited)');
    });

    test('a broken chain is not pruned, and nothing is deleted', async () => {
      await q(`UPDATE audit_events SET actor = 'user:mallory' WHERE seq = 2`);
      expect(await pruneBeforeSeq6()).toEqual({ deleted: 0, reason: 'not pruned, the chain is broken: seq 2: hash mismatch (row modified)' });
      expect(await q('SELECT seq FROM audit_events')).toHaveLength(12);
      expect(await q(`SELECT seq FROM audit_seals WHERE kind = 'checkpoint'`)).toHaveLength(0);
    });
  });
});
