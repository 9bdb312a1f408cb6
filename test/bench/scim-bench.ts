import { ownWrites } from '../../server/repositories/runner';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from '../../server/http/app';
import { KeyService } from '../../server/keys/key-service';
import { USER_KEY_ALGORITHMS } from '../../server/config/core';
import { nowIso } from '../../entities/columns';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { createTestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';
import { measure, type Figure } from './measure';

export interface ScimBenchOptions {
  database?: DatabaseName;
  /** Users seeded for the filter figures. */
  users?: number;
  seconds?: number;
}

const USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

/**
 * SCIM figures over real HTTP (keep-alive fetch against the listening Express app):
 * user creates per second with keys for each key algorithm, create latency under sustained
 * provisioning (4 in flight), and filter/list queries per second over `users` (10,000) users.
 * Rate limiting is off so it measures the endpoint, not the limiter. Measures; never asserts.
 */
export async function benchScim(opts: ScimBenchOptions = {}): Promise<Figure[]> {
  const seconds = opts.seconds ?? 3;
  const ctx = await createTestContext(opts.database ?? 'sqlite', { CS_SCIM_RATE_LIMIT_PER_MINUTE: '0' });
  const figures: Figure[] = [];
  const servers: Server[] = [];
  const listen = async (keys: KeyService): Promise<string> => {
    const server = createApp({ ...ctx, keys }).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/scim/v2`;
  };
  try {
    const { token } = await new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m))).create({ name: 'bench', scope: 'scim' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/scim+json' };
    let n = 0;
    const create = (base: string) => async () => {
      const userName = `bench-${n++}-${randomUUID().slice(0, 8)}@bench.example`;
      const res = await fetch(`${base}/Users`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ schemas: [USER], userName, active: true, name: { givenName: 'B', familyName: 'Ench' }, emails: [{ value: userName, type: 'work', primary: true }] }),
      });
      await res.arrayBuffer();
      if (res.status !== 201) throw new Error(`create answered ${res.status}`);
    };

    for (const alg of USER_KEY_ALGORITHMS) {
      const keys = new KeyService(ctx.store, ctx.kms, { kekUri: ctx.config.kms.kekUri, kekMode: 'shared', userKeyAlgorithm: alg });
      const base = await listen(keys);
      const heavy = alg === 'rsa-3072' || alg === 'rsa-4096';
      figures.push(await measure(`SCIM POST /Users with keys, ${alg} (2 in flight)`, create(base), { seconds: heavy ? seconds * 2 : seconds, concurrency: 2 }));
    }

    const base = await listen(ctx.keys);
    figures.push(await measure(`SCIM POST /Users sustained, ${ctx.config.keys.userKeyAlgorithm} (4 in flight): latency`, create(base), { seconds: seconds * 2, concurrency: 4 }));

    // Seed the rest of the users straight through the repositories (the keys are realistic in
    // size but shared: these figures are about the queries, not key generation).
    const target = opts.users ?? 10_000;
    const existing = await ctx.store.repos.users.count();
    const sample = (await ctx.store.repos.users.findKeysMany([(await ctx.store.dataSource.manager.query('SELECT id FROM users LIMIT 1'))[0].id]))[0];
    for (let i = existing; i < target; ) {
      const batch = Math.min(500, target - i);
      await ctx.store.transaction(async (tx) => {
        for (let j = 0; j < batch; j++, i++) {
          const id = randomUUID();
          const now = nowIso();
          const userName = `user${String(i).padStart(5, '0')}@seed.example`;
          await tx.users.insert(
            {
              id,
              userName,
              userNameNorm: userName,
              externalId: `ext-${i}`,
              displayName: `Seed User ${i}`,
              email: userName,
              givenName: `Seed${i % 100}`,
              familyName: `User${i % 37}`,
              active: i % 10 !== 0,
              scimAttributes: JSON.stringify({ userName, name: { givenName: `Seed${i % 100}`, familyName: `User${i % 37}` }, emails: [{ value: userName, type: 'work', primary: true }] }),
              createdAt: now,
              updatedAt: now,
              deletedAt: null,
              version: 1,
            },
            { ...sample, userId: id, createdAt: now },
          );
        }
      });
    }
    const total = await ctx.store.repos.users.count();
    const get = (path: string) => async () => {
      const res = await fetch(`${base}${path}`, { headers });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${path} answered ${res.status}`);
    };
    const f = (s: string) => encodeURIComponent(s);
    let k = 0;
    figures.push(await measure(`filter userName eq (${total} users)`, () => get(`/Users?filter=${f(`userName eq "user${String(k++ % target).padStart(5, '0')}@seed.example"`)}`)(), { seconds, concurrency: 4 }));
    figures.push(await measure(`filter externalId eq (${total} users)`, () => get(`/Users?filter=${f(`externalId eq "ext-${k++ % target}"`)}`)(), { seconds, concurrency: 4 }));
    figures.push(await measure(`filter userName sw, count=10 (${total} users)`, get(`/Users?filter=${f('userName sw "user012"')}&count=10`), { seconds, concurrency: 4 }));
    figures.push(await measure(`filter name.familyName eq and active eq false, count=50 (${total} users)`, get(`/Users?filter=${f('name.familyName eq "user7" and active eq false')}&count=50`), { seconds, concurrency: 4 }));
    figures.push(await measure(`list page startIndex=5000 count=100 sortBy=userName (${total} users)`, get('/Users?startIndex=5000&count=100&sortBy=userName'), { seconds, concurrency: 4 }));
  } finally {
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
    await ctx.cleanup();
  }
  return figures;
}
