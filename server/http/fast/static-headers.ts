import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet from 'helmet';

/**
 * The headers helmet() sets on every response of the Express app, read once by running helmet
 * against a recorder: the fast path sends exactly these without running helmet per request. They
 * are static (no nonce in the default policy); the equivalence test compares them with the app's.
 */
export function helmetHeaders(): string[] {
  const flat: string[] = [];
  let done = false;
  const recorder = {
    setHeader: (name: string, value: unknown) => void flat.push(name, String(value)),
    removeHeader: () => undefined,
  };
  helmet()({} as IncomingMessage, recorder as unknown as ServerResponse, () => (done = true));
  if (!done) throw new Error('helmet did not finish synchronously; the fast path cannot precompute its headers');
  return flat;
}
