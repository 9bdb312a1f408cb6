import { createDecipheriv, createCipheriv, generateKeyPair as nodeGenerateKeyPair, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { KeyService } from '../../server/keys/key-service';
import { USER_KEY_ALGORITHMS } from '../../server/config/core';
import { createTestContext } from '../support/context';
import { measure, type Figure } from './measure';

const generate = promisify(nodeGenerateKeyPair);
const op = { actor: 'bench' };

/** Key-service figures with the local adapter on the embedded database, next to bare primitives. */
export async function benchCore(): Promise<Figure[]> {
  const ctx = await createTestContext('sqlite');
  const figures: Figure[] = [];
  try {
    const user = await ctx.keys.provisionUser({ userName: 'bench-user' }, op);
    figures.push(await measure('password-key unwrap via key service (local KEK, audited, SQLite)', async () => (await ctx.keys.unwrapPasswordKey(user.id, op)).fill(0)));

    // The limit: the same AES-256-GCM open with nothing around it.
    const key = randomBytes(32);
    const iv = randomBytes(12);
    const aad = Buffer.from('{"purpose":"password-key","user":"x"}');
    const c = createCipheriv('aes-256-gcm', key, iv).setAAD(aad);
    const ct = Buffer.concat([c.update(randomBytes(32)), c.final()]);
    const tag = c.getAuthTag();
    figures.push(
      await measure('bare AES-256-GCM unwrap (the limit)', async () => {
        const d = createDecipheriv('aes-256-gcm', key, iv).setAAD(aad).setAuthTag(tag);
        Buffer.concat([d.update(ct), d.final()]).fill(0);
      }),
    );

    let n = 0;
    for (const alg of USER_KEY_ALGORITHMS) {
      const keys = new KeyService(ctx.store, ctx.kms, { kekUri: ctx.config.kms.kekUri, kekMode: 'shared', userKeyAlgorithm: alg });
      const heavy = alg === 'rsa-4096' || alg === 'rsa-3072';
      figures.push(await measure(`user provisioning, ${alg} (keys + wrap + transaction)`, () => keys.provisionUser({ userName: `b-${alg}-${n++}` }, op), { seconds: heavy ? 6 : 2, concurrency: 2 }));
      const [type, param] = alg.split('-');
      figures.push(
        await measure(`bare ${alg} key generation (the limit)`, () =>
          type === 'rsa' ? generate('rsa', { modulusLength: Number(param) }) : generate('ec', { namedCurve: param === 'p384' ? 'P-384' : 'P-256' }), { seconds: heavy ? 6 : 2, concurrency: 2 }),
      );
    }
  } finally {
    await ctx.cleanup();
  }
  return figures;
}
