/**
 * Frontend I/O accounting of one volume, cheap enough to stay on in the hot path: counts,
 * bytes, errors and a latency histogram per operation kept in preallocated typed arrays.
 * `record` does no allocation and no label lookup (a linear scan of 16 bucket bounds);
 * the metrics exposition reads the arrays when Prometheus scrapes. Measured cost:
 * `node bench/metrics/run.ts` (bench/RESULTS.md).
 */

export const IoOperation = { read: 0, write: 1, unmap: 2, flush: 3 } as const;
export type IoOperationValue = (typeof IoOperation)[keyof typeof IoOperation];
export const IO_OPERATION_NAMES = ['read', 'write', 'unmap', 'flush'] as const;

/** Upper bounds of the latency buckets, in seconds (50 µs … 10 s); +Inf is implied. */
export const LATENCY_BUCKET_SECONDS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];
const BUCKET_MILLISECONDS = Float64Array.from(LATENCY_BUCKET_SECONDS, (seconds) => seconds * 1000);
const BUCKETS = BUCKET_MILLISECONDS.length + 1;
const OPERATIONS = IO_OPERATION_NAMES.length;

export class IoStats {
  /** Completed operations (successful or not), per operation. */
  readonly operations = new Float64Array(OPERATIONS);
  /** Bytes moved by successful operations. */
  readonly bytes = new Float64Array(OPERATIONS);
  readonly errors = new Float64Array(OPERATIONS);
  /** Sum of latencies in seconds. */
  readonly latencySumSeconds = new Float64Array(OPERATIONS);
  /** Per operation, BUCKETS counts (not cumulative); the last is above every bound. */
  readonly bucketCounts = new Float64Array(OPERATIONS * BUCKETS);

  record(operation: IoOperationValue, bytes: number, milliseconds: number, ok: boolean): void {
    this.operations[operation]++;
    if (ok) this.bytes[operation] += bytes;
    else this.errors[operation]++;
    this.latencySumSeconds[operation] += milliseconds / 1000;
    let bucket = 0;
    while (bucket < BUCKET_MILLISECONDS.length && milliseconds > BUCKET_MILLISECONDS[bucket]) bucket++;
    this.bucketCounts[operation * BUCKETS + bucket]++;
  }

  /** Cumulative bucket counts of one operation (for the exposition; allocates). */
  cumulativeBuckets(operation: IoOperationValue): number[] {
    const result: number[] = [];
    let running = 0;
    for (let bucket = 0; bucket < BUCKETS; bucket++) {
      running += this.bucketCounts[operation * BUCKETS + bucket];
      result.push(running);
    }
    return result;
  }
}
