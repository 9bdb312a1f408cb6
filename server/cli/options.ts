import { InvalidArgumentError } from 'commander';

/** Commander parser for a whole number in [min, max]; rejects "1.5", "x", "-3" with a clear message. */
export function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
    }
    return n;
  };
}
