import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';

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

/**
 * `parseArgs` for a benchmark's command line: `--help` prints the usage (the file's first
 * comment) and exits 0; an unknown or malformed flag prints the problem and the usage to
 * stderr and exits 2, instead of a stack trace.
 */
export function parseBenchArguments<T extends ParseArgsOptionsConfig>(
  usage: string,
  options: T,
  args: string[] = process.argv.slice(2),
): ReturnType<typeof parseArgs<{ options: T; args: string[] }>>['values'] {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage.trim()}\n`);
    process.exit(0);
  }
  try {
    return parseArgs({ options, args }).values;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage.trim()}\n`);
    process.exit(2);
  }
}
