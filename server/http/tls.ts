/**
 * In-process TLS (CS_TLS_CERT_FILE / CS_TLS_KEY_FILE) for deployments without a TLS proxy.
 * The pair is read and checked at start-up (a bad pair stops it, naming the settings) and again
 * whenever the files change — cert-manager and Kubernetes Secret volumes replace them in place —
 * so a renewed certificate is served to new connections without a restart. A new pair that does
 * not load (half-written, key of another certificate, expired) is refused with a log line and the
 * pair already in use keeps being served.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { createServer as createHttpsServer, type Server as HttpsServer, type ServerOptions } from 'node:https';
import { createSecureContext } from 'node:tls';
import { dirname } from 'node:path';
import type { RequestListener } from 'node:http';
import { ConfigError } from '../errors';
import type { Logger } from '../log';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  reloadIntervalMs: number;
}

export interface TlsPair {
  cert: Buffer;
  key: Buffer;
  /** SHA-256 fingerprint and serial of the leaf certificate, for logs. */
  fingerprint: string;
  serial: string;
  notAfter: string;
}

/** Reads the pair and checks that it loads, that the key belongs to the certificate and that it is in date. */
export function readTlsPair(files: Pick<TlsFiles, 'certFile' | 'keyFile'>, now = new Date()): TlsPair {
  const read = (setting: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`${setting}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const cert = read('CS_TLS_CERT_FILE', files.certFile);
  const key = read('CS_TLS_KEY_FILE', files.keyFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new ConfigError(`CS_TLS_CERT_FILE: ${files.certFile} holds no PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new ConfigError(`CS_TLS_KEY_FILE: ${files.keyFile} holds no unencrypted PEM private key`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new ConfigError(`CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: the key in ${files.keyFile} does not belong to the certificate in ${files.certFile}`);
  if (new Date(leaf.validTo) < now) throw new ConfigError(`CS_TLS_CERT_FILE: the certificate in ${files.certFile} expired on ${leaf.validTo}`);
  try {
    createSecureContext({ cert, key }); // the chain as OpenSSL will load it
  } catch (err) {
    throw new ConfigError(`CS_TLS_CERT_FILE and CS_TLS_KEY_FILE: OpenSSL refused the pair (${(err as Error).message})`);
  }
  return { cert, key, fingerprint: leaf.fingerprint256, serial: leaf.serialNumber, notAfter: leaf.validTo };
}

/** An https server on the pair, which it keeps reloading until `stopReloading()` (called on close). */
export function createTlsServer(files: TlsFiles, options: ServerOptions, app: RequestListener, log: Logger): HttpsServer & { tlsPair: () => TlsPair } {
  let current = readTlsPair(files);
  const server = createHttpsServer({ ...options, cert: current.cert, key: current.key }, app) as HttpsServer & { tlsPair: () => TlsPair };
  server.tlsPair = () => current;
  const reloader = watchTlsFiles(files, log, (pair) => {
    server.setSecureContext({ cert: pair.cert, key: pair.key });
    current = pair;
  });
  server.once('close', reloader.stop);
  log.info({ fingerprint: current.fingerprint, serial: current.serial, notAfter: current.notAfter }, 'TLS certificate loaded');
  return server;
}

/**
 * Calls `apply` with each new good pair. Change is seen by fs.watch on the files' directories
 * (an atomic rename or a Secret volume's symlink swap fires there, not on the old file) and, as
 * a fallback where events are not delivered (some network and overlay file systems), by comparing
 * the files' stat every `reloadIntervalMs`.
 */
export function watchTlsFiles(files: TlsFiles, log: Pick<Logger, 'info' | 'error'>, apply: (pair: TlsPair) => void, useFsWatch = true): { stop: () => void; check: () => void } {
  const signature = () => {
    try {
      return [files.certFile, files.keyFile].map((f) => statSync(f)).map((s) => `${s.ino}:${s.size}:${s.mtimeMs}`).join('|');
    } catch {
      return 'missing';
    }
  };
  let seen = signature();
  const check = () => {
    const now = signature();
    if (now === seen) return;
    seen = now; // a refused pair is reported once, not on every tick, until the files change again
    let pair: TlsPair;
    try {
      pair = readTlsPair(files);
    } catch (err) {
      log.error({ reason: (err as Error).message }, 'TLS certificate files changed but the new pair was refused; still serving the previous certificate');
      return;
    }
    apply(pair);
    log.info({ fingerprint: pair.fingerprint, serial: pair.serial, notAfter: pair.notAfter }, 'TLS certificate reloaded');
  };
  // Writers replace cert and key one after the other: wait for the burst of events to settle.
  let debounce: NodeJS.Timeout | undefined;
  const soon = () => {
    clearTimeout(debounce);
    debounce = setTimeout(check, 200);
    debounce.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of useFsWatch ? new Set([dirname(files.certFile), dirname(files.keyFile)]) : []) {
    try {
      const w = watch(dir, { persistent: false }, soon);
      w.on('error', () => w.close()); // the directory went away; the periodic check still runs
      watchers.push(w);
    } catch {
      // not watchable here: the periodic check covers it
    }
  }
  const timer = setInterval(check, files.reloadIntervalMs);
  timer.unref();
  return {
    check,
    stop: () => {
      clearInterval(timer);
      clearTimeout(debounce);
      for (const w of watchers) w.close();
    },
  };
}
