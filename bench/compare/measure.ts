import fs from 'node:fs';
import path from 'node:path';
import { formatJobFile, type RawSection, readJobFile } from '../../src/bench/job-file.ts';
import { HORNBILL, run } from './processes.ts';

/** What one job of one profile measured on one peer, from fio's JSON (or hornbill bench's). */
export interface Measurement {
  job: string;
  readIops: number;
  writeIops: number;
  readBytesPerSecond: number;
  writeBytesPerSecond: number;
  /** Completion latency percentiles in microseconds (0 when the direction did nothing). */
  readP50Us: number;
  readP99Us: number;
  writeP50Us: number;
  writeP99Us: number;
  /** fio's errno of the job (0: none). */
  error: number;
}

interface FioDirection {
  iops: number;
  bw_bytes: number;
  clat_ns: { N: number; percentile?: Record<string, number> };
}

interface FioJob {
  jobname: string;
  error: number;
  read: FioDirection;
  write: FioDirection;
}

export function parseFioJson(text: string): Measurement[] {
  // fio may print notes before its JSON on stdout; the JSON starts at the first "{" line.
  const start = text.indexOf('\n{') >= 0 && !text.startsWith('{') ? text.indexOf('\n{') + 1 : 0;
  const jobs = (JSON.parse(text.slice(start)) as { jobs: FioJob[] }).jobs;
  const percentile = (direction: FioDirection, key: string) =>
    direction.clat_ns.N > 0 ? (direction.clat_ns.percentile?.[key] ?? 0) / 1000 : 0;
  return jobs.map((job) => ({
    job: job.jobname,
    readIops: job.read.iops,
    writeIops: job.write.iops,
    readBytesPerSecond: job.read.bw_bytes,
    writeBytesPerSecond: job.write.bw_bytes,
    readP50Us: percentile(job.read, '50.000000'),
    readP99Us: percentile(job.read, '99.000000'),
    writeP50Us: percentile(job.write, '50.000000'),
    writeP99Us: percentile(job.write, '99.000000'),
    error: job.error,
  }));
}

/**
 * A copy of a profile with the comparison's runtime, ramp and size in [global], and none
 * in the job sections (fio, like hornbill bench, lets a file's options override the
 * command line, so they are written into the file).
 */
export function deriveProfile(
  profile: string,
  work: string,
  settings: { runtimeMs: number; rampMs: number; sizeBytes: number },
): string {
  const overridden = new Set(['runtime', 'ramp_time', 'size', 'time_based']);
  const sections: RawSection[] = readJobFile(profile).map((section) => ({
    ...section,
    options: section.options.filter(([key]) => !overridden.has(key)),
  }));
  let global = sections.find((section) => section.name === 'global');
  if (global === undefined) {
    global = { name: 'global', line: 0, options: [] };
    sections.unshift(global);
  }
  global.options.push(
    ['time_based', '1'],
    ['runtime', `${Math.round(settings.runtimeMs)}ms`],
    ['ramp_time', `${Math.round(settings.rampMs)}ms`],
    ['size', String(settings.sizeBytes)],
  );
  const file = path.join(work, path.basename(profile));
  fs.writeFileSync(file, formatJobFile(sections, `derived from ${profile} by bench/compare`));
  return file;
}

function failure(what: string, result: { code: number | null; stdout: string; stderr: string }): Error {
  return new Error(
    `${what} exited with ${result.code}:\n${result.stderr.slice(-3000)}${result.stdout.slice(-1000)}`,
  );
}

/** `hornbill bench --profile FILE --target URL --output-format json`. */
export async function hornbillBench(target: string, profile: string): Promise<Measurement[]> {
  const result = await run(process.execPath, [
    HORNBILL,
    'bench',
    '--target',
    target,
    '--profile',
    profile,
    '--output-format',
    'json',
  ]);
  if (result.code !== 0) throw failure(`hornbill bench --target ${target} --profile ${profile}`, result);
  return parseFioJson(result.stdout);
}

/** Writes `sizeBytes` sequentially through `hornbill bench` so that reads read data. */
export async function fill(target: string, sizeBytes: number): Promise<void> {
  const result = await run(process.execPath, [
    HORNBILL,
    'bench',
    '--target',
    target,
    '--name',
    'fill',
    '--rw',
    'write',
    '--bs',
    '1M',
    '--iodepth',
    '8',
    '--size',
    String(sizeBytes),
    '--output-format',
    'json',
  ]);
  if (result.code !== 0) throw failure(`filling ${target}`, result);
}

/** fio with a job file; `engineOptions` choose the engine and the file or URI. */
export async function fio(profile: string, engineOptions: string[], work: string): Promise<Measurement[]> {
  const output = path.join(work, `fio-${process.hrtime.bigint()}.json`);
  const result = await run('fio', [...engineOptions, '--output-format=json', `--output=${output}`, profile], {
    cwd: work,
  });
  const text = fs.existsSync(output) ? fs.readFileSync(output, 'utf8') : '';
  fs.rmSync(output, { force: true });
  if (result.code !== 0 || text === '') throw failure(`fio ${engineOptions.join(' ')} ${profile}`, result);
  return parseFioJson(text);
}

/** Whether fio can run `engine` (with O_DIRECT when `direct`) on a file in `work`. */
export async function fioWorks(
  work: string,
  file: string,
  engine: string,
  direct: boolean,
): Promise<boolean> {
  const result = await run(
    'fio',
    [
      '--name=probe',
      `--filename=${file}`,
      '--size=16M',
      '--rw=randread',
      '--bs=4k',
      `--ioengine=${engine}`,
      `--direct=${direct ? 1 : 0}`,
      '--iodepth=4',
      '--runtime=300ms',
      '--time_based',
    ],
    { cwd: work },
  );
  return result.code === 0;
}
