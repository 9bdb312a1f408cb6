/**
 * Tables owned by the SCIM endpoint: bearer tokens (hashes only), the delivery outbox, and
 * rate-limit counters (in the database so every replica shares them). Timestamps are
 * varchar(24) ISO-8601 UTC strings like the core tables.
 */
import { EntitySchema } from 'typeorm';

export interface ApiTokenRow {
  id: string;
  name: string;
  scope: string;
  /** SHA-256 (hex) of the token's secret part. The token itself is shown once and never stored. */
  secret_hash: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  /** Client addresses (IPs or CIDR ranges, comma-separated) this token is accepted from; null: any. */
  allowed_addresses?: string | null;
}

export const ApiTokenEntity = new EntitySchema<ApiTokenRow>({
  name: 'ApiToken',
  tableName: 'api_tokens',
  columns: {
    id: { type: 'varchar', length: 32, primary: true },
    name: { type: 'varchar', length: 200 },
    scope: { type: 'varchar', length: 50 },
    secret_hash: { type: 'varchar', length: 64 },
    created_at: { type: 'varchar', length: 24 },
    last_used_at: { type: 'varchar', length: 24, nullable: true },
    expires_at: { type: 'varchar', length: 24, nullable: true },
    revoked_at: { type: 'varchar', length: 24, nullable: true },
    allowed_addresses: { type: 'varchar', length: 1000, nullable: true },
  },
});

export type OutboxStatus = 'pending' | 'delivered';

export interface OutboxRow {
  seq: number;
  /** Sent as webhook-id; the receiver de-duplicates on it (delivery is at least once). */
  event_id: string;
  resource_type: string;
  resource_id: string;
  event_type: string;
  payload: string;
  status: OutboxStatus;
  attempts: number;
  created_at: string;
  next_attempt_at: string;
  delivered_at: string | null;
  last_error: string | null;
}

export const OutboxEntity = new EntitySchema<OutboxRow>({
  name: 'OutboxEvent',
  tableName: 'scim_outbox',
  columns: {
    seq: { type: 'integer', primary: true, generated: 'increment' },
    event_id: { type: 'varchar', length: 64 },
    resource_type: { type: 'varchar', length: 20 },
    resource_id: { type: 'varchar', length: 36 },
    event_type: { type: 'varchar', length: 40 },
    payload: { type: 'text' },
    status: { type: 'varchar', length: 12 },
    attempts: { type: 'integer' },
    created_at: { type: 'varchar', length: 24 },
    next_attempt_at: { type: 'varchar', length: 24 },
    delivered_at: { type: 'varchar', length: 24, nullable: true },
    last_error: { type: 'varchar', length: 500, nullable: true },
  },
});

export interface RateLimitRow {
  bucket: string;
  window_start: number;
  hits: number;
}

export const RateLimitEntity = new EntitySchema<RateLimitRow>({
  name: 'RateLimitCounter',
  tableName: 'rate_limit_counters',
  columns: {
    bucket: { type: 'varchar', length: 100, primary: true },
    window_start: { type: 'integer', primary: true },
    hits: { type: 'integer' },
  },
});

export const SCIM_ENTITIES = [ApiTokenEntity, OutboxEntity, RateLimitEntity];
