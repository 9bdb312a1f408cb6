import { AppError, ConfigError } from '../errors';

/** Operator-facing one-line description of a failure: the message and internal detail, no stack. */
export function describeFailure(err: unknown): string {
  if (err instanceof ConfigError) return err.message;
  if (err instanceof AppError) return `${err.message}${err.internalDetail ? ` (${err.internalDetail})` : ''}`;
  return `unexpected error: ${(err as Error)?.message ?? String(err)}`;
}
