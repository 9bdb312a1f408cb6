import { AsyncLocalStorage } from 'node:async_hooks';
import type { DataSource, EntityManager } from 'typeorm';
import { UsersRepository } from './users';
import { GroupsRepository, MembershipsRepository } from './groups';
import { KeksRepository } from './keks';
import { AuditRepository, auditRow, type AuditInput } from './audit';
import { GroupCommit } from './group-commit';
import { hotQueries, type HotQueries } from './hot-queries';
import type { CheckpointLog } from './sqlite-checkpoint';
import type { AuditEventRow, UserKeysRow, UserRow } from '../../entities';
import { AuthCodesRepository, SamlRequestsRepository, SigningKeysRepository } from './sign-in';
import { withMigrationLock } from './migration-lock';
import { databaseUnavailable, DEFAULT_POOL, guardPool, poolTimeout, PoolWatch, sqliteLocked, type PoolSettings } from './pool-guard';
import { connectionLost, sqliteBusy } from './db-errors';

const ignore = () => undefined;

/**
 * The first statement of every SQLite transaction: a write that changes nothing, so the transaction
 * holds SQLite's write lock from its start (as BEGIN IMMEDIATE would; TypeORM only issues a deferred
 * BEGIN). A deferred transaction that read first and wrote after another process (a second worker,
 * CS_WORKERS) had committed failed at once with SQLITE_BUSY: 12 concurrent group re-keys over two
 * workers answered one of them 503 "database is busy" within 300 ms. Now it waits for the lock
 * (busy_timeout) and reads what the other process committed.
 */
const SQLITE_WRITE_LOCK = 'UPDATE audit_chain_head SET id = id WHERE 0';

/** How long a migration waits for another process's migration to finish before giving up. */
const MIGRATION_LOCK_WAIT_S = 300;

/** Repositories bound to one EntityManager: the default one, or a transaction's. */
export class Repos {
  readonly users: UsersRepository;
  readonly groups: GroupsRepository;
  readonly memberships: MembershipsRepository;
  readonly keks: KeksRepository;
  readonly audit: AuditRepository;
  readonly samlRequests: SamlRequestsRepository;
  readonly authCodes: AuthCodesRepository;
  readonly signingKeys: SigningKeysRepository;

  constructor(readonly manager: EntityManager) {
    this.users = new UsersRepository(manager);
    this.groups = new GroupsRepository(manager);
    this.memberships = new MembershipsRepository(manager);
    this.keks = new KeksRepository(manager);
    this.audit = new AuditRepository(manager);
    this.samlRequests = new SamlRequestsRepository(manager);
    this.authCodes = new AuthCodesRepository(manager);
    this.signingKeys = new SigningKeysRepository(manager);
  }
}

export class Store {
  readonly repos: Repos;
  /**
   * SQLite has one connection: transactions must not interleave on it, so they queue. A write
   * outside `transaction()` would land inside whichever transaction is open on that connection,
   * so services write through `transaction()` even for a single row.
   */
  private sqliteQueue: Promise<unknown> = Promise.resolve();
  /** The transaction the current async call chain runs in, if any. */
  private readonly current = new AsyncLocalStorage<Repos>();
  /** Waits for a connection (or SQLite's queue), for liveness. */
  readonly poolWatch = new PoolWatch();
  private hotQueries?: HotQueries;
  private auditBatch?: GroupCommit<AuditEventRow>;
  private readonly closeHooks: (() => Promise<void>)[] = [];

  constructor(
    readonly dataSource: DataSource,
    private readonly pool: PoolSettings = DEFAULT_POOL,
    /** Where the SQLite checkpoint thread tells its failures (the app's logger). */
    private readonly log?: CheckpointLog,
  ) {
    this.repos = new Repos(dataSource.manager);
    if (dataSource.isInitialized) guardPool(dataSource, pool, this.poolWatch);
  }

  get driver(): string {
    return this.dataSource.options.type;
  }

  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T> {
    const sqlite = this.driver === 'better-sqlite3';
    const run = () =>
      this.dataSource.transaction(async (m) => {
        if (sqlite) await m.query(SQLITE_WRITE_LOCK);
        const tx = new Repos(m);
        const result = await this.current.run(tx, () => fn(tx));
        // Audit rows lock the chain head last, right before commit (server/audit/chain.ts).
        await tx.audit.flush();
        return result;
      });
    return sqlite ? this.inSqliteTurn(run) : run().catch((err: unknown) => this.mapped(err));
  }

  private mapped(err: unknown): never {
    // A connection lost mid-transaction: ROLLBACK or COMMIT failed with it.
    if (connectionLost(err)) throw databaseUnavailable(err);
    if (sqliteBusy(err)) throw sqliteLocked(this.pool.acquireTimeoutMs);
    throw err;
  }

