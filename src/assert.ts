import { HornbillError } from './errors.ts';

/**
 * Production assertion for invariants (TigerBeetle style): a failed assertion is a bug,
 * never bad input. Bad input is rejected with a coded error before it reaches an assert.
 */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new HornbillError('INTERNAL', `assertion failed: ${message}`);
}
