/** CS_AUDIT_FORWARD and the syslog settings: parsed once, each mistake named with its setting. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../server/config';
import { ConfigError } from '../../server/errors';
import { makeTestPki, type TestPki } from '../emulators/tls';

let pki: TestPki;
beforeAll(() => {
  pki = makeTestPki();
});
afterAll(() => pki?.cleanup());

const forward = (env: Record<string, string>) => loadConfig({ CS_LOG_LEVEL: 'silent', ...env }).audit.forward;

function refused(env: Record<string, string>): string {
  try {
    forward(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('audit forwarding settings', () => {
  it('off unless set; defaults', () => {
    expect(forward({})).toMatchObject({ sinks: [], pollMs: 1000, batch: 500, from: 'start' });
  });

  it('parses each sink form; a syslog sink defaults to port 6514', () => {
    const f = forward({ CS_AUDIT_FORWARD: ' stdout , file:/var/log/cs/audit.jsonl,file:///srv/a.jsonl, syslog+tls://siem.example.com, syslog+tls://[::1]:7514', CS_AUDIT_SYSLOG_CA_FILE: pki.caFile });
    expect(f.sinks).toEqual([
      { kind: 'stdout', name: 'stdout' },
      { kind: 'file', name: 'file:/var/log/cs/audit.jsonl', path: '/var/log/cs/audit.jsonl' },
      { kind: 'file', name: 'file:/srv/a.jsonl', path: '/srv/a.jsonl' },
      { kind: 'syslog-tls', name: 'syslog+tls://siem.example.com:6514', host: 'siem.example.com', port: 6514 },
      { kind: 'syslog-tls', name: 'syslog+tls://[::1]:7514', host: '::1', port: 7514 },
    ]);
    expect(f.syslog).toMatchObject({ ca: pki.ca, facility: 13, appName: 'crypto-server' });
  });

  it.each([
    [{ CS_AUDIT_FORWARD: 'file:audit.jsonl' }, /CS_AUDIT_FORWARD: file:audit\.jsonl: a file sink needs an absolute path/],
    [{ CS_AUDIT_FORWARD: 'syslog://siem:514' }, /CS_AUDIT_FORWARD: syslog:\/\/siem:514: audit events go to syslog over TLS only/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem/path' }, /CS_AUDIT_FORWARD: .*give only a host and an optional port/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://user:pw@siem' }, /CS_AUDIT_FORWARD: .*give only a host/],
    [{ CS_AUDIT_FORWARD: 'kafka://x' }, /CS_AUDIT_FORWARD: kafka:\/\/x: not a sink; use stdout, file:/],
    [{ CS_AUDIT_FORWARD: 'stdout,stdout' }, /CS_AUDIT_FORWARD: stdout is listed twice/],
    [{ CS_AUDIT_SYSLOG_CA_FILE: '/x.pem' }, /CS_AUDIT_SYSLOG_CA_FILE: set, but CS_AUDIT_FORWARD has no syslog\+tls:\/\/ sink/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_CA_FILE: '/nonexistent/ca.pem' }, /CS_AUDIT_SYSLOG_CA_FILE: cannot read \/nonexistent\/ca\.pem \(ENOENT\)/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_CERT_FILE: '/c.pem' }, /CS_AUDIT_SYSLOG_CERT_FILE and CS_AUDIT_SYSLOG_KEY_FILE: set both/],
    [{ CS_AUDIT_FORWARD: 'stdout', CS_AUDIT_FORWARD_BATCH: '0' }, /CS_AUDIT_FORWARD_BATCH/],
    [{ CS_AUDIT_FORWARD: 'stdout', CS_AUDIT_FORWARD_FROM: 'yesterday' }, /CS_AUDIT_FORWARD_FROM/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_FACILITY: '24' }, /CS_AUDIT_SYSLOG_FACILITY/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_SD_ID: 'a b' }, /CS_AUDIT_SYSLOG_SD_ID/],
    [{ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_SD_ID: 'audit@example' }, /CS_AUDIT_SYSLOG_SD_ID: must be name@<private enterprise number>/],
    [{ CS_AUDIT_FORWRD: 'stdout' }, /CS_AUDIT_FORWRD: not a known setting; did you mean CS_AUDIT_FORWARD\?/],
  ])('refuses %j', (env, message) => {
    expect(refused(env)).toMatch(message);
  });

  it('a CA file without a certificate is refused; the key file is never echoed', () => {
    const notPem = join(pki.dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    expect(refused({ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_CA_FILE: notPem })).toMatch(/CS_AUDIT_SYSLOG_CA_FILE: .* holds no PEM certificate/);
    const keyAsCert = refused({ CS_AUDIT_FORWARD: 'syslog+tls://siem', CS_AUDIT_SYSLOG_CERT_FILE: join(pki.dir, 'server.key'), CS_AUDIT_SYSLOG_KEY_FILE: join(pki.dir, 'server.key') });
    expect(keyAsCert).toMatch(/CS_AUDIT_SYSLOG_CERT_FILE: .* holds no PEM certificate/);
    expect(keyAsCert).not.toContain('PRIVATE KEY');
  });
});
