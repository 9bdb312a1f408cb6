import { EntitySchema } from 'typeorm';
import { ref, str, timestamp } from './columns';

/**
 * KEKs this server created or uses. A per-user KEK is recorded as `pending` before it is used,
 * so a provisioning that fails afterwards leaves a visible orphan to clean up, not a silent one.
 */
export type KekState = 'pending' | 'active' | 'retired';

export interface KekRow {
  uri: string;
  scheme: string;
  ownerType: string | null;
  ownerId: string | null;
  state: KekState;
  createdAt: string;
}

export const KekEntity = new EntitySchema<KekRow>({
  name: 'Kek',
  tableName: 'keks',
  columns: {
    uri: { ...str('uri', 512), primary: true },
    scheme: str('scheme', 32),
    ownerType: str('owner_type', 16, true),
    ownerId: ref('owner_id', true),
    state: str('state', 16),
    createdAt: timestamp('created_at'),
  },
});
