import { createSoftHsm } from '../support/softhsm';
import { createTestContext } from '../support/context';
import { measure, type Figure } from './measure';

/** Password-key unwraps through the key service (audit write included) with a SoftHSM2 KEK. */
export async function benchPkcs11KeyService(): Promise<Figure[]> {
  const hsm = createSoftHsm(['cs-ks-bench']);
  try {
    const env = { CS_PKCS11_MODULE: hsm.module, CS_PKCS11_PIN: hsm.pin, CS_PKCS11_TOKEN: 'cs-ks-bench' };
    const setup = await createTestContext('sqlite', { ...env, CS_KEK_URI: 'pkcs11:token=cs-ks-bench;object=unused' });
    const kekUri = await setup.kms.forUri('pkcs11:').createKey!('ks-bench');
    await setup.cleanup();
    const ctx = await createTestContext('sqlite', { ...env, CS_KEK_URI: kekUri });
    try {
      const user = await ctx.keys.provisionUser({ userName: 'bench' }, { actor: 'bench' });
      return [
        await measure('password-key unwrap via key service (PKCS#11 SoftHSM2 KEK, audited, SQLite)', async () =>
          (await ctx.keys.unwrapPasswordKey(user.id, { actor: 'bench' })).fill(0),
        ),
        await measure('user provisioning, ec-p256 (PKCS#11 SoftHSM2 KEK)', () => ctx.keys.provisionUser({ userName: `b-${Math.random()}` }, { actor: 'bench' }), { concurrency: 2 }),
      ];
    } finally {
      await ctx.cleanup();
    }
  } finally {
    hsm.cleanup();
  }
}
