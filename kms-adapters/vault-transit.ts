import type { AdapterFactory } from './types';
import { KmsConfigurationError } from '../server/errors';

// Placeholder until the vault-transit adapter lands (issue 5, in progress).
export const createAdapter: AdapterFactory = async () => {
  throw new KmsConfigurationError('vault-transit adapter is not built yet');
};
