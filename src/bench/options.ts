import { HornbillError } from '../errors.ts';

/**
 * The job model of `hornbill bench` and the fio option vocabulary that fills it. Every
 * option, from the command line or from a job file, goes through `applyJobOption`, so
 * both accept the same names and values (fio's: `bs=4k`, `runtime=30s`, `time_based`).
 */

export const READ_WRITE_MODES = ['read', 'write', 'randread', 'randwrite', 'randrw', 'readwrite'] as const;
export type ReadWriteMode = (typeof READ_WRITE_MODES)[number];

export const CONTINUE_ON_ERROR = ['none', 'read', 'write', 'io', 'verify', 'all'] as const;
export type ContinueOnError = (typeof CONTINUE_ON_ERROR)[number];

/** Inclusive range of I/O sizes in bytes; sizes are multiples of `minimumBytes`. */
export interface BlockSizeRange {
  minimumBytes: number;
  maximumBytes: number;
}

export interface JobOptions {
  name: string;
  rw: ReadWriteMode;
  readBlockSize: BlockSizeRange;
  writeBlockSize: BlockSizeRange;
  iodepth: number;
  numjobs: number;
  /** Bytes of the region each job clone works on; null: from the offset to the end of the target. */
  sizeBytes: number | null;
  offsetBytes: number;
  /** Clone i starts at offset + i × offset_increment (fio's offset_increment). */
  offsetIncrementBytes: number;
  /** 0: no time limit (the job ends when `size` bytes are done). */
  runtimeMs: number;
  timeBased: boolean;
  rampTimeMs: number;
  /** Percentage of reads in randrw and readwrite. */
  rwmixread: number;
  verify: 'none' | 'crc32c';
  /** After writing, read back every block written and check it (fio's do_verify, default on). */
  doVerify: boolean;
  /** Stop the job at the first corrupted block (default: count them all). */
  verifyFatal: boolean;
  continueOnError: ContinueOnError;
  groupReporting: boolean;
  /** Wait for the jobs before this one to finish (starts a new group). */
  stonewall: boolean;
  newGroup: boolean;
  /** Accepted for fio compatibility; a network target has no page cache to bypass. */
  direct: boolean;
  /** The options as written, in order (fio's "job options" in its JSON output). */
  given: Record<string, string>;
}

/** Limits: every loop and buffer of the load generator is bounded by these. */
export const LIMITS = {
  minimumBlockBytes: 512,
  maximumBlockBytes: 16 * 1024 * 1024,
  maximumIodepth: 1024,
  maximumNumjobs: 64,
  /** Block sizes times queue depth of one clone: its buffers. */
  maximumBufferBytesPerClone: 256 * 1024 * 1024,
} as const;

export function defaultJobOptions(name: string): JobOptions {
  return {
    name,
    rw: 'read',
    readBlockSize: { minimumBytes: 4096, maximumBytes: 4096 },
    writeBlockSize: { minimumBytes: 4096, maximumBytes: 4096 },
    iodepth: 1,
    numjobs: 1,
    sizeBytes: null,
    offsetBytes: 0,
    offsetIncrementBytes: 0,
    runtimeMs: 0,
    timeBased: false,
    rampTimeMs: 0,
    rwmixread: 50,
    verify: 'none',
    doVerify: true,
    verifyFatal: false,
    continueOnError: 'none',
    groupReporting: false,
    stonewall: false,
    newGroup: false,
    direct: false,
    given: {},
  };
}

export function cloneJobOptions(options: JobOptions, name: string = options.name): JobOptions {
  return {
    ...options,
    name,
    readBlockSize: { ...options.readBlockSize },
    writeBlockSize: { ...options.writeBlockSize },
    given: { ...options.given },
  };
}

/**
 * fio options that `hornbill bench` accepts and ignores, with the reason shown by
 * `--help` and docs/bench.md: they choose how fio reaches a local file or device.
 */
