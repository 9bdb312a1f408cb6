import { connect, type TLSSocket } from 'node:tls';
import type { AuditEventRow } from '../../entities';
import type { SyslogSettings } from '../config/audit';
import type { AuditSink } from './forward-sinks';
import { formatRfc5424, octetFrame } from './forward-syslog-format';
import { auditEventJson } from './search';

/** Severity by outcome: a refusal is a warning (someone was denied), a failure an error. */
const SEVERITY = { success: 6, refused: 4, failure: 3 } as const;

export interface SyslogTlsOptions {
  connectTimeoutMs?: number;
  /**
   * How long the connection must stay up after a batch was written before it counts as delivered.
   * RFC 5425 has no acknowledgement: a receiver that dies with our bytes unread resets the
   * connection, which shows here within a round trip; the forwarder then resends from its cursor.
   */
  confirmMs?: number;
}

/** One RFC 5424 message per event, RFC 5425 octet-counted over one long-lived TLS connection. */
export class SyslogTlsSink implements AuditSink {
  /** Set while connecting too, so close() can cut a handshake that hangs. */
  private socket?: TLSSocket;
  private ready = false;
  private broken?: Error;

  constructor(
    readonly name: string,
    private readonly host: string,
    private readonly port: number,
    private readonly settings: SyslogSettings,
    private readonly opts: SyslogTlsOptions = {},
  ) {}

  /** The RFC 5424 message for one event: the event's JSON as MSG, its main fields as structured data when an SD-ID is set. */
  message(r: AuditEventRow): string {
    const j = auditEventJson(r);
    const sd: [string, string][] = [];
    for (const k of ['seq', 'actor', 'action', 'outcome', 'targetType', 'targetId', 'requestId'] as const) if (j[k] !== null) sd.push([k, String(j[k])]);
    return formatRfc5424({
      facility: this.settings.facility,
      severity: SEVERITY[r.outcome] ?? 5,
      timestamp: r.at,
      hostname: this.settings.hostname,
      appName: this.settings.appName,
      procId: String(process.pid),
      msgId: r.action,
      structuredData: this.settings.sdId ? [[this.settings.sdId, sd]] : undefined,
      message: JSON.stringify(j),
    });
  }

  async send(rows: AuditEventRow[]): Promise<void> {
    const socket = await this.connected();
    const frames = Buffer.concat(rows.map((r) => octetFrame(this.message(r))));
    await new Promise<void>((resolve, reject) => socket.write(frames, (err) => (err ? reject(err) : resolve())));
    await new Promise((r) => setTimeout(r, this.opts.confirmMs ?? 250));
    if (this.socket !== socket || this.broken || socket.destroyed) throw this.broken ?? new Error('the syslog connection closed');
  }

  private connected(): Promise<TLSSocket> {
    if (this.socket && this.ready && !this.broken && !this.socket.destroyed) return Promise.resolve(this.socket);
    this.drop();
    return new Promise<TLSSocket>((resolve, reject) => {
      const s = (this.socket = connect({
        host: this.host,
        port: this.port,
        servername: /^[\d.:]+$/.test(this.host) ? undefined : this.host,
        ca: this.settings.ca,
        cert: this.settings.cert,
        key: this.settings.key,
        // Always verified: an audit stream to an impostor would leak who opened which key.
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      }));
      const timer = setTimeout(() => s.destroy(Object.assign(new Error(`TLS connection to ${this.host}:${this.port} timed out`), { code: 'ETIMEDOUT' })), this.opts.connectTimeoutMs ?? 10_000);
      s.once('secureConnect', () => {
        clearTimeout(timer);
        this.ready = true;
        resolve(s);
      });
      // State belongs to the current socket: a dropped one closing late must not mark its successor broken.
      s.on('error', (err) => {
        clearTimeout(timer);
        if (this.socket === s) this.broken = err;
        reject(err);
      });
      s.on('close', () => {
        clearTimeout(timer);
        if (this.socket === s) this.broken ??= new Error('the syslog server closed the connection');
        reject(new Error('the connection closed before the TLS handshake completed'));
      });
      // A receiver sends nothing back in RFC 5425; read and drop whatever comes so the socket never stalls.
      s.on('data', () => undefined);
    });
  }

  private drop(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.ready = false;
    this.broken = undefined;
  }

  async close(): Promise<void> {
    const s = this.socket;
    const ready = this.ready;
    this.socket = undefined;
    this.ready = false;
    if (!s || s.destroyed) return;
    if (!ready) return void s.destroy();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, 2000);
      s.end(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
