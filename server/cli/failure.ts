import { ConfigError, asAppError } from '../errors';

/** Operator-facing one-line description of a failure: the message and internal detail, no stack. */
export function describeFailure(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  const known = asAppError(err);
  if (known) return `${known.message}${known.internalDetail ? ` (${known.internalDetail})` : ''}`;
  return `unexpected error: ${(err as Error)?.message ?? String(err)}`;
}
