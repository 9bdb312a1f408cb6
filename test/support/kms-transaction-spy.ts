import type { KmsRegistry } from '../../kms-adapters/registry';
import type { Store } from '../../server/repositories/store';

export interface KmsCall {
  call: 'wrap' | 'unwrap';
  inTransaction: boolean;
}

/**
 * Records, for every wrap/unwrap of the configured KEK's adapter, whether a database transaction
 * was open at the time (DESIGN.md property 7: never). `calls` is emptied by `reset()`.
 */
export function spyKmsTransactions(kms: KmsRegistry, kekUri: string, store: Store): { calls: KmsCall[]; reset: () => void; restore: () => void } {
  const calls: KmsCall[] = [];
  const adapter = kms.forUri(kekUri);
  const wrap = adapter.wrap.bind(adapter);
  const unwrap = adapter.unwrap.bind(adapter);
  const w = jest.spyOn(adapter, 'wrap').mockImplementation(async (...args) => {
    calls.push({ call: 'wrap', inTransaction: store.inTransaction });
    return wrap(...args);
  });
  const u = jest.spyOn(adapter, 'unwrap').mockImplementation(async (...args) => {
    calls.push({ call: 'unwrap', inTransaction: store.inTransaction });
    return unwrap(...args);
  });
  return {
    calls,
    reset: () => void calls.splice(0),
    restore: () => {
      w.mockRestore();
      u.mockRestore();
    },
  };
}
