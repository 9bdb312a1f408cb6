import type { AdapterFactory } from './types';
import { KmsConfigurationError } from '../server/errors';

// Placeholder until the PKCS#11 adapter lands (issue 2, in progress).
export const createAdapter: AdapterFactory = async () => {
  throw new KmsConfigurationError('pkcs11 adapter is not built yet');
};