  /**
   * Runs `run` when SQLite's single connection is free (no transaction of another call chain open).
   * The queue is SQLite's pool of one: work waits for its turn as long as a pooled connection
   * would, then gets the same 503 and never runs.
   */
  private inSqliteTurn<T>(run: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const end = this.poolWatch.begin();
      let gaveUp = false;
      const timer = setTimeout(() => {
        gaveUp = true;
        end('gave-up');
        reject(poolTimeout(this.pool.acquireTimeoutMs));
      }, this.pool.acquireTimeoutMs);
      const turn = async () => {
        clearTimeout(timer);
        if (gaveUp) return;
        end('acquired');
        // Started at once (no microtask in between); a synchronous throw (a statement that cannot
        // be prepared) must reject the caller, not leave it waiting forever.
        let work: Promise<T>;
        try {
          work = run();
        } catch (err) {
          work = Promise.reject(err);
        }
        await work.catch((err: unknown) => this.mapped(err)).then(resolve, reject);
      };
      this.sqliteQueue = this.sqliteQueue.then(turn, turn);
    });
  }

  /** Whether the current async call chain runs inside `transaction()`. */
  get inTransaction(): boolean {
    return this.current.getStore() !== undefined;
  }

  private get insideSqliteTransaction(): Repos | undefined {
    return this.driver === 'better-sqlite3' ? this.current.getStore() : undefined;
  }

  /**
   * A write that must hold even if the caller's transaction rolls back (a failure's audit event).
   * Inside a SQLite transaction it cannot run now without deadlocking the single connection, so it
   * is queued to run right after that transaction ends.
   */
  async writeRegardless(fn: (tx: Repos) => Promise<unknown>): Promise<void> {
    if (this.insideSqliteTransaction) {
      void this.transaction(fn).catch(() => undefined);
      return;
    }
    await this.transaction(fn);
  }

  /** A write committed before the caller goes on: on its own, or (SQLite) joining the open transaction. */
  writeNow<T>(fn: (tx: Repos) => Promise<T>): Promise<T> {
    const tx = this.insideSqliteTransaction;
    return tx ? fn(tx) : this.transaction(fn);
  }

  /** Records an audit event that must stand whatever happens to the caller's transaction. */
  audit(e: AuditInput): Promise<void> {
    return this.writeRegardless((t) => t.audit.append(e));
  }

  /**
   * Records an audit event and resolves once it is committed — group-committed with the events of
   * concurrent requests (one transaction for all; if it fails, every waiter gets its error).
   * Inside a transaction it joins it (SQLite) or writes on its own as `writeNow` does.
   */
  auditCommitted(e: AuditInput): Promise<void> {
    if (this.inTransaction || !this.dataSource.isInitialized) return this.writeNow((t) => t.audit.append(e));
    this.auditBatch ??= new GroupCommit<AuditEventRow>((rows) =>
      this.driver === 'better-sqlite3' ? this.inSqliteTurn(() => this.hot.insertAudit(rows)) : this.hot.insertAudit(rows),
    );
    return this.auditBatch.add(auditRow(e));
  }

  /**
   * A new user's rows and audit row in one transaction on the driver (hot-queries.ts createUser),
   * for a create that writes nothing else. Not inside `transaction()`: it is a transaction of its own
   * (on SQLite it waits for the write turn the caller would be holding).
   */
  createUser(user: UserRow, keys: UserKeysRow, audit: AuditEventRow): Promise<void> {
    if (this.inTransaction) throw new Error('Store.createUser runs its own transaction: call it outside transaction()');
    return this.driver === 'better-sqlite3' ? this.inSqliteTurn(() => this.hot.createUser(user, keys, audit)) : this.hot.createUser(user, keys, audit);
  }

  /** Raw statements for the key API's hot path (hot-queries.ts), built on first use. */
  get hot(): HotQueries {
    return (this.hotQueries ??= hotQueries(this.dataSource, this, this.log));
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /**
   * True when migrations exist that the database has not applied. Under the migration lock too:
   * on a fresh database it creates the bookkeeping table, which races like any other DDL.
   */
  async hasPendingMigrations(): Promise<boolean> {
    return withMigrationLock(this.dataSource, MIGRATION_LOCK_WAIT_S, () => this.dataSource.showMigrations());
  }

  /** Applies pending migrations; concurrent runs (other replicas) wait for the lock, then find none. */
  async migrate(): Promise<string[]> {
    const applied = await withMigrationLock(this.dataSource, MIGRATION_LOCK_WAIT_S, () => this.dataSource.runMigrations({ transaction: 'each' }));
    return applied.map((m) => m.name);
  }

  /** Work to finish before the pool closes (audit rows still held in memory, e.g. suppressed-refusal counts). */
  beforeClose(hook: () => Promise<void>): void {
    this.closeHooks.push(hook);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.closeHooks.splice(0).map((h) => h()));
    // SQLite: writes queued behind a transaction (writeRegardless's failure records) land first.
    await this.sqliteQueue.then(ignore, ignore);
    await this.auditBatch?.idle();
    await this.hotQueries?.close();
    this.hotQueries = undefined;
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
