import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rotateSigningKey } from '../../server/cli/signing-keys';
import { migrate } from '../../server/cli/migrate';
import { openStore } from '../../server/boot';
import { loadConfig } from '../../server/config';
import { SigningKeyService } from '../../server/auth/signing-keys';
import { createTestContext } from '../support/context';

describe('crypto-server signing-keys rotate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-sk-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('each rotation leaves exactly one active key, wrapped by the KMS, and is audited', async () => {
    const env = { CS_DATABASE_URL: `sqlite:${join(dir, 'db.sqlite')}`, CS_LOCAL_MASTER_KEY: randomBytes(32).toString('base64'), CS_LOG_LEVEL: 'silent' };
    await migrate(env, () => undefined, {});
    const lines: string[] = [];
    const k1 = await rotateSigningKey(env, (l) => lines.push(l));
    const k2 = await rotateSigningKey(env, (l) => lines.push(l));
    expect(k1).not.toBe(k2);
    expect(lines.join('\n')).toContain(k2);
    const store = await openStore(loadConfig(env));
    try {
      const rows: { kid: string; state: string; wrapped_private_jwk: string }[] = await store.dataSource.query('SELECT kid, state, wrapped_private_jwk FROM signing_keys');
      expect(rows.filter((r) => r.state === 'active').map((r) => r.kid)).toEqual([k2]);
      expect(rows.every((r) => r.wrapped_private_jwk.startsWith('cs1.'))).toBe(true);
      expect(await store.repos.audit.recent(10, { action: 'token-signing-key.rotate' })).toHaveLength(2);
    } finally {
      await store.close();
    }
  });
});

describe('automatic first key', () => {
  test('concurrent first requests in one process create one key', async () => {
    const ctx = await createTestContext('sqlite');
    try {
      const s = new SigningKeyService(ctx.store, ctx.kms, { kekUri: ctx.config.kms.kekUri, rotationDays: 30, tokenTtlSeconds: 300 });
      const keys = await Promise.all(Array.from({ length: 5 }, () => s.signingKey({ actor: 'test' })));
      expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
      expect(await ctx.store.repos.audit.recent(10, { action: 'token-signing-key.rotate' })).toHaveLength(1);
      expect((await s.jwks()).keys).toHaveLength(1);
    } finally {
      await ctx.cleanup();
    }
  });
});
