/**
 * Idempotency-Key records of the backend API (backend/idempotency.ts). `status` is null while the
 * first request with the key is still running; then it holds the response that is replayed.
 */
import { EntitySchema } from 'typeorm';
import { int, str, text, timestamp } from './columns';

export interface IdempotencyRow {
  tokenId: string;
  idemKey: string;
  /** SHA-256 (hex) of method, path and body: the same key with another request is refused. */
  requestHash: string;
  status: number | null;
  response: string | null;
  createdAt: string;
  expiresAt: string;
}

export const IdempotencyEntity = new EntitySchema<IdempotencyRow>({
  name: 'BackendIdempotencyKey',
  tableName: 'backend_idempotency_keys',
  columns: {
    tokenId: { ...str('token_id', 32), primary: true },
    idemKey: { ...str('idem_key', 255), primary: true },
    requestHash: str('request_hash', 64),
    status: { ...int('status'), nullable: true },
    response: text('response', true),
    createdAt: timestamp('created_at'),
    expiresAt: timestamp('expires_at'),
  },
});
