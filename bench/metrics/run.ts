/**
 * The cost of keeping frontend I/O metrics on in the hot path: nanoseconds per
 * IoStats.record (with the two performance.now() calls that time an I/O), next to the CPU
 * time one 4 KiB I/O costs the engine (bench/RESULTS.md, engine section).
 *
 *   node bench/metrics/run.ts
 */
import { IoOperation, IoStats } from '../../src/metrics/io-stats.ts';

const ROUNDS = 5;
const OPERATIONS = 2_000_000;
const stats = new IoStats();
const results: number[] = [];
const baseline: number[] = [];
let sink = 0;
for (let round = 0; round < ROUNDS; round++) {
  let started = process.hrtime.bigint();
  for (let index = 0; index < OPERATIONS; index++) {
    const begin = performance.now();
    stats.record(IoOperation.write, 4096, performance.now() - begin + (index & 7), true);
  }
  results.push(Number(process.hrtime.bigint() - started) / OPERATIONS);
  started = process.hrtime.bigint();
  for (let index = 0; index < OPERATIONS; index++) sink += index & 7;
  baseline.push(Number(process.hrtime.bigint() - started) / OPERATIONS);
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const perRecord = median(results) - median(baseline);
console.log(
  JSON.stringify({
    nanosecondsPerTimedRecord: Math.round(perRecord * 10) / 10,
    rounds: ROUNDS,
    operationsPerRound: OPERATIONS,
    sink: sink > 0,
  }),
);
