import type { HornbillError } from '../errors.ts';
import { LatencyHistogram } from './histogram.ts';

/** fio's error numbers for the JSON "error" field. */
export const ERRNO_EIO = 5;
export const ERRNO_EILSEQ = 84;

/** fio's bandwidth and IOPS sampling period (bw_avg_time, iops_avg_time). */
export const SAMPLE_PERIOD_MS = 500;

/** Running min / max / mean / deviation of a series, without storing it (Welford). */
export class RunningSeries {
  count = 0;
  minimum = 0;
  maximum = 0;
  mean = 0;
  private squaredDeviations = 0;

  add(value: number): void {
    const count = ++this.count;
    if (count === 1 || value < this.minimum) this.minimum = value;
    if (count === 1 || value > this.maximum) this.maximum = value;
    const delta = value - this.mean;
    this.mean += delta / count;
    this.squaredDeviations += delta * (value - this.mean);
  }

  get stddev(): number {
    return this.count > 1 ? Math.sqrt(this.squaredDeviations / (this.count - 1)) : 0;
  }

  reset(): void {
    this.count = 0;
    this.minimum = 0;
    this.maximum = 0;
    this.mean = 0;
    this.squaredDeviations = 0;
  }

  /** Adds the samples of another series taken at the same moments (group_reporting): sums them. */
  static sumOf(series: RunningSeries[]): RunningSeries {
    // Clones sample at the same ticks, so the group's series is the sum of theirs; its
    // exact deviation would need every sample: the mean and extremes add, the deviation is
    // that of independent series (sqrt of the summed variances).
    const total = new RunningSeries();
    if (series.length === 0) return total;
    total.count = Math.min(...series.map((one) => one.count));
    total.minimum = series.reduce((sum, one) => sum + one.minimum, 0);
    total.maximum = series.reduce((sum, one) => sum + one.maximum, 0);
    total.mean = series.reduce((sum, one) => sum + one.mean, 0);
    const variance = series.reduce((sum, one) => sum + one.stddev ** 2, 0);
    total.squaredDeviations = total.count > 1 ? variance * (total.count - 1) : 0;
    return total;
  }
}

/** What one direction (read or write) of a job clone did. */
export class DirectionStats {
  readonly latency = new LatencyHistogram();
  /** Completed I/Os and bytes after the ramp (what the report counts). */
  ios = 0;
  bytes = 0;
  /** performance.now() of the last counted completion (the end of this direction's runtime). */
  lastCompletionMs = 0;
  /** Bandwidth (KiB/s) and IOPS samples, one per sample period. */
  readonly bandwidthSamples = new RunningSeries();
  readonly iopsSamples = new RunningSeries();
  private sampledIos = 0;
  private sampledBytes = 0;

  record(bytes: number, latencyNs: number, nowMs: number): void {
    this.lastCompletionMs = nowMs;
    this.ios++;
    this.bytes += bytes;
    this.latency.record(latencyNs);
  }

  /** Takes one bandwidth / IOPS sample covering `periodMs`. */
  sample(periodMs: number): void {
    const ios = this.ios - this.sampledIos;
    const bytes = this.bytes - this.sampledBytes;
    this.sampledIos = this.ios;
    this.sampledBytes = this.bytes;
    this.bandwidthSamples.add(bytes / 1024 / (periodMs / 1000));
    this.iopsSamples.add(ios / (periodMs / 1000));
  }

  add(other: DirectionStats): void {
    this.lastCompletionMs = Math.max(this.lastCompletionMs, other.lastCompletionMs);
    this.ios += other.ios;
    this.bytes += other.bytes;
    this.latency.add(other.latency);
  }
}

/** Queue depth seen at submission: fio's iodepth_level buckets 1, 2, 4, 8, 16, 32, >=64. */
export class DepthLevels {
  readonly counts = new Float64Array(7);

  record(depth: number): void {
    this.counts[depth >= 64 ? 6 : 31 - Math.clz32(depth)]++;
  }

  add(other: DepthLevels): void {
    for (let index = 0; index < 7; index++) this.counts[index] += other.counts[index];
  }
}

export interface ErrorTally {
  count: number;
  /** Failed reads and writes (the target answered with an error, or the connection broke). */
  ioErrors: number;
  /** Reads in which --verify found corrupted blocks. */
  verifyErrors: number;
  /** fio's errno of the first error: 5 (EIO) for I/O errors, 84 (EILSEQ) for verify failures. */
  firstErrno: number;
  first: HornbillError | null;
}

/** Everything the report needs about one job clone (or a group_reporting job). */
export class CloneStats {
  readonly read = new DirectionStats();
  readonly write = new DirectionStats();
  readonly depth = new DepthLevels();
  readonly errors: ErrorTally = { count: 0, ioErrors: 0, verifyErrors: 0, firstErrno: 0, first: null };
  /** Short I/Os are impossible on a block target; counted for fio's "short" field anyway. */
  issuedReads = 0;
  issuedWrites = 0;
  /** performance.now() when measurement started (after the ramp) and when the clone ended. */
  measureStartMs = 0;
  endMs = 0;
  /** performance.now() when the clone started (before the ramp). */
  startMs = 0;

  get runtimeMs(): number {
    return Math.max(0, Math.round(this.endMs - this.measureStartMs));
  }

  /** One direction's runtime: from the end of the ramp to its last completion (fio's per-direction runtime). */
  directionRuntimeMs(direction: 'read' | 'write'): number {
    const stats = this[direction];
    return stats.ios === 0 ? 0 : Math.max(1, Math.round(stats.lastCompletionMs - this.measureStartMs));
  }

  countError(error: HornbillError, errno: number): void {
    this.errors.count++;
    if (errno === ERRNO_EILSEQ) this.errors.verifyErrors++;
    else this.errors.ioErrors++;
    if (this.errors.first === null) {
      this.errors.first = error;
      this.errors.firstErrno = errno;
    }
  }

  add(other: CloneStats): void {
    this.read.add(other.read);
    this.write.add(other.write);
    this.depth.add(other.depth);
    this.issuedReads += other.issuedReads;
    this.issuedWrites += other.issuedWrites;
    this.errors.count += other.errors.count;
    this.errors.ioErrors += other.errors.ioErrors;
    this.errors.verifyErrors += other.errors.verifyErrors;
    if (this.errors.first === null && other.errors.first !== null) {
      this.errors.first = other.errors.first;
      this.errors.firstErrno = other.errors.firstErrno;
    }
  }
}
