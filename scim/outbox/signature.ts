/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
 * "<webhook-id>.<webhook-timestamp>.<body>" with the secret's bytes, sent as
 * `webhook-signature: v1,<base64>`. Secrets are "whsec_" + base64 (24–64 random bytes).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export function secretBytes(secret: string): Buffer {
  const b64 = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.length < 16) throw new Error('webhook secret must be "whsec_" followed by at least 16 base64-encoded bytes');
  return bytes;
}

export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export function sign(secret: string, id: string, timestamp: number, body: string): string {
  const mac = createHmac('sha256', secretBytes(secret)).update(`${id}.${timestamp}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

export function signedHeaders(secret: string, id: string, body: string, now: Date = new Date()): WebhookHeaders {
  const timestamp = Math.floor(now.getTime() / 1000);
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': sign(secret, id, timestamp, body) };
}

/** Receiver-side check (used by tests and documented for the cloud service). Tolerance in seconds. */
export function verify(secret: string, headers: Record<string, string | undefined>, body: string, now: Date = new Date(), tolerance = 300): boolean {
  const id = headers['webhook-id'];
  const ts = Number(headers['webhook-timestamp']);
  const sigs = headers['webhook-signature'];
  if (!id || !Number.isInteger(ts) || !sigs) return false;
  if (Math.abs(now.getTime() / 1000 - ts) > tolerance) return false;
  const expected = Buffer.from(sign(secret, id, ts, body).slice(3), 'base64');
  return sigs.split(' ').some((s) => {
    const [version, mac] = s.split(',', 2);
    if (version !== 'v1' || !mac) return false;
    const got = Buffer.from(mac, 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}
