import { Table, TableColumn, TableIndex, type MigrationInterface, type QueryRunner } from 'typeorm';
import { strCol, textCol, timeCol } from './table-columns';
import { chainHash, GENESIS_HASH } from '../../server/audit/chain-hash';

const BACKFILL_PAGE = 1000;

/**
 * Tamper-evident audit (issue 13): `seq`, `prev_hash`, `hash` on audit_events, the single-row chain
 * head and the KMS seals. Existing rows are chained in id order (their insertion order), so the
 * whole history verifies from seq 1.
 */
export class AuditChain1764700000000 implements MigrationInterface {
  name = 'AuditChain1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.addColumns('audit_events', [
      new TableColumn({ name: 'seq', type: 'bigint', isNullable: true }),
      new TableColumn(strCol('prev_hash', 64, true)),
      new TableColumn(strCol('hash', 64, true)),
    ]);
    await q.createTable(
      new Table({
        name: 'audit_chain_head',
        columns: [{ name: 'id', type: 'integer', isPrimary: true }, { name: 'seq', type: 'bigint' }, strCol('hash', 64), timeCol('updated_at')],
      }),
    );
    await q.createTable(
      new Table({
        name: 'audit_seals',
        columns: [
          { name: 'id', type: 'integer', isPrimary: true, isGenerated: true, generationStrategy: 'increment' },
          strCol('kind', 16), { name: 'seq', type: 'bigint' }, strCol('hash', 64), textCol('envelope'), timeCol('sealed_at'),
        ],
        // One seal per head position and kind: replicas sealing the same head at once insert one row.
        indices: [{ name: 'ux_audit_seals_kind_seq', columnNames: ['kind', 'seq'], isUnique: true }],
      }),
    );
    const { seq, hash } = await this.backfill(q);
    await q.query(`INSERT INTO audit_chain_head (id, seq, hash, updated_at) VALUES (1, ${seq}, '${hash}', '${new Date().toISOString()}')`);
    await q.changeColumn('audit_events', 'seq', new TableColumn({ name: 'seq', type: 'bigint', isNullable: false }));
    await q.createIndex('audit_events', new TableIndex({ name: 'ux_audit_events_seq', columnNames: ['seq'], isUnique: true }));
  }

  /**
   * Chains the rows already stored, in id order, a page at a time: one set-based UPDATE per page
   * (not one round trip per row), so the table lock of the upgrade is held for as short as possible.
   * The values are inlined: integers and hex digests computed here, never stored text.
   */
  private async backfill(q: QueryRunner): Promise<{ seq: number; hash: string }> {
    const pg = q.connection.options.type === 'postgres';
    const p = (n: number) => (pg ? `$${n}` : '?');
    let seq = 0;
    let hash = GENESIS_HASH;
    let lastId = 0;
    for (;;) {
      const rows: Record<string, unknown>[] = await q.query(
        `SELECT id, at, request_id, actor, action, target_type, target_id, kek_uri, outcome, detail FROM audit_events WHERE id > ${p(1)} ORDER BY id LIMIT ${BACKFILL_PAGE}`,
        [lastId],
      );
      if (rows.length === 0) return { seq, hash };
      const links: { id: number; seq: number; prevHash: string; hash: string }[] = [];
      for (const r of rows) {
        seq += 1;
        const prevHash = hash;
        const s = (k: string) => (r[k] == null ? null : String(r[k]));
        hash = chainHash({
          seq: String(seq), at: String(r.at), requestId: s('request_id'), actor: String(r.actor), action: String(r.action),
          targetType: s('target_type'), targetId: s('target_id'), kekUri: s('kek_uri'), outcome: String(r.outcome), detail: s('detail'), prevHash,
        });
        lastId = Number(r.id);
        links.push({ id: lastId, seq, prevHash, hash });
      }
      const when = (f: (l: (typeof links)[number]) => string) => `CASE id ${links.map((l) => `WHEN ${l.id} THEN ${f(l)}`).join(' ')} END`;
      await q.query(
        `UPDATE audit_events SET seq = ${when((l) => String(l.seq))}, prev_hash = ${when((l) => `'${l.prevHash}'`)}, hash = ${when((l) => `'${l.hash}'`)} WHERE id IN (${links.map((l) => l.id).join(', ')})`,
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.dropIndex('audit_events', 'ux_audit_events_seq');
    await q.dropColumns('audit_events', ['seq', 'prev_hash', 'hash']);
    await q.dropTable('audit_seals');
    await q.dropTable('audit_chain_head');
  }
}
