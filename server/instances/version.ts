import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

let cached: string | undefined;

/** This package's version (package.json: two levels up from the sources, three from dist/). */
export function packageVersion(): string {
  if (cached) return cached;
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      return (cached = (JSON.parse(readFileSync(resolve(__dirname, up), 'utf8')) as { version: string }).version);
    } catch {
      // not at this depth
    }
  }
  return (cached = 'unknown');
}
