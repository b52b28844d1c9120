import { FIO_PERCENTILES, type LatencyHistogram } from './histogram.ts';
import { type JobOptions, jobShape } from './options.ts';
import { formatCount } from './progress.ts';
import { ctime, HORNBILL_VERSION } from './report-json.ts';
import type { BenchResult, JobReport } from './run.ts';
import type { DirectionStats, RunningSeries } from './stats.ts';

/**
 * fio's normal (human) output, line for line where a field exists here, plus Hornbill's
 * lines: errors and verify outcome per job, and one summary line per job with the
 * completion-latency percentiles p50 / p90 / p99 / p99.9 / p99.99.
 */

/** 35651584 → "34.0MiB" and "35.7MB" (fio prints both). */
function binaryAndDecimal(bytes: number): [string, string] {
  const binary = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const decimal = ['B', 'kB', 'MB', 'GB', 'TB'];
  const scale = (base: number, units: string[]) => {
    let value = bytes;
    let unit = 0;
    while (value >= base * 0.99 && unit < units.length - 1) {
      value /= base;
      unit++;
    }
    return `${unit === 0 ? value.toFixed(0) : value.toFixed(value >= 1000 ? 0 : 1)}${units[unit]}`;
  };
  return [scale(1024, binary), scale(1000, decimal)];
}

/** The header line fio prints per job before it starts. */
export function jobHeaderLine(job: JobOptions, engine: string): string {
  const read = job.readBlockSize;
  const write = job.writeBlockSize;
  const range = (low: number, high: number) => `${low}B-${high}B`;
  return (
    `${job.name}: (g=?): rw=${job.rw}, bs=(R) ${range(read.minimumBytes, read.maximumBytes)}, ` +
    `(W) ${range(write.minimumBytes, write.maximumBytes)}, (T) ${range(write.minimumBytes, write.maximumBytes)}, ` +
    `ioengine=${engine}, iodepth=${job.iodepth}`
  );
}

export function startBanner(jobs: JobOptions[], engine: string): string {
  const clones = jobs.reduce((sum, job) => sum + job.numjobs, 0);
  return [
    ...jobs.map((job, index) => jobHeaderLine(job, engine).replace('(g=?)', `(g=${groupOf(jobs, index)})`)),
    `hornbill-${HORNBILL_VERSION} bench (fio 3.33 vocabulary)`,
    `Starting ${clones} job${clones === 1 ? '' : 's'}`,
  ].join('\n');
}

function groupOf(jobs: JobOptions[], index: number): number {
  let group = 0;
  for (let position = 1; position <= index; position++)
    if (jobs[position].stonewall || jobs[position].newGroup) group++;
  return group;
}

/** fio's choice of unit for a latency line: nsec, then usec, then msec while the figures stay large. */
function latencyUnit(histogram: LatencyHistogram): { name: string; divisor: number } {
  let divisor = 1;
  const names = ['nsec', 'usec', 'msec'];
  let unit = 0;
  while (
    unit < 2 &&
    histogram.minimumNs / divisor > 2000 &&
    histogram.maximumNs / divisor > 99999 &&
    histogram.stddevNs / divisor > 1000
  ) {
    divisor *= 1000;
    unit++;
  }
  // Small figures read better in usec than in a wall of nanoseconds.
  if (unit === 0 && histogram.minimumNs >= 1000) {
    divisor = 1000;
    unit = 1;
  }
  return { name: names[unit], divisor };
}

function latencyLine(label: string, histogram: LatencyHistogram): string {
  const { name, divisor } = latencyUnit(histogram);
  const value = (ns: number) => Math.round(ns / divisor);
  return (
    `${label} (${name}): min=${value(histogram.minimumNs)}, max=${value(histogram.maximumNs)}, ` +
    `avg=${(histogram.meanNs / divisor).toFixed(2)}, stdev=${(histogram.stddevNs / divisor).toFixed(2)}`
  );
}

function percentileLines(histogram: LatencyHistogram): string[] {
  const top = histogram.percentile(99.99);
  const divisor = top >= 10_000_000_000 ? 1_000_000 : 1000;
  const unit = divisor === 1000 ? 'usec' : 'msec';
  const values = FIO_PERCENTILES.map((percent) => Math.round(histogram.percentile(percent) / divisor));
  const width = Math.max(...values.map((value) => String(value).length));
  const cells = FIO_PERCENTILES.map(
    (percent, index) => `${percent.toFixed(2).padStart(5)}th=[${String(values[index]).padStart(width)}]`,
  );
  const lines = [`    clat percentiles (${unit}):`];
  for (let index = 0; index < cells.length; index += 4)
    lines.push(`     | ${cells.slice(index, index + 4).join(', ')}${index + 4 < cells.length ? ',' : ''}`);
  return lines;
}

