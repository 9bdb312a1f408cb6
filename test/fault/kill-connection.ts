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
