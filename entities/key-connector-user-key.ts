import { EntitySchema } from 'typeorm';
import { str, text, timestamp } from './columns';

/**
 * A Bitwarden / Vaultwarden user's key held for the Key Connector API. `sub` is the identity
 * server's user id (a GUID, lower case); the key is only ever stored wrapped, bound to that sub.
 */
export interface KeyConnectorUserKeyRow {
  sub: string;
  /** Envelope (docs/wire-formats.md) under kekUri, bound to purpose key-connector-user-key and sub. */
  wrappedKey: string;
  kekUri: string;
  createdAt: string;
  revisedAt: string | null;
  lastAccessAt: string | null;
}

export const KeyConnectorUserKeyEntity = new EntitySchema<KeyConnectorUserKeyRow>({
  name: 'KeyConnectorUserKey',
  tableName: 'key_connector_user_keys',
  columns: {
    sub: { ...str('sub', 36), primary: true },
    wrappedKey: text('wrapped_key'),
    kekUri: str('kek_uri', 512),
    createdAt: timestamp('created_at'),
    revisedAt: timestamp('revised_at', true),
    lastAccessAt: timestamp('last_access_at', true),
  },
});
