import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asAppError, KmsUnavailableError, MalformedEnvelopeError, UnknownKekError, UnwrapRefusedError, KmsConfigurationError, KmsRequestError } from '../../server/errors';

const DIR = join(__dirname, '../../kms-adapters');

/** kms-adapters/ is usable on its own: it imports nothing from the server, and the server maps its errors. */
describe('kms-adapters is a leaf', () => {
  test('no adapter file imports from outside kms-adapters/ except packages', () => {
    const outside: string[] = [];
    for (const f of readdirSync(DIR).filter((n) => n.endsWith('.ts'))) {
      const src = readFileSync(join(DIR, f), 'utf8');
      for (const m of src.matchAll(/(?:from|import\()\s*'(\.\.?\/[^']+)'/g)) if (!m[1]!.startsWith('./')) outside.push(`${f}: ${m[1]}`);
    }
    expect(outside).toEqual([]);
  });

  test.each([
    [new UnwrapRefusedError('detail'), 403, 'unwrap_refused', 'user'],
    [new UnknownKekError('no such KEK'), 400, 'unknown_kek', 'user'],
    [new MalformedEnvelopeError('bad envelope'), 400, 'malformed_envelope', 'user'],
    [new KmsRequestError('bad context'), 400, 'invalid_request', 'user'],
    [new KmsUnavailableError('timeout'), 503, 'kms_unavailable', 'internal'],
    [new KmsConfigurationError('denied'), 500, 'kms_misconfigured', 'internal'],
  ] as const)('%p maps to HTTP %d', (err, status, code, kind) => {
    const app = asAppError(err)!;
    expect(app.status).toBe(status);
    expect(app.code).toBe(code);
    expect(app.kind).toBe(kind);
    expect(app.message).toBe(err.message);
    expect(app.internalDetail).toBe(err.internalDetail);
    expect(app.retryAfter).toBe(err.retryAfter);
  });

  test('an unexpected error is not mapped', () => {
    expect(asAppError(new Error('boom'))).toBeUndefined();
  });
});
