/**
 * A fixed-size log-linear latency histogram in nanoseconds, laid out as fio's (stat.h,
 * FIO_IO_U_PLAT_BITS = 6): values below 128 ns have a bucket each; above, every power of
 * two is split into 64 buckets, so a bucket is at most 1/64 (1.6 %) of its value wide.
 * Recording is a few integer operations on preallocated arrays: no allocation per I/O.
 * Percentiles are reported as the bucket's midpoint, as fio does.
 */

const SUB_BUCKET_BITS = 6;
const SUB_BUCKETS = 1 << SUB_BUCKET_BITS;
/** 32 groups: the last bucket starts at 2^37 ns (137 s); longer latencies land in it. */
const GROUPS = 32;
export const HISTOGRAM_BUCKETS = GROUPS * SUB_BUCKETS;

/** fio's default percentile list (its JSON keys are these, formatted with six decimals). */
export const FIO_PERCENTILES = [
  1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
] as const;

export function bucketIndex(nanoseconds: number): number {
  if (nanoseconds < SUB_BUCKETS * 2) return nanoseconds < 0 ? 0 : Math.floor(nanoseconds);
  const value = Math.floor(nanoseconds);
  // Most significant bit: clz32 covers 32 bits; above 2^32 take it from the high word.
  const msb = value < 2 ** 32 ? 31 - Math.clz32(value) : 63 - Math.clz32(Math.floor(value / 2 ** 32));
  const errorBits = msb - SUB_BUCKET_BITS;
  const base = (errorBits + 1) << SUB_BUCKET_BITS;
  const offset = Math.floor(value / 2 ** errorBits) & (SUB_BUCKETS - 1);
  return Math.min(base + offset, HISTOGRAM_BUCKETS - 1);
}

/** The value a bucket stands for: its midpoint (fio's plat_idx_to_val). */
export function bucketValue(index: number): number {
  if (index < SUB_BUCKETS * 2) return index;
  const errorBits = (index >> SUB_BUCKET_BITS) - 1;
  const base = 2 ** (errorBits + SUB_BUCKET_BITS);
  const offset = index % SUB_BUCKETS;
  return Math.floor(base + (offset + 0.5) * 2 ** errorBits);
}

export class LatencyHistogram {
  readonly counts = new Float64Array(HISTOGRAM_BUCKETS);
  count = 0;
  minimumNs = 0;
  maximumNs = 0;
  /** Welford's running mean and sum of squared deviations. */
  meanNs = 0;
  private squaredDeviations = 0;

  record(nanoseconds: number): void {
    this.counts[bucketIndex(nanoseconds)]++;
    const count = ++this.count;
    if (count === 1 || nanoseconds < this.minimumNs) this.minimumNs = nanoseconds;
    if (nanoseconds > this.maximumNs) this.maximumNs = nanoseconds;
    const delta = nanoseconds - this.meanNs;
    this.meanNs += delta / count;
    this.squaredDeviations += delta * (nanoseconds - this.meanNs);
  }

  /** Sample standard deviation (fio divides by N - 1). */
  get stddevNs(): number {
    return this.count > 1 ? Math.sqrt(this.squaredDeviations / (this.count - 1)) : 0;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.minimumNs = 0;
    this.maximumNs = 0;
    this.meanNs = 0;
    this.squaredDeviations = 0;
  }

  /** Adds another histogram (group_reporting); combines means and deviations exactly. */
  add(other: LatencyHistogram): void {
    if (other.count === 0) return;
    for (let index = 0; index < HISTOGRAM_BUCKETS; index++) this.counts[index] += other.counts[index];
    if (this.count === 0) {
      this.minimumNs = other.minimumNs;
      this.maximumNs = other.maximumNs;
    } else {
      this.minimumNs = Math.min(this.minimumNs, other.minimumNs);
      this.maximumNs = Math.max(this.maximumNs, other.maximumNs);
    }
    const total = this.count + other.count;
    const delta = other.meanNs - this.meanNs;
    this.squaredDeviations += other.squaredDeviations + (delta * delta * this.count * other.count) / total;
    this.meanNs += (delta * other.count) / total;
    this.count = total;
  }

  /** The value at `percent` (0-100): the first bucket whose cumulative count reaches it. */
  percentile(percent: number): number {
    if (this.count === 0) return 0;
    const wanted = (percent / 100) * this.count;
    let cumulative = 0;
    for (let index = 0; index < HISTOGRAM_BUCKETS; index++) {
      cumulative += this.counts[index];
      if (cumulative >= wanted && this.counts[index] > 0) return bucketValue(index);
    }
    return bucketValue(HISTOGRAM_BUCKETS - 1);
  }

  /** Counts per fio latency bucket (latency_ns, latency_us, latency_ms), as fractions of `total`. */
  fioLatencyBuckets(): { ns: number[]; us: number[]; ms: number[] } {
    const ns = new Array<number>(10).fill(0);
    const us = new Array<number>(10).fill(0);
    const ms = new Array<number>(12).fill(0);
    for (let index = 0; index < HISTOGRAM_BUCKETS; index++) {
      const count = this.counts[index];
      if (count === 0) continue;
      const value = bucketValue(index);
      if (value < 1000) ns[subThousandBucket(value)] += count;
      else if (value < 1_000_000) us[subThousandBucket(Math.floor(value / 1000))] += count;
      else {
        const milliseconds = Math.floor(value / 1_000_000);
        ms[milliseconds >= 2000 ? 11 : milliseconds >= 1000 ? 10 : subThousandBucket(milliseconds)] += count;
      }
    }
    return { ns, us, ms };
  }
}

/** fio's io_u_mark_lat_* buckets below 1000: 0-1, 2-3, 4-9, 10-19, 20-49, 50-99, 100-249, 250-499, 500-749, 750-999. */
function subThousandBucket(value: number): number {
  if (value >= 750) return 9;
  if (value >= 500) return 8;
  if (value >= 250) return 7;
  if (value >= 100) return 6;
  if (value >= 50) return 5;
  if (value >= 20) return 4;
  if (value >= 10) return 3;
  if (value >= 4) return 2;
  if (value >= 2) return 1;
  return 0;
}

/** The labels fio gives those buckets in its JSON. */
export const FIO_LATENCY_LABELS = {
  ns: ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000'],
  us: ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000'],
  ms: ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000', '2000', '>=2000'],
} as const;
