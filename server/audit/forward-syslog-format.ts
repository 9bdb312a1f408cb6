/**
 * RFC 5424 syslog messages and RFC 5425 (TLS) octet-counting frames. Our own small formatter: the
 * npm candidates were not fit — syslog-client (no TLS, newline framing), syslog-pro (moment, a
 * single release), glossy (two-digit milliseconds, severity/facility 0 treated as missing) and
 * @n8n/syslog-client (not under an open-source licence). Tested against the RFC's examples.
 */

export interface SyslogMessage {
  /** 0 to 23 (13: log audit). */
  facility: number;
  /** 0 (emergency) to 7 (debug). */
  severity: number;
  /** RFC 3339 with a zone, as stored in `at` (2026-12-01T10:00:00.123Z); undefined: the NILVALUE. */
  timestamp?: string;
  hostname?: string;
  appName?: string;
  procId?: string;
  msgId?: string;
  /** [SD-ID, [[PARAM-NAME, value], …]] elements, in order. */
  structuredData?: [string, [string, string][]][];
  /** UTF-8 text; sent after a BOM, as RFC 5424 §6.4 asks for UTF-8 MSG. */
  message?: string;
}

const NIL = '-';
const BOM = '\uFEFF';

/** PRINTUSASCII (33–126) of at most `max` characters; anything else becomes `_`; empty → NILVALUE. */
function header(v: string | undefined, max: number): string {
  if (v === undefined || v === '') return NIL;
  return v.replace(/[^!-~]/g, '_').slice(0, max);
}

/** SD-NAME: PRINTUSASCII except `=`, space, `]` and `"`, at most 32. */
function sdName(v: string): string {
  const s = v.replace(/[^!#-<>-\\^-~]/g, '_').slice(0, 32);
  if (s === '') throw new Error('an SD-ID or PARAM-NAME must not be empty');
  return s;
}

/** PARAM-VALUE: `"`, `\` and `]` escaped with a backslash (§6.3.3). */
const paramValue = (v: string) => v.replace(/["\\\]]/g, (c) => `\\${c}`);

export function formatRfc5424(m: SyslogMessage): string {
  if (!Number.isInteger(m.facility) || m.facility < 0 || m.facility > 23) throw new Error('facility must be 0 to 23');
  if (!Number.isInteger(m.severity) || m.severity < 0 || m.severity > 7) throw new Error('severity must be 0 to 7');
  const sd = m.structuredData?.length
    ? m.structuredData.map(([id, params]) => `[${sdName(id)}${params.map(([k, v]) => ` ${sdName(k)}="${paramValue(v)}"`).join('')}]`).join('')
    : NIL;
  const head = `<${m.facility * 8 + m.severity}>1 ${m.timestamp ?? NIL} ${header(m.hostname, 255)} ${header(m.appName, 48)} ${header(m.procId, 128)} ${header(m.msgId, 32)} ${sd}`;
  return m.message === undefined ? head : `${head} ${BOM}${m.message}`;
}

/** RFC 5425 §4.3: MSG-LEN SP SYSLOG-MSG, the length in octets. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
