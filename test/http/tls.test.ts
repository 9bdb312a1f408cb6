import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { makeTestPki, type TestPki } from '../emulators/tls';
import { loadConfig } from '../../server/config';
import { serve, type Running } from '../../server/cli/serve';
import { createTlsServer, readTlsPair, watchTlsFiles } from '../../server/http/tls';
import { createLogger } from '../../server/log';
import { ConfigError } from '../../server/errors';
import { listening, servingPid, sleep, startServe, type ClusterProcess } from '../cluster/support';
import { freePort } from '../bench/http/processes';
import { samlServerEnv } from '../support/saml-server-env';
import { request as httpsRequest } from 'node:https';

/**
 * In-process TLS: a real https server on a test CA's certificate, verified by the client; the pair
 * is replaced on disk while it runs and new connections get the new certificate (fingerprint and
 * serial compared) without a restart; a broken replacement is refused and the old certificate
 * stays; both workers of CS_WORKERS=2 reload.
 */
jest.setTimeout(180_000);

let pki: TestPki;
let n = 0;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki.cleanup());

/**
 * Another certificate for 127.0.0.1 from the same test CA, with a key of its own. openssl runs
 * synchronously: call it before a server in this process starts (a blocked event loop fails /healthz).
 */
function issue(): { cert: string; key: string; fingerprint: string } {
  const name = `leaf${++n}`;
  const f = (x: string) => join(pki.dir, `${name}.${x}`);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: pki.dir, stdio: 'pipe' });
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('key'), '-out', f('csr'), '-subj', '/CN=127.0.0.1');
  run('x509', '-req', '-in', f('csr'), '-CA', join(pki.dir, 'ca.pem'), '-CAkey', join(pki.dir, 'ca.key'), '-CAcreateserial', '-out', f('pem'), '-days', '1', '-extfile', join(pki.dir, 'ext.cnf'));
  const cert = readFileSync(f('pem'), 'utf8');
  return { cert, key: readFileSync(f('key'), 'utf8'), fingerprint: new X509Certificate(cert).fingerprint256 };
}

/** Writes the pair the way cert-manager / a Secret volume does: a new file renamed over the old. */
function install(dir: string, pair: { cert?: string; key?: string }): void {
  for (const [file, text] of [['tls.crt', pair.cert], ['tls.key', pair.key]] as const) {
    if (text === undefined) continue;
    writeFileSync(join(dir, `.${file}.tmp`), text, { mode: 0o600 });
    renameSync(join(dir, `.${file}.tmp`), join(dir, file));
  }
}

/** Opens a verified TLS connection (the test CA only): the certificate it was shown, and the socket. */
function openPeer(port: number): Promise<{ fingerprint: string; serial: string; localPort: number; socket: import('node:tls').TLSSocket }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca }, () => {
      const cert = socket.getPeerX509Certificate()!;
      resolve({ fingerprint: cert.fingerprint256, serial: cert.serialNumber, localPort: socket.localPort!, socket });
    });
    socket.on('error', reject);
  });
}

async function peer(port: number): Promise<{ fingerprint: string; serial: string }> {
  const { socket, ...seen } = await openPeer(port);
  socket.end();
  return seen;
}

/** GET over https, verifying the server with the test CA. */
async function get(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; cookies: string[] }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(new URL(path, url), { ca: pki.ca, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body, cookies: res.headers['set-cookie'] ?? [] }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function until(what: string, cond: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'cs-tls-'));
}

