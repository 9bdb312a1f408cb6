import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface KeyAndCert {
  /** PKCS#8 PEM private key. */
  key: string;
  /** PEM X.509 certificate (self-signed). */
  cert: string;
}

/**
 * A fresh RSA key and self-signed certificate, made with the openssl CLI for this test run only
 * (nothing secret is committed to the repository).
 */
export function makeKeyAndCert(commonName: string, opts: { days?: number } = {}): KeyAndCert {
  const dir = mkdtempSync(join(tmpdir(), 'cs-cert-'));
  try {
    const keyPath = join(dir, 'key.pem');
    const certPath = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', String(opts.days ?? 2), '-subj', `/CN=${commonName}`],
      { stdio: 'pipe' },
    );
    return { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
