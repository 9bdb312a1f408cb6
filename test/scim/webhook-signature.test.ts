import { newWebhookSecret, sign, signedHeaders, verify } from '../../scim/outbox/signature';

describe('Standard Webhooks signature', () => {
  it('matches the specification test vector', () => {
    expect(sign('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}')).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    );
  });

  it('verifies its own headers and rejects tampering, wrong secrets and stale timestamps', () => {
    const secret = newWebhookSecret();
    const now = new Date('2026-11-22T01:00:00Z');
    const h = signedHeaders(secret, 'msg_1', '{"a":1}', now);
    expect(verify(secret, { ...h }, '{"a":1}', now)).toBe(true);
    expect(verify(secret, { ...h }, '{"a":2}', now)).toBe(false);
    expect(verify(newWebhookSecret(), { ...h }, '{"a":1}', now)).toBe(false);
    expect(verify(secret, { ...h }, '{"a":1}', new Date(now.getTime() + 10 * 60_000))).toBe(false);
    expect(() => sign('whsec_', 'x', 1, '')).toThrow(/whsec_/);
  });
});
