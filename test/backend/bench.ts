/**
 * Backend API figures (issue 11), printed, never asserted:
 *   node -r ./test/fault/ts-register.js -r ./test/backend/bench-register.js test/backend/bench.ts [sqlite|postgres|mariadb] [seconds]
 * - application-managed group creation with 10 members per second over real HTTP, next to the
 *   bare limit of the same crypto work (key pair, private-key JWE, one local-KMS wrap, 10 member JWEs);
 * - batched public-key lookups (100 userNames per call) per second, next to the bare query.
 */
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { BackendQueries } from '../../backend/repositories/backend-queries';
import { binding } from '../../server/keys/binding';
import { generateKeyPair, sealToPublicKey, sealUnderSymmetricKey } from '../../server/keys/jose-keys';
import { ApiTokenRepository } from '../../scim/repositories/api-tokens';
import { TokenService } from '../../scim/tokens';
import { ownWrites } from '../../server/repositories/runner';
import { measure, printFigures, type Figure } from '../bench/measure';
import { createTestContext } from '../support/context';
import type { DatabaseName } from '../support/databases';

async function main(): Promise<void> {
  const kind = (process.argv[2] ?? 'sqlite') as DatabaseName;
  const seconds = Number(process.argv[3] ?? 3);
  const ctx = await createTestContext(kind);
  const server = ctx.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/backend/v1`;
  const figures: Figure[] = [];
  try {
    const { token } = await new TokenService(ownWrites(ctx.store, (m) => new ApiTokenRepository(m))).create({ name: 'bench', scope: 'backend' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const post = async (path: string, body: unknown, expect: number) => {
      const res = await fetch(`${base}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      await res.arrayBuffer();
      if (res.status !== expect) throw new Error(`${path} answered ${res.status}`);
    };
    const users: string[] = [];
    for (let i = 0; i < 200; i++) {
      const res = await fetch(`${base}/users`, { method: 'POST', headers, body: JSON.stringify({ userName: `bench-${i}@bench.example`, email: `bench-${i}@bench.example` }) });
      users.push(((await res.json()) as { id: string }).id);
    }
    let n = 0;
    const members = () => Array.from({ length: 10 }, (_, i) => ({ id: users[(n * 10 + i) % users.length] }));
    figures.push(await measure('POST /backend/v1/groups, 10 members (4 in flight)', () => post('/groups', { name: `Folder ${n++}`, members: members() }, 201), { seconds, concurrency: 4 }));

    const kekUri = ctx.config.kms.kekUri;
    const alg = ctx.config.keys.userKeyAlgorithm;
    const memberKeys = (await ctx.store.repos.memberships.livePublicKeys(users.slice(0, 10))).values();
    const recipients = [...memberKeys].map((j) => JSON.parse(j));
    figures.push(
      await measure(`bare crypto of one 10-member group: ${alg} pair, JWE, local KMS wrap, 10 member JWEs (4 in flight; the limit)`, async () => {
        const pair = await generateKeyPair(alg);
        const gmk = randomBytes(32);
        await sealUnderSymmetricKey(pair.privateJwk, gmk);
        await ctx.kms.wrap(kekUri, gmk, binding.membershipKey('bench', 1));
        await Promise.all(recipients.map((r) => sealToPublicKey(gmk, r, { keyId: 'group:bench' })));
        gmk.fill(0);
      }, { seconds, concurrency: 4 }),
    );

    const names = Array.from({ length: 100 }, (_, i) => `BENCH-${(i * 7) % 200}@bench.example`);
    figures.push(await measure('POST /backend/v1/public-keys/lookup, 100 userNames per call (4 in flight)', () => post('/public-keys/lookup', { userNames: names }, 200), { seconds, concurrency: 4 }));
    const q = new BackendQueries(ctx.store.dataSource.manager);
    const norm = names.map((u) => u.toLowerCase());
    figures.push(await measure('bare query of the same 100 public keys (4 in flight; the limit)', () => q.activePublicKeys({ ids: [], userNamesNorm: norm, emailsLower: [] }), { seconds, concurrency: 4 }));
    printFigures(`Backend API (${kind}, local KEK, ${alg}) — node ${process.version}`, figures);
  } finally {
    await new Promise((r) => server.close(r));
    await ctx.cleanup();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
