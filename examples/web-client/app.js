/*
 * Example browser client for Crypto Server — copy and adapt.
 *
 * 1. "Sign in" sends the browser to Crypto Server's /oauth/authorize with a PKCE challenge
 *    (RFC 7636, S256). Crypto Server signs the user in at the company IdP (SAML) and redirects
 *    back here with a one-time code.
 * 2. This page redeems the code at /oauth/token (cross-origin; CORS allow-list) for a short-lived
 *    access token, kept in memory only.
 * 3. It calls the key API (GET /api/keys/me, Authorization: Bearer) and opens its private key JWE
 *    with the password key using WebCrypto (A256KW + A256GCM), proving the keys are usable.
 *
 * Configuration comes from config.json next to this file:
 *   { "cryptoServerUrl": "https://crypto.example.com", "clientId": "web" }
 * The page's own URL (origin + path) must be a registered redirect URI of that client, and its
 * origin must be listed in CS_CORS_ORIGINS.
 */
(function () {
  'use strict';

  const $ = (id) => document.getElementById(id);
  const enc = new TextEncoder();

  function setStatus(text, state) {
    $('status').textContent = text;
    $('status').dataset.state = state;
  }

  function b64url(bytes) {
    let s = '';
    for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function fromB64url(text) {
    const s = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0));
  }

  function randomString(bytes) {
    return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
  }

  async function loadConfig() {
    const res = await fetch('config.json', { cache: 'no-store' });
    if (!res.ok) throw new Error('config.json is missing');
    return res.json();
  }

  function redirectUri() {
    return window.location.origin + window.location.pathname;
  }

  async function signIn(config) {
    const verifier = randomString(32);
    const state = randomString(16);
    const challenge = b64url(await crypto.subtle.digest('SHA-256', enc.encode(verifier)));
    sessionStorage.setItem('pkce', JSON.stringify({ verifier, state }));
    const url = new URL('/oauth/authorize', config.cryptoServerUrl);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: config.clientId,
      redirect_uri: redirectUri(),
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
    }).toString();
    window.location.assign(url.toString());
  }

  async function redeem(config, params) {
    const saved = JSON.parse(sessionStorage.getItem('pkce') || 'null');
    sessionStorage.removeItem('pkce');
    if (!saved || params.get('state') !== saved.state) throw new Error('state does not match: sign-in was not started here');
    if (params.get('iss') && params.get('iss') !== new URL(config.cryptoServerUrl).origin) throw new Error('unexpected issuer');
    const res = await fetch(new URL('/oauth/token', config.cryptoServerUrl), {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code: params.get('code'),
        redirect_uri: redirectUri(),
        client_id: config.clientId,
        code_verifier: saved.verifier,
      }),
    });
    const body = await res.json();
    if (!res.ok) throw new Error('token request refused: ' + (body.error_description || body.error));
    return body.access_token;
  }

  /** Opens a compact JWE (A256KW + A256GCM) with a 256-bit key, using WebCrypto only. */
  async function openJwe(jwe, keyBytes) {
    const [protectedB64, encryptedKey, iv, ciphertext, tag] = jwe.split('.');
    const header = JSON.parse(new TextDecoder().decode(fromB64url(protectedB64)));
    if (header.alg !== 'A256KW' || header.enc !== 'A256GCM') throw new Error('unexpected JWE algorithms ' + header.alg + '/' + header.enc);
    const kek = await crypto.subtle.importKey('raw', keyBytes, 'AES-KW', false, ['unwrapKey']);
    const cek = await crypto.subtle.unwrapKey('raw', fromB64url(encryptedKey), kek, 'AES-KW', 'AES-GCM', false, ['decrypt']);
    const ct = fromB64url(ciphertext);
    const t = fromB64url(tag);
    const data = new Uint8Array(ct.length + t.length);
    data.set(ct);
    data.set(t, ct.length);
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: fromB64url(iv), additionalData: enc.encode(protectedB64), tagLength: 128 }, cek, data);
    return JSON.parse(new TextDecoder().decode(plain));
  }

  async function showKeys(config, token) {
    const res = await fetch(new URL('/api/keys/me', config.cryptoServerUrl), { headers: { Authorization: 'Bearer ' + token } });
    const body = await res.json();
    if (!res.ok) throw new Error('key API refused: ' + (body.detail || res.status));
    const passwordKey = fromB64url(body.passwordKey);
    try {
      const privateJwk = await openJwe(body.privateJwe, passwordKey);
      $('private-key-check').textContent = 'opened: ' + privateJwk.kty + ' ' + (privateJwk.crv || '') + ' private key';
      $('private-key-check').dataset.ok = String(Boolean(privateJwk.d));
    } finally {
      passwordKey.fill(0); // keep plaintext key material short-lived
    }
    $('user-id').textContent = body.userId;
    $('key-alg').textContent = body.keyAlg;
    $('groups').textContent = body.groups.map((g) => g.displayName).join(', ') || '(none)';
    $('result').hidden = false;
    setStatus('Signed in; keys loaded.', 'ready');
  }

  async function main() {
    const config = await loadConfig();
    $('sign-in').addEventListener('click', () => {
      signIn(config).catch((err) => setStatus('Sign-in failed: ' + err.message, 'error'));
    });
    const params = new URLSearchParams(window.location.search);
    if (params.has('error')) {
      setStatus('Sign-in refused: ' + (params.get('error_description') || params.get('error')), 'error');
      return;
    }
    if (params.has('code')) {
      history.replaceState(null, '', window.location.pathname); // the code is one-time; drop it from the URL
      setStatus('Signing in…', 'busy');
      try {
        const token = await redeem(config, params);
        // Only the end-to-end test asks for this; never expose a token to every script on the page.
        if (config.exposeTokenForTests === true) window.accessToken = token;
        await showKeys(config, token);
      } catch (err) {
        setStatus('Sign-in failed: ' + err.message, 'error');
      }
    }
  }

  main().catch((err) => setStatus('Error: ' + err.message, 'error'));
})();
