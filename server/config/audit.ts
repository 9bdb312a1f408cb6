import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../errors';

/** The audit log: forwarding to SIEMs (docs/operations.md "Reading and forwarding the audit log"). */
export const auditEnv = z.object({
  /** Comma-separated sinks every committed audit event is forwarded to: stdout, file:/abs/path.jsonl, syslog+tls://host[:6514]. */
  CS_AUDIT_FORWARD: z.string().optional(),
  /** How often a forwarder looks for new events when it has caught up. */
  CS_AUDIT_FORWARD_POLL_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
  /** Events read and sent per round. */
  CS_AUDIT_FORWARD_BATCH: z.coerce.number().int().min(1).max(5000).default(500),
  /** Where a sink seen for the first time starts: every stored event, or only events from now on. */
  CS_AUDIT_FORWARD_FROM: z.enum(['start', 'now']).default('start'),
  /** PEM CA certificate(s) the syslog server's certificate must chain to (default: the system's CAs). */
  CS_AUDIT_SYSLOG_CA_FILE: z.string().min(1).optional(),
  /** PEM client certificate and key, when the syslog server asks for one (mutual TLS). */
  CS_AUDIT_SYSLOG_CERT_FILE: z.string().min(1).optional(),
  CS_AUDIT_SYSLOG_KEY_FILE: z.string().min(1).optional(),
  /** RFC 5424 facility number; 13 is "log audit". */
  CS_AUDIT_SYSLOG_FACILITY: z.coerce.number().int().min(0).max(23).default(13),
  CS_AUDIT_SYSLOG_APP_NAME: z.string().regex(/^[!-~]{1,48}$/, 'must be 1 to 48 printable ASCII characters without spaces').default('crypto-server'),
  /** HOSTNAME field of each message (default: this machine's name). */
  CS_AUDIT_SYSLOG_HOSTNAME: z.string().regex(/^[!-~]{1,255}$/, 'must be 1 to 255 printable ASCII characters without spaces').optional(),
  /** SD-ID of a structured-data element carrying the event's main fields, e.g. audit@<your IANA enterprise number>; unset: none (the JSON event is the message). */
  CS_AUDIT_SYSLOG_SD_ID: z
    .string()
    .regex(/^[!#-<>-\\^-~]{1,32}$/, 'must be 1 to 32 printable ASCII characters other than space, =, ] and "')
    .refine((s) => !s.includes('@') || /^[^@]+@\d+(\.\d+)*$/.test(s), 'must be name@<private enterprise number> when it contains @')
    .optional(),
});

export type AuditSinkSpec = { kind: 'stdout'; name: string } | { kind: 'file'; name: string; path: string } | { kind: 'syslog-tls'; name: string; host: string; port: number };

export interface SyslogSettings {
  ca?: string;
  cert?: string;
  key?: string;
  facility: number;
  appName: string;
  hostname: string;
  sdId?: string;
}

export interface AuditForwardConfig {
  sinks: AuditSinkSpec[];
  pollMs: number;
  batch: number;
  from: 'start' | 'now';
  syslog: SyslogSettings;
}

export function auditConfig(e: z.infer<typeof auditEnv>): { audit: { forward: AuditForwardConfig } } {
  const sinks = (e.CS_AUDIT_FORWARD ?? '').split(',').map((s) => s.trim()).filter(Boolean).map(parseSink);
  const names = sinks.map((s) => s.name);
  const twice = names.find((n, i) => names.indexOf(n) !== i);
  if (twice) throw new ConfigError(`CS_AUDIT_FORWARD: ${twice} is listed twice`);
  const syslog = sinks.some((s) => s.kind === 'syslog-tls');
  for (const name of ['CS_AUDIT_SYSLOG_CA_FILE', 'CS_AUDIT_SYSLOG_CERT_FILE', 'CS_AUDIT_SYSLOG_KEY_FILE', 'CS_AUDIT_SYSLOG_SD_ID'] as const) {
    if (e[name] !== undefined && !syslog) throw new ConfigError(`${name}: set, but CS_AUDIT_FORWARD has no syslog+tls:// sink`);
  }
  if ((e.CS_AUDIT_SYSLOG_CERT_FILE === undefined) !== (e.CS_AUDIT_SYSLOG_KEY_FILE === undefined)) {
    throw new ConfigError('CS_AUDIT_SYSLOG_CERT_FILE and CS_AUDIT_SYSLOG_KEY_FILE: set both (a client certificate and its key) or neither');
  }
  return {
    audit: {
      forward: {
        sinks,
        pollMs: e.CS_AUDIT_FORWARD_POLL_MS,
        batch: e.CS_AUDIT_FORWARD_BATCH,
        from: e.CS_AUDIT_FORWARD_FROM,
        syslog: {
          ca: e.CS_AUDIT_SYSLOG_CA_FILE ? readPem('CS_AUDIT_SYSLOG_CA_FILE', e.CS_AUDIT_SYSLOG_CA_FILE, 'CERTIFICATE') : undefined,
          cert: e.CS_AUDIT_SYSLOG_CERT_FILE ? readPem('CS_AUDIT_SYSLOG_CERT_FILE', e.CS_AUDIT_SYSLOG_CERT_FILE, 'CERTIFICATE') : undefined,
          key: e.CS_AUDIT_SYSLOG_KEY_FILE ? readPem('CS_AUDIT_SYSLOG_KEY_FILE', e.CS_AUDIT_SYSLOG_KEY_FILE, 'PRIVATE KEY') : undefined,
          facility: e.CS_AUDIT_SYSLOG_FACILITY,
          appName: e.CS_AUDIT_SYSLOG_APP_NAME,
          hostname: e.CS_AUDIT_SYSLOG_HOSTNAME ?? (hostname().replace(/[^!-~]/g, '') || '-'),
          sdId: e.CS_AUDIT_SYSLOG_SD_ID,
        },
      },
    },
  };
}

const SINK_FORMS = 'stdout, file:/absolute/path.jsonl or syslog+tls://host[:port]';

function parseSink(spec: string): AuditSinkSpec {
  if (spec === 'stdout') return { kind: 'stdout', name: 'stdout' };
  if (spec.startsWith('file:')) {
    const path = spec.startsWith('file://') ? spec.slice('file://'.length) : spec.slice('file:'.length);
    if (!isAbsolute(path)) throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: a file sink needs an absolute path (file:/var/log/crypto-server/audit.jsonl)`);
    const name = `file:${path}`;
    if (name.length > 255) throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: the path is too long (at most 250 characters)`);
    return { kind: 'file', name, path };
  }
  if (spec.startsWith('syslog+tls://')) {
    let u: URL;
    try {
      u = new URL(spec);
    } catch {
      throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: not a valid syslog+tls://host[:port] address`);
    }
    if (!u.hostname || u.username || u.password || (u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) {
      throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: give only a host and an optional port (syslog+tls://siem.example.com:6514)`);
    }
    const port = u.port ? Number(u.port) : 6514;
    const host = u.hostname.replace(/^\[|\]$/g, '');
    return { kind: 'syslog-tls', name: `syslog+tls://${u.host}${u.port ? '' : ':6514'}`, host, port };
  }
  if (spec.startsWith('syslog://') || spec.startsWith('syslog+tcp://') || spec.startsWith('syslog+udp://')) {
    throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: audit events go to syslog over TLS only (syslog+tls://, RFC 5425); plain TCP or UDP would expose them on the network`);
  }
  throw new ConfigError(`CS_AUDIT_FORWARD: ${spec}: not a sink; use ${SINK_FORMS}`);
}

function readPem(name: string, path: string, label: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'}); check the path and permissions`);
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(pem)) throw new ConfigError(`${name}: ${path} holds no PEM ${label.toLowerCase()}`);
  return pem;
}
