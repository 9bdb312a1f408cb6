import {
  codeDigest,
  isValidCodeChallenge,
  isValidCodeVerifier,
  newAuthorizationCode,
  redirectUriMatches,
  redirectUriProblem,
  s256Challenge,
  verifyPkce,
} from '../../server/auth/pkce';

describe('PKCE S256 (RFC 7636)', () => {
  test('matches the RFC 7636 appendix B test vector', () => {
    expect(s256Challenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe('E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM');
    expect(verifyPkce('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk', 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM')).toBe(true);
  });

  test('refuses a wrong, short, long or malformed verifier', () => {
    const challenge = s256Challenge('a'.repeat(43));
    expect(verifyPkce('b'.repeat(43), challenge)).toBe(false);
    expect(verifyPkce('a'.repeat(42), s256Challenge('a'.repeat(42)))).toBe(false);
    expect(verifyPkce('a'.repeat(129), s256Challenge('a'.repeat(129)))).toBe(false);
    expect(verifyPkce('a'.repeat(42) + ' ', challenge)).toBe(false);
    expect(verifyPkce(undefined, challenge)).toBe(false);
    // "plain" would send the verifier as the challenge: it never verifies.
    expect(verifyPkce('a'.repeat(43), 'a'.repeat(43))).toBe(false);
  });

  test('validates verifier and challenge syntax', () => {
    expect(isValidCodeVerifier('A-._~'.repeat(9))).toBe(true);
    expect(isValidCodeVerifier('a'.repeat(43) + '+')).toBe(false);
    expect(isValidCodeChallenge(s256Challenge('x'.repeat(50)))).toBe(true);
    expect(isValidCodeChallenge('x'.repeat(44))).toBe(false);
  });

  test('codes are 256-bit random and stored only as digests', () => {
    const a = newAuthorizationCode();
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(a).not.toBe(newAuthorizationCode());
    expect(codeDigest(a)).not.toContain(a);
    expect(codeDigest(a)).toBe(codeDigest(a));
  });
});

describe('redirect URI matching (RFC 6749 §3.1.2, RFC 8252 §7.3)', () => {
  const registered = ['https://app.example.com/callback', 'http://127.0.0.1/desktop/cb', 'http://[::1]/cb', 'com.example.app:/oauth'];

  test('exact match for https and private-use schemes', () => {
    expect(redirectUriMatches(registered, 'https://app.example.com/callback')).toBe(true);
    expect(redirectUriMatches(registered, 'com.example.app:/oauth')).toBe(true);
    for (const bad of [
      'https://app.example.com/callback/',
      'https://app.example.com/callback?x=1',
      'https://app.example.com/callback#frag',
      'https://app.example.com:444/callback',
      'https://APP.example.com/callback',
      'https://evil.example/callback',
      'https://app.example.com.evil.example/callback',
      'https://app.example.com@evil.example/callback',
      'http://app.example.com/callback',
      '',
      'not a url',
      undefined,
    ]) {
      expect(redirectUriMatches(registered, bad)).toBe(false);
    }
  });

  test('loopback redirect URIs accept any port, nothing else varies', () => {
    expect(redirectUriMatches(registered, 'http://127.0.0.1:49152/desktop/cb')).toBe(true);
    expect(redirectUriMatches(registered, 'http://127.0.0.1/desktop/cb')).toBe(true);
    expect(redirectUriMatches(registered, 'http://[::1]:8080/cb')).toBe(true);
    expect(redirectUriMatches(registered, 'http://127.0.0.1:49152/desktop/other')).toBe(false);
    expect(redirectUriMatches(registered, 'http://127.0.0.1:49152/desktop/cb?x=1')).toBe(false);
    expect(redirectUriMatches(registered, 'https://127.0.0.1:49152/desktop/cb')).toBe(false);
    expect(redirectUriMatches(registered, 'http://localhost:49152/desktop/cb')).toBe(false);
    expect(redirectUriMatches(registered, 'http://127.0.0.2:49152/desktop/cb')).toBe(false);
    expect(redirectUriMatches(registered, 'http://user@127.0.0.1:49152/desktop/cb')).toBe(false);
    expect(redirectUriMatches(registered, 'http://127.0.0.1:49152/desktop/cb#x')).toBe(false);
    // An https registration gets no port leeway.
    expect(redirectUriMatches(['https://127.0.0.1/cb'], 'https://127.0.0.1:9999/cb')).toBe(false);
  });

  test('registration rules', () => {
    expect(redirectUriProblem('https://app.example.com/cb')).toBeUndefined();
    expect(redirectUriProblem('http://127.0.0.1/cb')).toBeUndefined();
    expect(redirectUriProblem('com.example.app:/cb')).toBeUndefined();
    expect(redirectUriProblem('http://app.example.com/cb')).toMatch(/loopback/);
    expect(redirectUriProblem('https://app.example.com/cb#x')).toMatch(/fragment/);
    expect(redirectUriProblem('javascript:alert(1)')).toBeDefined();
    expect(redirectUriProblem('/relative')).toMatch(/absolute/);
  });
});
