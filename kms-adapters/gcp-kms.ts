import type { AdapterFactory } from './types';
import { KmsConfigurationError } from '../server/errors';

// Placeholder until the gcp-kms adapter lands (issue 5, in progress).
export const createAdapter: AdapterFactory = async () => {
  throw new KmsConfigurationError('gcp-kms adapter is not built yet');
};
