import fs from 'node:fs';
import path from 'node:path';
import { FIO_LATENCY_LABELS, FIO_PERCENTILES, type LatencyHistogram } from './histogram.ts';
import type { BenchResult, JobReport } from './run.ts';
import type { DirectionStats, RunningSeries } from './stats.ts';

/**
 * fio 3.33's JSON output (--output-format=json), field for field: the same top-level keys
 * and the same keys in each job, so that tools written for fio read `hornbill bench`.
 * Hornbill adds no key: verify failures and I/O errors show in the job's "error" (fio's
 * errno: 5 EIO, 84 EILSEQ), in total_err/first_error when continue_on_error is set (as
 * fio), and in full, with offsets, on stderr.
 */

export const HORNBILL_VERSION: string = (() => {
  try {
    const file = path.join(import.meta.dirname, '..', '..', 'package.json');
    return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
})();

/** fio's "fio version": a tool matching /fio-(\d+)\.(\d+)/ finds the format version it reads. */
export const FIO_VERSION_FIELD = `hornbill-${HORNBILL_VERSION} (fio-3.33 JSON)`;

function clatJson(histogram: LatencyHistogram): Record<string, unknown> {
  const base: Record<string, unknown> = {
    min: Math.round(histogram.minimumNs),
    max: Math.round(histogram.maximumNs),
    mean: round6(histogram.meanNs),
    stddev: round6(histogram.stddevNs),
    N: histogram.count,
  };
  if (histogram.count > 0) {
    const percentile: Record<string, number> = {};
    for (const percent of FIO_PERCENTILES) percentile[percent.toFixed(6)] = histogram.percentile(percent);
    base.percentile = percentile;
  }
  return base;
}

function round6(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

const EMPTY_LATENCY = { min: 0, max: 0, mean: 0, stddev: 0, N: 0 };

function directionJson(
  stats: DirectionStats,
  runtimeMs: number,
  bandwidth: RunningSeries,
  iops: RunningSeries,
  groupBandwidthKiB: number,
): Record<string, unknown> {
  const active = stats.ios > 0;
  const runtime = active ? Math.max(1, runtimeMs) : 0;
  const bandwidthBytes = active ? Math.floor((stats.bytes * 1000) / runtime) : 0;
  const latency = active ? clatJson(stats.latency) : EMPTY_LATENCY;
  return {
    io_bytes: stats.bytes,
    io_kbytes: Math.floor(stats.bytes / 1024),
    bw_bytes: bandwidthBytes,
    bw: Math.floor(bandwidthBytes / 1024),
    iops: active ? round6((stats.ios * 1000) / runtime) : 0,
    runtime,
    total_ios: stats.ios,
    short_ios: 0,
    drop_ios: 0,
    // No submission step is timed separately: as fio's synchronous engines, slat is empty
    // and lat (submission to completion) equals clat.
    slat_ns: EMPTY_LATENCY,
    clat_ns: latency,
    lat_ns: active
      ? {
          min: (latency as { min: number }).min,
          max: (latency as { max: number }).max,
          mean: (latency as { mean: number }).mean,
          stddev: (latency as { stddev: number }).stddev,
          N: stats.ios,
        }
      : EMPTY_LATENCY,
    bw_min: Math.round(bandwidth.minimum),
    bw_max: Math.round(bandwidth.maximum),
    bw_agg: active && groupBandwidthKiB > 0 ? round6((bandwidth.mean / groupBandwidthKiB) * 100) : 0,
    bw_mean: round6(bandwidth.mean),
    bw_dev: round6(bandwidth.stddev),
    bw_samples: bandwidth.count,
    iops_min: Math.round(iops.minimum),
    iops_max: Math.round(iops.maximum),
    iops_mean: round6(iops.mean),
    iops_stddev: round6(iops.stddev),
    iops_samples: iops.count,
  };
}

function emptyDirection(): Record<string, unknown> {
  return {
    io_bytes: 0,
    io_kbytes: 0,
    bw_bytes: 0,
    bw: 0,
    iops: 0,
    runtime: 0,
    total_ios: 0,
    short_ios: 0,
    drop_ios: 0,
    slat_ns: EMPTY_LATENCY,
    clat_ns: EMPTY_LATENCY,
    lat_ns: EMPTY_LATENCY,
    bw_min: 0,
    bw_max: 0,
    bw_agg: 0,
    bw_mean: 0,
    bw_dev: 0,
    bw_samples: 0,
    iops_min: 0,
    iops_max: 0,
    iops_mean: 0,
    iops_stddev: 0,
    iops_samples: 0,
  };
}

function percentages(
  counts: ArrayLike<number>,
  labels: readonly string[],
  total: number,
): Record<string, number> {
  const out: Record<string, number> = {};
  labels.forEach((label, index) => {
    out[label] = total > 0 ? round6((counts[index] / total) * 100) : 0;
  });
  return out;
}

/** The sum of the mean bandwidth of a group's entries, per direction (fio's bw_agg base). */
function groupBandwidths(reports: JobReport[]): Map<number, { read: number; write: number }> {
  const totals = new Map<number, { read: number; write: number }>();
  for (const report of reports) {
    const total = totals.get(report.groupId) ?? { read: 0, write: 0 };
    total.read += report.readBandwidth.mean;
    total.write += report.writeBandwidth.mean;
    totals.set(report.groupId, total);
  }
  return totals;
}

export function jobJson(
  report: JobReport,
  groupTotals: { read: number; write: number },
): Record<string, unknown> {
  const { stats, job } = report;
  const runtimeMs = stats.runtimeMs;
  const latency = stats.read.latency.count > 0 || stats.write.latency.count > 0;
  const all = { ns: [0], us: [0], ms: [0] };
  if (latency) {
    const read = stats.read.latency.fioLatencyBuckets();
    const write = stats.write.latency.fioLatencyBuckets();
    all.ns = read.ns.map((value, index) => value + write.ns[index]);
    all.us = read.us.map((value, index) => value + write.us[index]);
    all.ms = read.ms.map((value, index) => value + write.ms[index]);
  }
  const ios = stats.read.ios + stats.write.ios;
  const submits = stats.depth.counts.reduce((sum, count) => sum + count, 0);
  const json: Record<string, unknown> = {
    jobname: job.name,
    groupid: report.groupId,
    error: stats.errors.firstErrno,
    eta: 0,
    elapsed: report.elapsedSeconds,
    'job options': { ...job.given },
    read: directionJson(
      stats.read,
      stats.directionRuntimeMs('read'),
      report.readBandwidth,
      report.readIops,
      groupTotals.read,
    ),
    write: directionJson(
      stats.write,
      stats.directionRuntimeMs('write'),
      report.writeBandwidth,
      report.writeIops,
      groupTotals.write,
    ),
    trim: emptyDirection(),
    sync: { total_ios: 0, lat_ns: EMPTY_LATENCY },
    job_runtime: runtimeMs,
    usr_cpu: round6(report.userCpuPercent),
    sys_cpu: round6(report.systemCpuPercent),
    ctx: report.contextSwitches,
    majf: report.majorFaults,
    minf: report.minorFaults,
    iodepth_level: percentages(stats.depth.counts, ['1', '2', '4', '8', '16', '32', '>=64'], submits),
    // Every submission and every completion is of one I/O: all in fio's 1-4 bucket.
    iodepth_submit: { '0': 0, '4': submits > 0 ? 100 : 0, '8': 0, '16': 0, '32': 0, '64': 0, '>=64': 0 },
    iodepth_complete: { '0': 0, '4': ios > 0 ? 100 : 0, '8': 0, '16': 0, '32': 0, '64': 0, '>=64': 0 },
    latency_ns: percentages(latency ? all.ns : [], FIO_LATENCY_LABELS.ns, latency ? ios : 0),
    latency_us: percentages(latency ? all.us : [], FIO_LATENCY_LABELS.us, latency ? ios : 0),
    latency_ms: percentages(latency ? all.ms : [], FIO_LATENCY_LABELS.ms, latency ? ios : 0),
  };
  if (job.continueOnError !== 'none') {
    json.total_err = stats.errors.count;
    json.first_error = stats.errors.firstErrno;
  }
  json.latency_depth = job.iodepth;
  json.latency_target = 0;
  json.latency_percentile = 100;
  json.latency_window = 0;
  return json;
}

/** fio's ctime-style "time": "Wed Nov 25 19:55:16 2026". */
export function ctime(date: Date): string {
  const day = date.toLocaleString('en-US', { weekday: 'short' });
  const month = date.toLocaleString('en-US', { month: 'short' });
  const pad = (value: number) => String(value).padStart(2, '0');
  return `${day} ${month} ${String(date.getDate()).padStart(2, ' ')} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${date.getFullYear()}`;
}

export function benchJson(
  result: BenchResult,
  globalOptions: Record<string, string> | null,
): Record<string, unknown> {
  const totals = groupBandwidths(result.reports);
  const json: Record<string, unknown> = {
    'fio version': FIO_VERSION_FIELD,
    timestamp: Math.floor(result.startedAt.getTime() / 1000),
    timestamp_ms: result.startedAt.getTime(),
    time: ctime(result.startedAt),
  };
  if (globalOptions !== null) json['global options'] = { ...globalOptions };
  json.jobs = result.reports.map((report) => jobJson(report, totals.get(report.groupId)!));
  return json;
}
