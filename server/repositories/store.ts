import type { DataSource, EntityManager } from 'typeorm';
import { UsersRepository } from './users';
import { GroupsRepository, MembershipsRepository } from './groups';
import { KeksRepository } from './keks';
import { AuditRepository } from './audit';
import { AuthCodesRepository, SamlRequestsRepository, SigningKeysRepository } from './sign-in';
import { UserLookupRepository } from './user-lookup';

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
  readonly userLookup: UserLookupRepository;

  constructor(readonly manager: EntityManager) {
    this.users = new UsersRepository(manager);
    this.groups = new GroupsRepository(manager);
    this.memberships = new MembershipsRepository(manager);
    this.keks = new KeksRepository(manager);
    this.audit = new AuditRepository(manager);
    this.samlRequests = new SamlRequestsRepository(manager);
    this.authCodes = new AuthCodesRepository(manager);
    this.signingKeys = new SigningKeysRepository(manager);
    this.userLookup = new UserLookupRepository(manager);
  }
}

export class Store {
  readonly repos: Repos;
  /** SQLite has one connection: transactions must not interleave on it, so they queue. */
  private sqliteQueue: Promise<unknown> = Promise.resolve();

  constructor(readonly dataSource: DataSource) {
    this.repos = new Repos(dataSource.manager);
  }

  get driver(): string {
    return this.dataSource.options.type;
  }

  transaction<T>(fn: (tx: Repos) => Promise<T>): Promise<T> {
    const run = () => this.dataSource.transaction((m) => fn(new Repos(m)));
    if (this.driver !== 'better-sqlite3') return run();
    const next = this.sqliteQueue.then(run, run);
    this.sqliteQueue = next.catch(() => undefined);
    return next;
  }

  async ping(): Promise<void> {
    await this.dataSource.query('SELECT 1');
  }

  /** True when migrations exist that the database has not applied. */
  async hasPendingMigrations(): Promise<boolean> {
    return this.dataSource.showMigrations();
  }

  async migrate(): Promise<string[]> {
    const applied = await this.dataSource.runMigrations({ transaction: 'each' });
    return applied.map((m) => m.name);
  }

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
  }
}
