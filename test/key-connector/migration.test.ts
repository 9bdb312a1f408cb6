import { randomBytes, randomUUID } from 'node:crypto';
import { testDatabaseNames } from '../support/databases';
import { createTestContext, type TestContext } from '../support/context';
import { binding } from '../../server/keys/binding';
import { KeyConnectorService } from '../../key-connector/service';
import { KeyConnectorRepository } from '../../key-connector/repository';
import { KeyConnectorUserKeyEntity } from '../../entities';

/** Migration 1764610000000 (key_connector_user_keys) up, down and up again; the stored binding. */
describe.each(testDatabaseNames())('Key Connector storage (%s)', (kind) => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext(kind);
  });
  afterAll(async () => ctx?.cleanup());

  test('a stored key opens only with purpose key-connector-user-key and its own sub (docs/wire-formats.md)', async () => {
    const service = new KeyConnectorService(ctx.store, ctx.kms, ctx.config.kms.kekUri);
    const sub = randomUUID();
    const key = randomBytes(32);
    await service.create(sub, Buffer.from(key), { actor: 'test' });
    const row = (await ctx.store.dataSource.manager.findOneBy(KeyConnectorUserKeyEntity, { sub }))!;
    expect(row.kekUri).toBe(ctx.config.kms.kekUri);
    expect((await ctx.kms.unwrapStored(row.wrappedKey, { purpose: 'key-connector-user-key', user: sub })).equals(key)).toBe(true);
    await expect(ctx.kms.unwrapStored(row.wrappedKey, binding.keyConnectorUserKey(randomUUID()))).rejects.toMatchObject({ code: 'unwrap_refused' });
    await expect(ctx.kms.unwrapStored(row.wrappedKey, binding.passwordKey(sub))).rejects.toMatchObject({ code: 'unwrap_refused' });
  });

  test('down removes the table, up restores it', async () => {
    const ds = ctx.store.dataSource;
    const qr = ds.createQueryRunner();
    try {
      expect(await qr.hasTable('key_connector_user_keys')).toBe(true);
      for (let i = 0; i < 20 && (await qr.hasTable('key_connector_user_keys')); i++) await ds.undoLastMigration({ transaction: 'each' });
      expect(await qr.hasTable('key_connector_user_keys')).toBe(false);
      await ds.runMigrations({ transaction: 'each' });
      expect(await qr.hasTable('key_connector_user_keys')).toBe(true);
    } finally {
      await qr.release();
    }
  });
});

describe('Key Connector import resume check', () => {
  test('finds stored subs among more than a statement\'s parameter limit (chunked IN lists)', async () => {
    const ctx = await createTestContext('postgres');
    try {
      const service = new KeyConnectorService(ctx.store, ctx.kms, ctx.config.kms.kekUri);
      const stored = [randomUUID(), randomUUID()];
      for (const sub of stored) await service.create(sub, randomBytes(32), { actor: 'test' });
      const many = [...Array.from({ length: 70_000 }, () => randomUUID()), ...stored];
      expect([...(await new KeyConnectorRepository(ctx.store.repos.manager).existing(many))].sort()).toEqual([...stored].sort());
    } finally {
      await ctx.cleanup();
    }
  });
});