export const IGNORED_FIO_OPTIONS: Record<string, string> = {
  ioengine: 'hornbill bench has one engine per target kind (iSCSI or NBD)',
  buffered: 'a network target has no page cache on this side',
  invalidate: 'a network target has no page cache on this side',
  thread: 'jobs run as tasks of one process',
  randrepeat: 'random offsets come from a seeded permutation (see docs/bench.md)',
  norandommap: 'random offsets come from a permutation that visits each block once per pass',
  filename: 'the target is --target (fio needs --filename or --uri instead)',
  uri: 'the target is --target (fio needs --filename or --uri instead)',
};

const RW_ALIASES: Record<string, ReadWriteMode> = {
  read: 'read',
  write: 'write',
  randread: 'randread',
  randwrite: 'randwrite',
  randrw: 'randrw',
  readwrite: 'readwrite',
  rw: 'readwrite',
};

function invalid(source: string, message: string): HornbillError {
  return new HornbillError(source === 'command line' ? 'CLI_USAGE' : 'BENCH_PROFILE_INVALID', message, {
    source,
  });
}

/** "4k", "1M", "512", "1GiB", "4KB" → bytes (fio's kb_base=1024: every suffix is a power of 1024). */
export function parseFioSize(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)$/i.exec(text.trim());
  if (match === null) return null;
  const power = ['', 'k', 'm', 'g', 't', 'p'].indexOf(match[2].toLowerCase());
  const bytes = Number(match[1]) * 1024 ** power;
  return Number.isSafeInteger(bytes) ? bytes : null;
}

/** fio time values: a number of seconds, or with a unit (us, ms, s, m, h, d) → milliseconds. */
export function parseFioTime(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*(us|usec|ms|msec|s|sec|m|min|h|d)?$/i.exec(text.trim());
  if (match === null) return null;
  const unit = (match[2] ?? 's').toLowerCase();
  const factor: Record<string, number> = {
    us: 0.001,
    usec: 0.001,
    ms: 1,
    msec: 1,
    s: 1000,
    sec: 1000,
    m: 60_000,
    min: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  };
  return Number(match[1]) * factor[unit];
}

export function parseFioBoolean(text: string): boolean | null {
  const value = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on', ''].includes(value)) return true;
  if (['0', 'false', 'no', 'off'].includes(value)) return false;
  return null;
}

/** "4k", "4k-64k" → a range; null if not a size or a range of sizes. */
export function parseBlockSizeRange(text: string): BlockSizeRange | null {
  const parts = text.split('-');
  if (parts.length > 2) return null;
  const minimumBytes = parseFioSize(parts[0]);
  const maximumBytes = parts.length === 2 ? parseFioSize(parts[1]) : minimumBytes;
  if (minimumBytes === null || maximumBytes === null) return null;
  return { minimumBytes, maximumBytes };
}

function checkBlockSize(range: BlockSizeRange, key: string, source: string): BlockSizeRange {
  const { minimumBytes, maximumBytes } = range;
  if (
    minimumBytes < LIMITS.minimumBlockBytes ||
    maximumBytes > LIMITS.maximumBlockBytes ||
    minimumBytes > maximumBytes ||
    minimumBytes % LIMITS.minimumBlockBytes !== 0 ||
    maximumBytes % minimumBytes !== 0
  ) {
    throw invalid(
      source,
      `${key}: block sizes must be multiples of 512 bytes between 512 and 16M, ` +
        `and a range's maximum a multiple of its minimum (${source})`,
    );
  }
  return range;
}

function integerIn(text: string, key: string, low: number, high: number, source: string): number {
  const value = Number(text.trim());
  if (!Number.isInteger(value) || value < low || value > high)
    throw invalid(
      source,
      `${key} must be a whole number from ${low} to ${high}, not ${JSON.stringify(text)}`,
    );
  return value;
}

function sizeValue(text: string, key: string, source: string): number {
  const bytes = parseFioSize(text);
  if (bytes === null)
    throw invalid(source, `${key} must be a size such as 4k, 512M or 1G, not ${JSON.stringify(text)}`);
  return bytes;
}

