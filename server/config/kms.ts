import { z } from 'zod';

/**
 * Cloud KMS and Vault settings (docs/kms/<provider>.md). Cloud credentials are deliberately not
 * here: each SDK takes them its own way (AWS default chain, GCP ADC, DefaultAzureCredential).
 */
const ms = z.coerce.number().int().min(1).max(600_000);
const url = z.string().regex(/^https?:\/\/[^\s]+$|^[A-Za-z0-9.-]+:\d+$/, 'must be an http(s) URL or HOST:PORT');

export const kmsEnv = z.object({
  CS_KMS_TIMEOUT_MS: ms.optional(),
  /** Bound on one KMS operation with its retries (default CS_KMS_TIMEOUT_MS + 1 s). */
  CS_KMS_DEADLINE_MS: ms.optional(),
  CS_KMS_MAX_RETRIES: z.coerce.number().int().min(0).max(10).optional(),
  CS_KMS_BREAKER_THRESHOLD: z.coerce.number().int().min(1).max(1000).optional(),
  CS_KMS_BREAKER_COOLDOWN_MS: ms.optional(),
  CS_AWS_KMS_ENDPOINT: url.optional(),
  CS_GCP_KMS_ENDPOINT: url.optional(),
  CS_GCP_KMS_KEY_RING: z.string().regex(/^projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+$/, 'must be projects/P/locations/L/keyRings/R').optional(),
  CS_AZURE_KV_CREATE_KEYS_IN: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a vault or Managed HSM host name').optional(),
  CS_VAULT_TOKEN: z.string().min(1).optional(),
  CS_VAULT_TOKEN_FILE: z.string().min(1).optional(),
  CS_VAULT_ROLE_ID: z.string().min(1).optional(),
  CS_VAULT_SECRET_ID: z.string().min(1).optional(),
  CS_VAULT_K8S_ROLE: z.string().min(1).optional(),
  CS_VAULT_K8S_MOUNT: z.string().regex(/^[\w.-]+(\/[\w.-]+)*$/, 'must be an auth mount path such as kubernetes').optional(),
  CS_VAULT_K8S_TOKEN_FILE: z.string().min(1).optional(),
  CS_VAULT_APPROLE_MOUNT: z.string().regex(/^[\w.-]+(\/[\w.-]+)*$/, 'must be an auth mount path such as approle').optional(),
  CS_VAULT_NAMESPACE: z.string().min(1).optional(),
  CS_VAULT_CA_FILE: z.string().min(1).optional(),
  CS_VAULT_SCHEME: z.enum(['https', 'http']).optional(),
  CS_VAULT_CREATE_KEYS_AT: z.string().regex(/^vault-transit:\/\//, 'must be vault-transit://HOST[:PORT]/MOUNT').optional(),
});

export const KMS_SECRET_SETTINGS = ['CS_VAULT_TOKEN', 'CS_VAULT_SECRET_ID'];

/** Adapter settings by scheme, merged into config.kms.adapters. Unset values stay undefined. */
export function kmsAdapterSettings(e: z.infer<typeof kmsEnv>): Record<string, Record<string, unknown>> {
  const shared = {
    timeoutMs: e.CS_KMS_TIMEOUT_MS,
    deadlineMs: e.CS_KMS_DEADLINE_MS,
    maxRetries: e.CS_KMS_MAX_RETRIES,
    breakerThreshold: e.CS_KMS_BREAKER_THRESHOLD,
    breakerCooldownMs: e.CS_KMS_BREAKER_COOLDOWN_MS,
  };
  return {
    'aws-kms': { ...shared, endpoint: e.CS_AWS_KMS_ENDPOINT },
    'gcp-kms': { ...shared, endpoint: e.CS_GCP_KMS_ENDPOINT, keyRing: e.CS_GCP_KMS_KEY_RING },
    'azure-kv': { ...shared, createKeysIn: e.CS_AZURE_KV_CREATE_KEYS_IN },
    'vault-transit': {
      ...shared,
      token: e.CS_VAULT_TOKEN,
      tokenFile: e.CS_VAULT_TOKEN_FILE,
      roleId: e.CS_VAULT_ROLE_ID,
      secretId: e.CS_VAULT_SECRET_ID,
      kubernetesRole: e.CS_VAULT_K8S_ROLE,
      kubernetesMount: e.CS_VAULT_K8S_MOUNT,
      kubernetesTokenFile: e.CS_VAULT_K8S_TOKEN_FILE,
      appRoleMount: e.CS_VAULT_APPROLE_MOUNT,
      namespace: e.CS_VAULT_NAMESPACE,
      caFile: e.CS_VAULT_CA_FILE,
      scheme: e.CS_VAULT_SCHEME,
      createKeysAt: e.CS_VAULT_CREATE_KEYS_AT,
    },
  };
}
