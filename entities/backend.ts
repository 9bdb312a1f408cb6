/**
 * Idempotency-Key records of the backend API (backend/idempotency.ts). `status` is null while the
 * first request with the key is still running (`claimId` names it, `expiresAt` ends its lease); then
 * it holds the response that is replayed until `expiresAt`.
 */
import { EntitySchema } from 'typeorm';
import { int, str, text, timestamp } from './columns';

export interface IdempotencyRow {
  tokenId: string;
  idemKey: string;
  /** SHA-256 (hex) of method, path and body: the same key with another request is refused. */
  requestHash: string;
  /** Random id of the request holding the key (null on rows from before migration 1764790000000). */
  claimId: string | null;
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
    claimId: str('claim_id', 32, true),
    status: { ...int('status'), nullable: true },
    response: text('response', true),
    createdAt: timestamp('created_at'),
    expiresAt: timestamp('expires_at'),
  },
});
