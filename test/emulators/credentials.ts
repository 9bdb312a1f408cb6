import { OAuth2Client } from 'google-auth-library';
import type { TokenCredential } from '../../kms-adapters/azure-kv';

/**
 * Static test credentials handed to the SDKs through the adapters' client seams, so no test ever
 * consults Application Default Credentials, DefaultAzureCredential or a metadata endpoint.
 */
export function useFakeAwsCredentials(region: string): void {
  process.env.AWS_ACCESS_KEY_ID = 'AKIDTESTTESTTESTTEST';
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret-key';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  process.env.AWS_REGION = region;
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_SESSION_TOKEN;
}

/** A bearer token the GCP emulator accepts; global fetch because jest cannot import('node-fetch'). */
export function gcpStaticAuth(token = 'ya29.test-token'): OAuth2Client {
  const c = new OAuth2Client({ transporterOptions: { fetchImplementation: globalThis.fetch as never } });
  c.setCredentials({ access_token: token, expiry_date: Date.now() + 3600_000 });
  return c;
}

export function azureStaticCredential(token = 'azure-test-token'): TokenCredential {
  return { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600_000, tokenType: 'Bearer' }) };
}
