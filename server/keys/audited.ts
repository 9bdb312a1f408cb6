import type { Store } from '../repositories/store';
import { asAppError } from '../errors';
import type { OpContext } from './types';

export interface AuditTarget {
  action: string;
  targetType: string;
  targetId: string;
  kekUri?: string;
}

/** Records a refused/failed audit event on its own (the change it would have recorded did not happen). */
export async function auditFailure(store: Store, ctx: OpContext, e: AuditTarget, err: unknown): Promise<void> {
  const known = asAppError(err);
  const code = known?.code ?? 'internal_error';
  const outcome = known?.kind === 'user' ? 'refused' : 'failure';
  await store.writeRegardless((t) => t.audit.append({ ...ctx, ...e, outcome, detail: { error: code } })).catch(() => undefined);
}

/**
 * Runs a KMS call; on failure records a refused/failed audit event and rethrows. With
 * `recordSuccess`, also records success — for reads, which have no transaction of their own.
 * Called with no transaction open, so the failure's audit row never waits for a second
 * connection while this call chain holds one.
 */
export async function audited<T>(store: Store, ctx: OpContext, e: AuditTarget, fn: () => Promise<T>, recordSuccess = false): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await auditFailure(store, ctx, e, err);
    throw err;
  }
  if (recordSuccess) {
    try {
      // Group-committed with concurrent requests' events; resolves only once this row is durable.
      await store.auditCommitted({ ...ctx, ...e, outcome: 'success' });
    } catch (err) {
      if (Buffer.isBuffer(result)) result.fill(0); // never return a key whose use was not recorded
      throw err;
    }
  }
  return result;
}