function sampleLines(bandwidth: RunningSeries, iops: RunningSeries, groupBandwidth: number): string[] {
  const per = groupBandwidth > 0 ? (bandwidth.mean / groupBandwidth) * 100 : 0;
  return [
    `   bw (  KiB/s): min=${Math.round(bandwidth.minimum)}, max=${Math.round(bandwidth.maximum)}, per=${per.toFixed(2)}%, ` +
      `avg=${bandwidth.mean.toFixed(2)}, stdev=${bandwidth.stddev.toFixed(2)}, samples=${bandwidth.count}`,
    `   iops        : min=${Math.round(iops.minimum)}, max=${Math.round(iops.maximum)}, avg=${iops.mean.toFixed(2)}, ` +
      `stdev=${iops.stddev.toFixed(2)}, samples=${iops.count}`,
  ];
}

function directionLines(
  label: 'read' | 'write',
  stats: DirectionStats,
  runtimeMs: number,
  bandwidth: RunningSeries,
  iops: RunningSeries,
  groupBandwidth: number,
): string[] {
  if (stats.ios === 0) return [];
  const runtime = Math.max(1, runtimeMs);
  const [rateBinary, rateDecimal] = binaryAndDecimal((stats.bytes * 1000) / runtime);
  const [ioBinary] = binaryAndDecimal(stats.bytes);
  return [
    `  ${label}: IOPS=${formatCount((stats.ios * 1000) / runtime)}, BW=${rateBinary}/s (${rateDecimal}/s)(${ioBinary}/${runtime}msec)`,
    latencyLine('    clat', stats.latency),
    latencyLine('     lat', stats.latency),
    ...percentileLines(stats.latency),
    ...sampleLines(bandwidth, iops, groupBandwidth),
  ];
}

function percentText(counts: number[], labels: readonly string[], total: number): string {
  return labels
    .map((label, index) => [label, total > 0 ? (counts[index] / total) * 100 : 0] as const)
    .filter(([, percent]) => percent >= 0.01)
    .map(([label, percent]) => `${label}=${percent.toFixed(2)}%`)
    .join(', ');
}

function jobLines(report: JobReport, groupTotals: { read: number; write: number }, started: Date): string[] {
  const { stats, job } = report;
  const lines = [
    `${job.name}: (groupid=${report.groupId}, jobs=${report.cloneCount}): err=${String(stats.errors.firstErrno).padStart(2)}: pid=${process.pid}: ${ctime(started)}`,
    ...directionLines(
      'read',
      stats.read,
      stats.directionRuntimeMs('read'),
      report.readBandwidth,
      report.readIops,
      groupTotals.read,
    ),
    ...directionLines(
      'write',
      stats.write,
      stats.directionRuntimeMs('write'),
      report.writeBandwidth,
      report.writeIops,
      groupTotals.write,
    ),
  ];
  const ios = stats.read.ios + stats.write.ios;
  if (ios > 0) {
    const read = stats.read.latency.fioLatencyBuckets();
    const write = stats.write.latency.fioLatencyBuckets();
    const sum = (a: number[], b: number[]) => a.map((value, index) => value + b[index]);
    const ns = percentText(
      sum(read.ns, write.ns),
      ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000'],
      ios,
    );
    const us = percentText(
      sum(read.us, write.us),
      ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000'],
      ios,
    );
    const ms = percentText(
      sum(read.ms, write.ms),
      ['2', '4', '10', '20', '50', '100', '250', '500', '750', '1000', '2000', '>=2000'],
      ios,
    );
    if (ns !== '') lines.push(`  lat (nsec)   : ${ns}`);
    if (us !== '') lines.push(`  lat (usec)   : ${us}`);
    if (ms !== '') lines.push(`  lat (msec)   : ${ms}`);
  }
  const submits = Array.from(stats.depth.counts).reduce((total, count) => total + count, 0);
  const depth = percentText(
    Array.from(stats.depth.counts),
    ['1', '2', '4', '8', '16', '32', '>=64'],
    submits,
  );
  lines.push(
    `  cpu          : usr=${report.userCpuPercent.toFixed(2)}%, sys=${report.systemCpuPercent.toFixed(2)}%, ctx=${report.contextSwitches}, majf=${report.majorFaults}, minf=${report.minorFaults}`,
    `  IO depths    : ${depth === '' ? '1=0.0%' : depth}`,
    `     issued rwts: total=${stats.issuedReads},${stats.issuedWrites},0,0 short=0,0,0,0 dropped=0,0,0,0`,
    `     latency   : target=0, window=0, percentile=100.00%, depth=${job.iodepth}`,
    `  errors       : io=${stats.errors.ioErrors}, verify=${stats.errors.verifyErrors}` +
      (stats.errors.first === null
        ? ''
        : ` (first: ${stats.errors.first.code}: ${stats.errors.first.message})`),
  );
  return lines;
}

