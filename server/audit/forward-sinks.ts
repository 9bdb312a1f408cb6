import { open } from 'node:fs/promises';
import type { AuditEventRow } from '../../entities';
import { auditEventJson } from './search';

/**
 * Where forwarded audit events go. `send` resolves only once the events are handed over as
 * durably as the sink allows; the forwarder advances its cursor after that, never before.
 */
export interface AuditSink {
  /** The cursor's key in audit_forward_cursors (stdout, file:/path, syslog+tls://host:port). */
  readonly name: string;
  send(rows: AuditEventRow[]): Promise<void>;
  close(): Promise<void>;
}

const jsonLines = (rows: AuditEventRow[]) => rows.map((r) => `${JSON.stringify(auditEventJson(r))}\n`).join('');

/**
 * JSON lines appended to a file. The file is opened for each batch (O_APPEND) and synced before the
 * cursor moves: after logrotate renames it, the next batch starts the new file (rotation-safe,
 * no signal needed), and copytruncate is fine too. A line is never split across files.
 */
export class FileSink implements AuditSink {
  constructor(
    readonly name: string,
    private readonly path: string,
  ) {}

  async send(rows: AuditEventRow[]): Promise<void> {
    const f = await open(this.path, 'a', 0o600);
    try {
      await f.write(jsonLines(rows));
      await f.datasync();
    } finally {
      await f.close();
    }
  }

  async close(): Promise<void> {}
}

/** JSON lines on standard output (containers whose log collector reads stdout). */
export class StdoutSink implements AuditSink {
  readonly name = 'stdout';

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {}

  send(rows: AuditEventRow[]): Promise<void> {
    return new Promise((resolve, reject) => this.out.write(jsonLines(rows), (err) => (err ? reject(err) : resolve())));
  }

  async close(): Promise<void> {}
}
