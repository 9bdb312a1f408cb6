import net from 'node:net';

/**
 * Makes "nothing reaches the internet" checkable: any TCP connection to a host other than the
 * loopback fails loudly instead of leaving the machine (e.g. an SDK probing a metadata endpoint).
 * Imported by the cloud KMS tests and the benchmark.
 */
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '::ffff:127.0.0.1']);
const original = net.Socket.prototype.connect;
let installed = false;

export function denyNonLoopback(): void {
  if (installed) return;
  installed = true;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const host = destination(args);
    if (!LOOPBACK.has(host)) throw new Error(`offline test tried to connect to ${host}`);
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof net.Socket.prototype.connect;
}

/** connect(options) | connect(port, host?) | connect(path); node passes [options, cb] internally too. */
function destination(args: unknown[]): string {
  let first = args[0];
  if (Array.isArray(first)) first = first[0];
  if (typeof first === 'object' && first !== null) {
    const o = first as { host?: string; path?: string };
    return o.path ? 'localhost' : (o.host ?? 'localhost');
  }
  if (typeof first === 'number') return typeof args[1] === 'string' ? args[1] : 'localhost';
  return 'localhost'; // a unix socket path
}