function groupStatusLines(result: BenchResult): string[] {
  const lines: string[] = [];
  const groups = [...new Set(result.reports.map((report) => report.groupId))];
  for (const groupId of groups) {
    const reports = result.reports.filter((report) => report.groupId === groupId);
    lines.push('', `Run status group ${groupId} (all jobs):`);
    for (const direction of ['read', 'write'] as const) {
      const active = reports.filter((report) => report.stats[direction].ios > 0);
      if (active.length === 0) continue;
      const bytes = active.reduce((sum, report) => sum + report.stats[direction].bytes, 0);
      const runtimes = active.map((report) => report.stats.directionRuntimeMs(direction));
      const rates = active.map((report, index) => (report.stats[direction].bytes * 1000) / runtimes[index]);
      const longest = Math.max(...runtimes);
      const [total, totalDecimal] = binaryAndDecimal((bytes * 1000) / longest);
      const [low, lowDecimal] = binaryAndDecimal(Math.min(...rates));
      const [high, highDecimal] = binaryAndDecimal(Math.max(...rates));
      const [io, ioDecimal] = binaryAndDecimal(bytes);
      lines.push(
        `${direction === 'read' ? '   READ' : '  WRITE'}: bw=${total}/s (${totalDecimal}/s), ${low}/s-${high}/s (${lowDecimal}/s-${highDecimal}/s), ` +
          `io=${io} (${ioDecimal}), run=${Math.min(...runtimes)}-${longest}msec`,
      );
    }
  }
  return lines;
}

/** Lines about verification (also written to stderr in JSON mode). */
export function verifyLines(result: BenchResult): string[] {
  const lines: string[] = [];
  for (const { job, state } of result.verify) {
    lines.push(
      `verify: job ${job}: crc32c, ${state.unitBytes}-byte blocks: ${state.checkedUnits} checked, ` +
        `${state.corruptedUnits} corrupted, ${state.unwrittenUnits} never written, ${state.skippedUnits} skipped (write in flight or failed)`,
    );
    for (const corruption of state.corruptions)
      lines.push(
        `verify: job ${job}: corrupted block at offset ${corruption.offsetBytes}: ${corruption.reason}`,
      );
    if (state.corruptedUnits > state.corruptions.length)
      lines.push(
        `verify: job ${job}: … and ${state.corruptedUnits - state.corruptions.length} more corrupted blocks`,
      );
  }
  return lines;
}

/** Lines about errors on the target (also written to stderr in JSON mode). */
export function errorLines(result: BenchResult): string[] {
  return result.reports
    .filter((report) => report.stats.errors.count > 0)
    .map(
      (report) =>
        `errors: job ${report.job.name}: ${report.stats.errors.ioErrors} failed I/O, ${report.stats.errors.verifyErrors} read(s) with corrupted blocks; first: ` +
        `${report.stats.errors.first!.code}: ${report.stats.errors.first!.message}`,
    );
}

function latencyShort(ns: number): string {
  if (ns >= 1e9) return `${(ns / 1e9).toFixed(2)}s`;
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(ns >= 1e8 ? 0 : 2)}ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(ns >= 1e5 ? 0 : 1)}us`;
  return `${Math.round(ns)}ns`;
}

/** One line per report: `summary: randread: read 45.2k IOPS 176.6MiB/s clat p50=… p99.99=…; errors=0`. */
export function summaryLines(result: BenchResult): string[] {
  return result.reports.map((report) => {
    const parts: string[] = [];
    for (const direction of ['read', 'write'] as const) {
      const stats = report.stats[direction];
      if (stats.ios === 0) continue;
      const runtime = report.stats.directionRuntimeMs(direction);
      const [rate] = binaryAndDecimal((stats.bytes * 1000) / runtime);
      const latency = stats.latency;
      parts.push(
        `${direction} ${formatCount((stats.ios * 1000) / runtime)} IOPS ${rate}/s clat ` +
          [50, 90, 99, 99.9, 99.99]
            .map((percent) => `p${percent}=${latencyShort(latency.percentile(percent))}`)
            .join(' '),
      );
    }
    const shape = jobShape(report.job.rw);
    if (parts.length === 0)
      parts.push(`no ${shape.reads && shape.writes ? 'I/O' : shape.reads ? 'reads' : 'writes'} completed`);
    return `summary: ${report.job.name}: ${parts.join('; ')}; errors=${report.stats.errors.count}`;
  });
}

export function normalReport(result: BenchResult): string {
  const totals = new Map<number, { read: number; write: number }>();
  for (const report of result.reports) {
    const total = totals.get(report.groupId) ?? { read: 0, write: 0 };
    total.read += report.readBandwidth.mean;
    total.write += report.writeBandwidth.mean;
    totals.set(report.groupId, total);
  }
  const lines: string[] = [];
  for (const report of result.reports) {
    lines.push('', ...jobLines(report, totals.get(report.groupId)!, result.startedAt));
  }
  lines.push(...groupStatusLines(result));
  const verify = verifyLines(result);
  const errors = errorLines(result);
  if (verify.length > 0 || errors.length > 0) lines.push('', ...verify, ...errors);
  lines.push(
    '',
    `target: ${result.target}${result.interrupted ? ' (interrupted: figures cover the time run)' : ''}`,
  );
  lines.push(...summaryLines(result));
  return `${lines.join('\n').replace(/^\n/, '')}\n`;
}