function timeValue(text: string, key: string, source: string): number {
  const milliseconds = parseFioTime(text);
  if (milliseconds === null)
    throw invalid(source, `${key} must be a time such as 30, 30s, 500ms or 2m, not ${JSON.stringify(text)}`);
  return milliseconds;
}

function booleanValue(text: string, key: string, source: string): boolean {
  const value = parseFioBoolean(text);
  if (value === null) throw invalid(source, `${key} must be 0 or 1, not ${JSON.stringify(text)}`);
  return value;
}

/** Job option names as fio spells them (`time_based`); `time-based` is accepted too. */
export function canonicalOptionName(key: string): string {
  return key.trim().toLowerCase().replaceAll('-', '_');
}

/** The options `applyJobOption` knows, for --help and for telling a typo from an unknown option. */
export const JOB_OPTION_NAMES = [
  'name',
  'rw',
  'readwrite',
  'bs',
  'bsrange',
  'iodepth',
  'numjobs',
  'size',
  'offset',
  'offset_increment',
  'runtime',
  'time_based',
  'ramp_time',
  'rwmixread',
  'rwmixwrite',
  'verify',
  'do_verify',
  'verify_fatal',
  'continue_on_error',
  'group_reporting',
  'stonewall',
  'wait_for_previous',
  'new_group',
  'direct',
  ...Object.keys(IGNORED_FIO_OPTIONS),
] as const;

/**
 * Applies one fio option to `job`. `source` names where it came from (the command line,
 * or "FILE, section [x]") for error messages. Unknown options are errors: a typo must not
 * silently leave a default in place.
 */
export function applyJobOption(job: JobOptions, rawKey: string, value: string, source: string): void {
  const key = canonicalOptionName(rawKey);
  switch (key) {
    case 'name':
      if (value.trim() === '') throw invalid(source, 'name must not be empty');
      job.name = value.trim();
      break;
    case 'rw':
    case 'readwrite': {
      const mode = RW_ALIASES[value.trim().toLowerCase()];
      if (mode === undefined) {
        throw invalid(
          source,
          `rw must be one of ${READ_WRITE_MODES.join(', ')} (rw is an alias of readwrite), not ${JSON.stringify(value)}` +
            (value.includes(':') ? ' (fio\'s ":N" offset modifiers are not supported)' : ''),
        );
      }
      job.rw = mode;
      break;
    }
    case 'bs':
    case 'bsrange': {
      // fio: "read[,write]"; with bs= a single size each, with bsrange= ranges. hornbill
      // bench takes ranges in bs too (docs/bench.md: fio's bs=4k-64k means 4k).
      const parts = value.split(',');
      if (parts.length > 3 || parts.some((part) => part.trim() === '' && parts.length === 1))
        throw invalid(
          source,
          `${key} must be SIZE or MIN-MAX, optionally ",WRITE" after, not ${JSON.stringify(value)}`,
        );
      const ranges = parts.map((part) => {
        const range = part.trim() === '' ? null : parseBlockSizeRange(part.trim());
        if (range === null && part.trim() !== '')
          throw invalid(source, `${key}: ${JSON.stringify(part)} is not a size or a range such as 4k-64k`);
        return range;
      });
      if (ranges[0] !== null) job.readBlockSize = checkBlockSize(ranges[0], key, source);
      const write = parts.length >= 2 ? ranges[1] : ranges[0];
      if (write !== null) job.writeBlockSize = checkBlockSize(write, key, source);
      break;
    }
    case 'iodepth':
      job.iodepth = integerIn(value, key, 1, LIMITS.maximumIodepth, source);
      break;
    case 'numjobs':
      job.numjobs = integerIn(value, key, 1, LIMITS.maximumNumjobs, source);
      break;
    case 'size':
      job.sizeBytes = sizeValue(value, key, source);
      if (job.sizeBytes === 0) throw invalid(source, 'size must be more than 0');
      break;
    case 'offset':
      job.offsetBytes = sizeValue(value, key, source);
      break;
    case 'offset_increment':
      job.offsetIncrementBytes = sizeValue(value, key, source);
      break;
    case 'runtime':
      job.runtimeMs = timeValue(value, key, source);
      break;
    case 'time_based':
      job.timeBased = booleanValue(value, key, source);
      break;
    case 'ramp_time':
      job.rampTimeMs = timeValue(value, key, source);
      break;
    case 'rwmixread':
      job.rwmixread = integerIn(value, key, 0, 100, source);
      break;
    case 'rwmixwrite':
      job.rwmixread = 100 - integerIn(value, key, 0, 100, source);
      break;
    case 'verify': {
      const method = value.trim().toLowerCase();
      if (method === 'crc32c' || method === 'crc32c-intel') job.verify = 'crc32c';
      else if (method === '0' || method === 'none' || method === '') job.verify = 'none';
      else throw invalid(source, `verify must be crc32c (or 0), not ${JSON.stringify(value)}`);
      break;
    }
    case 'do_verify':
      job.doVerify = booleanValue(value, key, source);
      break;
    case 'verify_fatal':
      job.verifyFatal = booleanValue(value, key, source);
      break;
    case 'continue_on_error': {
      const choice = value.trim().toLowerCase();
      const mapped = choice === '1' ? 'all' : choice === '0' ? 'none' : choice;
      if (!(CONTINUE_ON_ERROR as readonly string[]).includes(mapped))
        throw invalid(source, `continue_on_error must be one of ${CONTINUE_ON_ERROR.join(', ')}`);
      job.continueOnError = mapped as ContinueOnError;
      break;
    }
    case 'group_reporting':
      job.groupReporting = booleanValue(value, key, source);
      break;
    case 'stonewall':
    case 'wait_for_previous':
      job.stonewall = booleanValue(value, key, source);
      break;
    case 'new_group':
      job.newGroup = booleanValue(value, key, source);
      break;
    case 'direct':
      job.direct = booleanValue(value, key, source);
      break;
    default:
      if (!(key in IGNORED_FIO_OPTIONS))
        throw invalid(source, `unknown or unsupported fio option ${JSON.stringify(rawKey)} (${source})`);
  }
  if (key !== 'name') job.given[key] = value;
}

