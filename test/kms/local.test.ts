import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runKmsContract } from './contract';
import { createAdapter, LocalAdapter, loadOrCreateMasterKey } from '../../kms-adapters/local';
import { ConfigError, UnknownKekError } from '../../server/errors';

runKmsContract('local', async () => ({
  adapter: new LocalAdapter(randomBytes(32)),
  keyUri: 'local://primary',
  otherKeyUri: 'local://secondary',
}));

describe('local adapter specifics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cs-local-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('creates the master key file with mode 0600 only when allowed, then reuses it', async () => {
    const path = join(dir, 'sub', 'master.key');
    expect(() => loadOrCreateMasterKey(path, false)).toThrow(ConfigError);
    const notices: string[] = [];
    const a = await createAdapter({ settings: { masterKeyFile: path, createMasterKey: true }, notice: (m) => notices.push(m) });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(notices.join()).toContain(path);
    const w = await a.wrap('local://k', Buffer.from('secret'), { purpose: 't' });
    const b = await createAdapter({ settings: { masterKeyFile: path, createMasterKey: true }, notice: (m) => notices.push(m) });
    expect((await b.unwrap('local://k', w.ciphertext, { purpose: 't' })).toString()).toBe('secret');
    expect(notices).toHaveLength(1);
  });

  test('refuses a master key file readable by others, and one of the wrong size', () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, randomBytes(32).toString('base64'));
    chmodSync(loose, 0o644);
    expect(() => loadOrCreateMasterKey(loose, false)).toThrow(/chmod 600/);
    const short = join(dir, 'short.key');
    writeFileSync(short, randomBytes(16).toString('base64'), { mode: 0o600 });
    expect(() => loadOrCreateMasterKey(short, false)).toThrow(/32 base64-encoded bytes/);
  });

  test('a different master key cannot open the blob', async () => {
    const w = await new LocalAdapter(randomBytes(32)).wrap('local://k', randomBytes(32), { purpose: 't' });
    await expect(new LocalAdapter(randomBytes(32)).unwrap('local://k', w.ciphertext, { purpose: 't' })).rejects.toThrow(/does not open/);
  });

  test('rejects malformed key URIs', async () => {
    const a = new LocalAdapter(randomBytes(32));
    await expect(a.wrap('local://', randomBytes(32), { purpose: 't' })).rejects.toBeInstanceOf(UnknownKekError);
    await expect(a.wrap('local://a/b', randomBytes(32), { purpose: 't' })).rejects.toBeInstanceOf(UnknownKekError);
  });
});
