import pino, { type Logger } from 'pino';

/** Structured logs. Redaction is a second line of defence: key material is never logged at all. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'crypto-server' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', '*.passwordKey', '*.plaintext', '*.key', '*.pin', '*.secret', '*.token'],
        censor: '[redacted]',
      },
    },
    destination,
  );
}

export type { Logger };