/** Cross-option checks once a job is complete. */
export function checkJob(job: JobOptions, source: string): void {
  if (job.timeBased && job.runtimeMs === 0)
    throw invalid(source, `job ${job.name}: time_based needs a runtime`);
  const largest = Math.max(job.readBlockSize.maximumBytes, job.writeBlockSize.maximumBytes);
  if (largest * job.iodepth > LIMITS.maximumBufferBytesPerClone)
    throw invalid(
      source,
      `job ${job.name}: block size × iodepth is over ${LIMITS.maximumBufferBytesPerClone / 1024 / 1024} MiB of buffers`,
    );
}

/** What a job does: reads, writes, both; sequential or random. */
export function jobShape(rw: ReadWriteMode): { reads: boolean; writes: boolean; random: boolean } {
  return {
    reads: rw === 'read' || rw === 'randread' || rw === 'randrw' || rw === 'readwrite',
    writes: rw === 'write' || rw === 'randwrite' || rw === 'randrw' || rw === 'readwrite',
    random: rw.startsWith('rand'),
  };
}

/**
 * The unit that carries a verify header: 4 KiB, or less when a block size is not a
 * multiple of 4 KiB (the largest power of two dividing every block size, at least 512).
 * Independent of the I/O size, so that blocks written with one block size verify when
 * read with another.
 */
export function verifyUnitBytes(job: JobOptions): number {
  const shape = jobShape(job.rw);
  let unit = 4096;
  for (const size of [
    shape.reads ? job.readBlockSize.minimumBytes : 4096,
    shape.writes ? job.writeBlockSize.minimumBytes : 4096,
  ]) {
    while (size % unit !== 0) unit /= 2;
  }
  return unit;
}
