import { assert } from '../assert.ts';

/** xorshift32: a small deterministic generator (direction and block-size choices). */
export class XorShift32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** A whole number in [0, bound). */
  below(bound: number): number {
    return bound <= 1 ? 0 : this.next() % bound;
  }
}

/**
 * A pseudo-random permutation of 0 … count-1 (random offsets that visit every block once
 * per pass, as fio's random map does): a full-period linear congruential sequence modulo
 * 2^k (Hull-Dobell: odd increment, multiplier ≡ 1 mod 4), scrambled by bijections of
 * k-bit values (xor-shift, odd multiply), skipping values ≥ count. O(1) memory.
 */
export class Permutation {
  readonly count: number;
  private readonly bits: number;
  private readonly mask: number;
  private readonly increment: number;
  private state: number;

  constructor(count: number, seed: number) {
    assert(Number.isInteger(count) && count >= 1 && count <= 2 ** 32, 'permutation size fits 32 bits');
    this.count = count;
    this.bits = count <= 1 ? 1 : Math.ceil(Math.log2(count));
    this.mask = this.bits >= 32 ? 0xffffffff : 2 ** this.bits - 1;
    this.increment = ((seed * 2 + 1) & this.mask) >>> 0 || 1;
    this.state = (seed >>> 0) & this.mask;
  }

  next(): number {
    const mask = this.mask;
    const half = Math.max(1, this.bits >>> 1);
    for (;;) {
      this.state = ((Math.imul(this.state, 1664525) + this.increment) & mask) >>> 0;
      let value = this.state;
      value = (value ^ (value >>> half)) >>> 0;
      value = (Math.imul(value, 0x2c1b3c6d) & mask) >>> 0;
      value = (value ^ (value >>> half)) >>> 0;
      if (value < this.count) return value;
    }
  }
}