describe('TLS settings', () => {
  it('wants both files or neither, naming the settings', () => {
    expect(() => loadConfig({ CS_TLS_CERT_FILE: '/x/tls.crt' })).toThrow(ConfigError);
    expect(() => loadConfig({ CS_TLS_CERT_FILE: '/x/tls.crt' })).toThrow(/CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: set both .*CS_TLS_KEY_FILE is missing/);
    expect(() => loadConfig({ CS_TLS_KEY_FILE: '/x/tls.key' })).toThrow(/CS_TLS_CERT_FILE is missing/);
    expect(loadConfig({}).server.tls).toBeUndefined();
    expect(loadConfig({ CS_TLS_CERT_FILE: '/x/a', CS_TLS_KEY_FILE: '/x/b' }).server.tls).toEqual({ certFile: '/x/a', keyFile: '/x/b', reloadIntervalMs: 30_000 });
  });

  it('refuses an unreadable file, a non-certificate and a key of another certificate, naming the setting', () => {
    const dir = tempDir();
    try {
      const other = issue();
      install(dir, { cert: pki.cert, key: other.key });
      const files = { certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key') };
      expect(() => readTlsPair(files)).toThrow(/CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: the key in .* does not belong to the certificate/);
      expect(() => readTlsPair({ ...files, certFile: join(dir, 'missing.crt') })).toThrow(/CS_TLS_CERT_FILE: cannot read .*missing\.crt \(ENOENT\)/);
      writeFileSync(join(dir, 'junk'), 'not a certificate');
      expect(() => readTlsPair({ ...files, certFile: join(dir, 'junk') })).toThrow(/CS_TLS_CERT_FILE: .* holds no PEM certificate/);
      expect(() => readTlsPair({ ...files, keyFile: join(dir, 'junk') })).toThrow(/CS_TLS_KEY_FILE: .* holds no unencrypted PEM private key/);
      // Messages carry paths and settings, never key material.
      try {
        readTlsPair(files);
      } catch (err) {
        expect((err as Error).message).not.toContain('PRIVATE KEY');
      }
      install(dir, { key: pki.key });
      expect(readTlsPair(files).fingerprint).toBe(new X509Certificate(pki.cert).fingerprint256);
      // An expired certificate is refused too (checked against a later clock).
      expect(() => readTlsPair(files, new Date(Date.now() + 3 * 86_400_000))).toThrow(/CS_TLS_CERT_FILE: the certificate in .* expired/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('serve with CS_TLS_CERT_FILE / CS_TLS_KEY_FILE', () => {
  let dir: string;
  let running: Running | undefined;
  beforeEach(() => {
    dir = tempDir();
    install(dir, { cert: pki.cert, key: pki.key });
  });
  afterEach(async () => {
    await running?.stop();
    running = undefined;
    rmSync(dir, { recursive: true, force: true });
  });
  const env = (extra: Record<string, string> = {}) => ({
    CS_DATA_DIR: join(dir, 'data'),
    CS_PORT: '0',
    CS_LOG_LEVEL: 'silent',
    CS_TLS_CERT_FILE: join(dir, 'tls.crt'),
    CS_TLS_KEY_FILE: join(dir, 'tls.key'),
    ...extra,
  });

  it('serves https verified against the CA, no plain http, and reloads a replaced pair for new connections', async () => {
    const lines: string[] = [];
    const next = issue();
    running = await serve(env({ CS_TLS_RELOAD_INTERVAL_MS: '3600000' }), (l) => lines.push(l));
    expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(lines.join('\n')).toContain(`listening on ${running.url}`);
    const port = Number(new URL(running.url).port);
    const first = new X509Certificate(pki.cert);
    expect((await peer(port)).fingerprint).toBe(first.fingerprint256);
    expect((await get(running.url, '/healthz')).status).toBe(200);

    // Plain http on the TLS port gets no HTTP answer.
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/healthz' }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      req.end();
    });
    expect(plain).not.toMatch(/^status 2/);

    // A connection opened before the replacement keeps working; new ones see the new certificate.
    const kept = await new Promise<import('node:tls').TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port, ca: pki.ca }, () => resolve(s));
      s.on('error', reject);
    });
    install(dir, next);
    // The periodic check is an hour away: this is the directory watcher's doing.
    await until('the new certificate', async () => (await peer(port)).fingerprint === next.fingerprint);
    expect((await peer(port)).serial).toBe(new X509Certificate(next.cert).serialNumber);
    expect(kept.getPeerX509Certificate()!.fingerprint256).toBe(first.fingerprint256);
    kept.end();
    expect((await get(running.url, '/healthz')).status).toBe(200);
  });

  it('keeps serving the old certificate when the replacement is broken, and takes the next good one', async () => {
    const [wrongKey, otherCert, good] = [issue(), issue(), issue()];
    running = await serve(env({ CS_TLS_RELOAD_INTERVAL_MS: '200' }), () => undefined);
    const port = Number(new URL(running.url).port);
    const first = new X509Certificate(pki.cert).fingerprint256;
    // The certificate of one pair with the key of another, then a truncated certificate.
    install(dir, { cert: otherCert.cert, key: wrongKey.key });
    await sleep(1000);
    expect((await peer(port)).fingerprint).toBe(first);
    install(dir, { cert: pki.cert.slice(0, 200), key: pki.key });
    await sleep(1000);
    expect((await peer(port)).fingerprint).toBe(first);
    expect((await get(running.url, '/healthz')).status).toBe(200);
    install(dir, good);
    await until('the good replacement', async () => (await peer(port)).fingerprint === good.fingerprint);
  });

  it('closes a connection that never completes the TLS handshake within CS_HEADERS_TIMEOUT_MS', async () => {
    running = await serve(env({ CS_HEADERS_TIMEOUT_MS: '1000' }), () => undefined);
    const socket = connect(Number(new URL(running.url).port), '127.0.0.1');
    await once(socket, 'connect');
    const opened = performance.now();
    socket.on('error', () => undefined);
    await once(socket, 'close');
    const ms = performance.now() - opened;
    expect(ms).toBeGreaterThanOrEqual(900);
    expect(ms).toBeLessThan(1000 + 3000);
  });

  it('refuses to start on a bad pair, naming the settings', async () => {
    install(dir, { key: issue().key });
    await expect(serve(env(), () => undefined)).rejects.toThrow(/CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: the key in .* does not belong/);
    rmSync(join(dir, 'tls.key'));
    await expect(serve(env(), () => undefined)).rejects.toThrow(/CS_TLS_KEY_FILE: cannot read/);
  });
});

describe('reload without file-system events (the periodic stat check)', () => {
  it('applies a good new pair, logs and refuses a bad one', async () => {
    const dir = tempDir();
    const logged: { level: string; msg: string; reason?: string }[] = [];
    const log = {
      info: (o: object, msg: string) => logged.push({ level: 'info', msg, ...o }),
      error: (o: { reason?: string }, msg: string) => logged.push({ level: 'error', msg, ...o }),
    } as unknown as Parameters<typeof watchTlsFiles>[1];
    const applied: string[] = [];
    try {
      install(dir, { cert: pki.cert, key: pki.key });
      const w = watchTlsFiles({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reloadIntervalMs: 100 }, log, (p) => applied.push(p.fingerprint), false);
      try {
        await sleep(300);
        expect(applied).toEqual([]); // unchanged files: nothing reloaded
        install(dir, { key: issue().key });
        await until('the refusal', async () => logged.some((l) => l.level === 'error'));
        expect(applied).toEqual([]);
        expect(logged.find((l) => l.level === 'error')).toMatchObject({ msg: expect.stringMatching(/refused; still serving the previous certificate/), reason: expect.stringMatching(/does not belong/) });
        const errors = logged.length;
        await sleep(400);
        expect(logged.length).toBe(errors); // said once, not on every tick
        const good = issue();
        install(dir, good);
        await until('the reload', async () => applied.length === 1);
        expect(applied).toEqual([good.fingerprint]);
        expect(logged.at(-1)).toMatchObject({ level: 'info', msg: 'TLS certificate reloaded' });
      } finally {
        w.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Express behind in-process TLS', () => {
  it('sees the request as secure; a client X-Forwarded-Proto is not believed without CS_TRUST_PROXY', async () => {
    const dir = tempDir();
    install(dir, { cert: pki.cert, key: pki.key });
    const app = express();
    app.set('trust proxy', loadConfig({}).server.trustProxy);
    app.get('/p', (req, res) => res.json({ secure: req.secure, protocol: req.protocol }));
    const server = createTlsServer({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), reloadIntervalMs: 60_000 }, {}, app, createLogger('silent'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `https://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
      expect(JSON.parse((await get(url, '/p')).body)).toEqual({ secure: true, protocol: 'https' });
      expect(JSON.parse((await get(url, '/p', { 'X-Forwarded-Proto': 'http' })).body)).toEqual({ secure: true, protocol: 'https' });
    } finally {
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cookies over in-process TLS', () => {
  it('the console sign-in cookie is Secure on the TLS port; a client X-Forwarded-Proto changes nothing', async () => {
    const dir = tempDir();
    install(dir, { cert: pki.cert, key: pki.key });
    const port = await freePort();
    const { idp, env } = await samlServerEnv({ dir, port, spName: 'crypto-server-tls-sp', client: { clientId: 'tls-test', redirectUri: 'http://127.0.0.1/callback' } });
    let running: Running | undefined;
    try {
      running = await serve({ ...env, CS_LOG_LEVEL: 'silent', CS_PUBLIC_URL: `https://127.0.0.1:${port}`, CS_TLS_CERT_FILE: join(dir, 'tls.crt'), CS_TLS_KEY_FILE: join(dir, 'tls.key') }, () => undefined);
      for (const headers of [{}, { 'X-Forwarded-Proto': 'http' }] as Record<string, string>[]) {
        const { cookies } = await get(running.url, '/admin/login', headers);
        const signIn = cookies.find((c) => c.startsWith('cs_admin_signin='));
        expect(signIn).toBeDefined();
        expect(signIn!.split(/;\s*/)).toContain('Secure');
        expect(signIn).toMatch(/HttpOnly/);
      }
    } finally {
      await running?.stop();
      await idp.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('CS_WORKERS=2 with TLS', () => {
  let p: ClusterProcess | undefined;
  let dir: string;
  afterAll(async () => {
    await p?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('every worker serves the pair and reloads it', async () => {
    dir = tempDir();
    install(dir, { cert: pki.cert, key: pki.key });
    p = await startServe({ workers: 2, env: { CS_TLS_CERT_FILE: join(dir, 'tls.crt'), CS_TLS_KEY_FILE: join(dir, 'tls.key'), CS_TLS_RELOAD_INTERVAL_MS: '3600000' } });
    if (!(await listening(p))) throw new Error(`serve exited: ${p.stdout()}\n${p.stderr()}`);
    expect(p.stdout()).toMatch(/listening on https:\/\/127\.0\.0\.1:\d+ \(2 workers;/);
    const workers = p.workerPids();
    expect(workers).toHaveLength(2);

    /** The certificate each worker shows to a new connection. */
    const perWorker = async (): Promise<Map<number, string>> => {
      const seen = new Map<number, string>();
      for (let i = 0; i < 40 && seen.size < 2; i++) {
        const c = await openPeer(p!.port);
        try {
          seen.set(await servingPid(p!.port, c.localPort, workers), c.fingerprint);
        } finally {
          c.socket.end();
        }
      }
      return seen;
    };
    const first = new X509Certificate(pki.cert).fingerprint256;
    expect([...(await perWorker()).entries()].sort()).toEqual(workers.map((w) => [w, first]).sort());

    const next = issue();
    install(dir, next);
    await until('both workers to reload', async () => [...(await perWorker()).values()].every((f) => f === next.fingerprint), 20_000);
    expect([...(await perWorker()).entries()].sort()).toEqual(workers.map((w) => [w, next.fingerprint]).sort());
  });
});
