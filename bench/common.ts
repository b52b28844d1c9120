/**
 * Random block-aligned offsets for benchmarks: a xorshift sequence from `seed`, so that
 * every target in a run sees the same offsets in the same order.
 */
export function randomOffsets(seed: number, count: number, blocks: number, blockBytes = 4096): Float64Array {
  const out = new Float64Array(count);
  let state = seed >>> 0 || 1;
  for (let index = 0; index < count; index++) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    out[index] = (state % blocks) * blockBytes;
  }
  return out;
}
