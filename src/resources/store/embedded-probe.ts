/**
 * LMDB trusts its file: a damaged page can crash the process (SIGSEGV) instead of raising
 * an error (src/storage/index-probe.ts measured it for lmdb-js 3.5). The manager must
 * not die of a bad state file, so before the embedded store opens it in-process:
 *  1. without LMDB: the file is empty (never written: LMDB initializes it) or at least two
 *     pages whose two meta pages carry LMDB's magic and data version;
 *  2. in a child process: the file is opened read-only and verified record by record
 *     (embedded-verify.ts). A child killed by a signal means a damaged file; a coded error
 *     from it is raised here.
 * Run as a script, this file is the child.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromWire, HornbillError, isHornbillError, type WireError } from '../../errors.ts';

const LMDB_MAGIC = 0xbeefc0de;
const LMDB_DATA_VERSION = 2;
const META_MAGIC_OFFSET = 24;
const PAGE_SIZES = [4096, 8192, 16384, 65536];
/** A probe of a healthy store takes well under a second; this bounds a pathological one. */
const PROBE_TIMEOUT_MS = 120_000;
const EXIT_CODED_ERROR = 3;

export type ProbeResult = 'empty' | 'uninitialized' | 'sound';

function corrupt(filePath: string, reason: string, details: Record<string, unknown> = {}): HornbillError {
  return new HornbillError('RESOURCE_STORE_CORRUPT', `state store ${filePath} is damaged: ${reason}`, {
    path: filePath,
    ...details,
  });
}

/** Step 1. Returns 'empty' for a zero-length file (a crash before LMDB wrote its first page). */
export function checkStateHeader(filePath: string): 'empty' | 'lmdb' {
  const fd = fs.openSync(filePath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return 'empty';
    const pageSize = PAGE_SIZES.find((candidate) => size >= 2 * candidate && size % candidate === 0);
    if (pageSize === undefined)
      throw corrupt(filePath, `its size (${size} bytes) is not two or more LMDB pages`);
    for (const [index, offset] of [0, pageSize].entries()) {
      const page = Buffer.alloc(64);
      fs.readSync(fd, page, 0, 64, offset);
      if (
        page.readUInt32LE(META_MAGIC_OFFSET) !== LMDB_MAGIC ||
        page.readUInt32LE(META_MAGIC_OFFSET + 4) !== LMDB_DATA_VERSION
      ) {
        throw corrupt(filePath, `meta page ${index} does not carry LMDB's magic and version`);
      }
    }
    return 'lmdb';
  } finally {
    fs.closeSync(fd);
  }
}

/** Steps 1 and 2. */
export function probeStateFile(filePath: string): ProbeResult {
  if (checkStateHeader(filePath) === 'empty') return 'empty';
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), filePath], {
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status === 0) return JSON.parse(result.stdout) as ProbeResult;
  if (result.status === EXIT_CODED_ERROR) throw fromWire(JSON.parse(result.stdout) as WireError);
  const how =
    result.signal !== null
      ? `LMDB crashed reading it (${result.signal})`
      : `the probe failed (exit ${result.status})`;
  throw corrupt(filePath, how, { stderr: result.stderr.slice(-2000) });
}

async function runProbe(filePath: string): Promise<void> {
  const { StateDatabase, StateNotInitialized } = await import('./embedded-database.ts');
  const { verifyState } = await import('./embedded-verify.ts');
  let outcome: ProbeResult = 'sound';
  try {
    const database = StateDatabase.open(filePath, { readOnly: true });
    try {
      const report = verifyState(database);
      if (report.problems.length > 0) {
        throw corrupt(filePath, report.problems.join('; '), { problems: report.problems });
      }
    } finally {
      await database.close();
    }
  } catch (error) {
    if (error instanceof StateNotInitialized) {
      outcome = 'uninitialized';
    } else {
      const wire: WireError = isHornbillError(error)
        ? error.toWire()
        : {
            code: 'RESOURCE_STORE_CORRUPT',
            message: `state store ${filePath}: ${(error as Error).message}`,
            details: {},
          };
      process.stdout.write(JSON.stringify(wire));
      process.exit(EXIT_CODED_ERROR);
    }
  }
  process.stdout.write(JSON.stringify(outcome));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runProbe(process.argv[2]);
