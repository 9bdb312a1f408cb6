import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { newWebhookSecret } from '../../scim/outbox/signature';

describe('SCIM settings', () => {
  it('defaults: 1 MiB bodies, 1200 requests/min per token, no webhook, keep deleted users', () => {
    expect(loadConfig({}).scim).toEqual({ baseUrl: undefined, maxBodyBytes: 1048576, rateLimitPerMinute: 1200, groupPatchResponse: 'no-content', webhook: undefined, userDeleteRetentionDays: null, groupRekey: 'on-removal' });
  });

  it('CS_SCIM_GROUP_PATCH_RESPONSE: no-content (default) or resource; anything else is refused by name', () => {
    expect(loadConfig({ CS_SCIM_GROUP_PATCH_RESPONSE: 'resource' }).scim.groupPatchResponse).toBe('resource');
    expect(() => loadConfig({ CS_SCIM_GROUP_PATCH_RESPONSE: '200' })).toThrow(/CS_SCIM_GROUP_PATCH_RESPONSE: must be "no-content" or "resource"/);
  });

  it('CS_GROUP_REKEY: on-removal (default) or manual; anything else is refused by name', () => {
    expect(loadConfig({ CS_GROUP_REKEY: 'manual' }).scim.groupRekey).toBe('manual');
    expect(() => loadConfig({ CS_GROUP_REKEY: 'never' })).toThrow(/CS_GROUP_REKEY: must be "on-removal" or "manual"/);
  });

  it('a webhook needs a secret; messages name the setting and never echo a secret', () => {
    expect(() => loadConfig({ CS_WEBHOOK_URL: 'https://cloud.example/hooks' })).toThrow(/CS_WEBHOOK_SECRET: required/);
    let message = '';
    try {
      loadConfig({ CS_WEBHOOK_URL: 'https://cloud.example/hooks', CS_WEBHOOK_SECRET: 'not-a-whsec-value-hunter2' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('CS_WEBHOOK_SECRET');
    expect(message).not.toContain('hunter2');
    expect(() => loadConfig({ CS_WEBHOOK_URL: 'ftp://x' })).toThrow(/CS_WEBHOOK_URL/);
    // Credentials in the URL would be quoted by fetch errors into the outbox state and logs.
    const withPassword = 'https://svc:hunter2@cloud.example/hooks';
    let msg = '';
    try {
      loadConfig({ CS_WEBHOOK_URL: withPassword });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/CS_WEBHOOK_URL: must not carry a user or password/);
    expect(msg).not.toContain('hunter2');
  });

  it('reads the secret from CS_WEBHOOK_SECRET_FILE', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cs-whsec-'));
    try {
      const secret = newWebhookSecret();
      writeFileSync(join(dir, 's'), `${secret}\n`, { mode: 0o600 });
      const c = loadConfig({ CS_WEBHOOK_URL: 'https://cloud.example/hooks', CS_WEBHOOK_SECRET_FILE: join(dir, 's') });
      expect(c.scim.webhook).toMatchObject({ url: 'https://cloud.example/hooks', secret });
      writeFileSync(join(dir, 'bad'), 'garbage-secret');
      expect(() => loadConfig({ CS_WEBHOOK_URL: 'https://cloud.example/hooks', CS_WEBHOOK_SECRET_FILE: join(dir, 'bad') })).toThrow(/CS_WEBHOOK_SECRET_FILE.*not shown/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('retention days and limits are validated', () => {
    expect(loadConfig({ CS_USER_DELETE_RETENTION_DAYS: '30' }).scim.userDeleteRetentionDays).toBe(30);
    expect(loadConfig({ CS_USER_DELETE_RETENTION_DAYS: 'keep' }).scim.userDeleteRetentionDays).toBeNull();
    expect(() => loadConfig({ CS_USER_DELETE_RETENTION_DAYS: '-1' })).toThrow(/CS_USER_DELETE_RETENTION_DAYS/);
    expect(() => loadConfig({ CS_SCIM_MAX_BODY_BYTES: '10' })).toThrow(/CS_SCIM_MAX_BODY_BYTES/);
    expect(() => loadConfig({ CS_SCIM_BASE_URL: 'https://x.example/scim/v2/' })).toThrow(/CS_SCIM_BASE_URL/);
  });
});
