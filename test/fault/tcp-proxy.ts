import net from 'node:net';

/**
 * A TCP hop in front of a KMS emulator or a database, so a test can make it misbehave at the wire:
 *  - 'up': bytes flow both ways;
 *  - 'hung': connections (new and kept-alive) are accepted and then nothing is ever answered;
 *  - 'killed': the port stops listening and open connections are reset, as when the process dies.
 * `restore()` brings it back on the same port.
 */
export class TcpProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private mode: 'up' | 'hung' | 'killed' = 'up';
  port = 0;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<this> {
    await this.listen();
    return this;
  }

  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  hang(): void {
    this.mode = 'hung';
  }

  async kill(): Promise<void> {
    this.mode = 'killed';
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }

  async restore(): Promise<void> {
    // Requests held while hung never reach the KMS; their clients gave up long ago.
    for (const s of this.sockets) s.destroy();
    this.mode = 'up';
    if (!this.server) await this.listen();
  }

  async close(): Promise<void> {
    await this.kill();
  }

  private listen(): Promise<void> {
    const server = net.createServer((client) => this.relay(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        this.port = (server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private relay(client: net.Socket): void {
    const upstream = net.connect(this.upstreamPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const forget = () => {
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (d) => this.mode === 'up' && upstream.write(d));
    upstream.on('data', (d) => this.mode === 'up' && client.write(d));
    client.on('close', forget).on('error', forget);
    upstream.on('close', forget).on('error', forget);
  }
}
