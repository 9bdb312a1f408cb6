import type { AdapterFactory } from './types';
import { KmsConfigurationError } from '../server/errors';

// Placeholder until the azure-kv adapter lands (issue 5, in progress).
export const createAdapter: AdapterFactory = async () => {
  throw new KmsConfigurationError('azure-kv adapter is not built yet');
};
