import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import type { EntityManager } from 'typeorm';

/** The server-side id of the connection a manager runs on (PostgreSQL backend pid, MariaDB connection id). */
export async function backendId(kind: 'postgres' | 'mariadb', m: EntityManager): Promise<number> {
  return Number((await m.query(kind === 'postgres' ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id'))[0].id);
}

/** Kills that connection from outside, as a failover, a restart or an operator's kill would. */
export async function killBackend(kind: 'postgres' | 'mariadb', url: string, id: number): Promise<void> {
  if (kind === 'postgres') {
    const c = new Client({ connectionString: url });
    await c.connect();
    try {
      await c.query('SELECT pg_terminate_backend($1)', [id]);
    } finally {
      await c.end();
    }
  } else {
    const c = await createConnection(url);
    try {
      await c.query(`KILL ${id}`);
    } finally {
      await c.end();
    }
  }
}

/**
 * Sends a request during which the first call of a repository method kills the connection it ran
 * on, right after the method's statements (the driver is given 100 ms to see the socket close): the
 * database drops the request's transaction in its middle. Checks that the kill happened and that the
 * answer came promptly (within 5 s), and returns it. The repository keeps its EntityManager as `m`.
 */
export async function sentWhileDropping<P extends object, R>(kind: 'postgres' | 'mariadb', url: string, prototype: P, method: keyof P & string, send: () => PromiseLike<R>): Promise<R> {
  const original = prototype[method] as unknown as (...args: unknown[]) => Promise<unknown>;
  let killed = false;
  const spy = jest.spyOn(prototype as Record<string, (...args: unknown[]) => Promise<unknown>>, method).mockImplementation(async function (this: { m: EntityManager }, ...args: unknown[]) {
    const result = await original.apply(this, args);
    if (!killed) {
      killed = true;
      await killBackend(kind, url, await backendId(kind, this.m));
      await new Promise((r) => setTimeout(r, 100));
    }
    return result;
  });
  try {
    const start = performance.now();
    const res = await send();
    expect(performance.now() - start).toBeLessThan(5000);
    expect(killed).toBe(true);
    return res;
  } finally {
    spy.mockRestore();
  }
}
