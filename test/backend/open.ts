import type { JWK } from 'jose';
import { openUnderSymmetricKey, openWithPrivateKey } from '../../server/keys/jose-keys';
import type { KeyService } from '../../server/keys/key-service';

/** Opens a member JWE as that member's client would: password key (KMS) → private key → membership key. */
export async function openAsMember(keys: KeyService, userId: string, memberJwe: string): Promise<Buffer> {
  const bundle = await keys.getUserKeyBundle(userId, { actor: 'test' });
  try {
    const privateJwk: JWK = await openUnderSymmetricKey(bundle.privateJwe, bundle.passwordKey);
    return await openWithPrivateKey(memberJwe, privateJwk);
  } finally {
    bundle.passwordKey.fill(0);
  }
}
