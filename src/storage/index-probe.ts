/**
 * LMDB trusts its file: a damaged page can make the native code crash the process
 * (SIGSEGV) instead of returning an error — measured here with lmdb-js 3.5 on a zeroed,
 * truncated or scribbled index. A replica server must never die of a bad file, so before
 * an index is opened in-process it is checked twice:
 *  1. in-process, without LMDB: the file is at least two pages long and both meta pages
 *     carry LMDB's magic and data version (catches garbage and truncation; nothing is
 *     written);
 *  2. in a child process: the index is opened read-only and every record is read and
 *     validated. If the child dies of a signal, the index is corrupt; if it reports a coded
 *     error, that error is raised here.
 * Run as a script, this file is the child.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fromWire, HornbillError, isHornbillError, type WireError } from '../errors.ts';

const LMDB_MAGIC = 0xbeefc0de;
const LMDB_DATA_VERSION = 2;
const META_MAGIC_OFFSET = 24;
const PAGE_SIZES = [4096, 8192, 16384, 65536];
/** A probe of a healthy index takes well under a second; this bounds a pathological one. */
const PROBE_TIMEOUT_MS = 120_000;

function corrupt(filePath: string, reason: string, details: Record<string, unknown> = {}): HornbillError {
  return new HornbillError('STORE_INDEX_CORRUPT', `index ${filePath} is damaged: ${reason}`, {
    path: filePath,
    ...details,
  });
}

/** Step 1: the two LMDB meta pages look like LMDB meta pages. */
export function checkIndexHeader(filePath: string): void {
  const fd = fs.openSync(filePath, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const first = Buffer.alloc(64);
    fs.readSync(fd, first, 0, 64, 0);
    const pageSize = PAGE_SIZES.find((candidate) => size >= 2 * candidate && size % candidate === 0);
    if (pageSize === undefined)
      throw corrupt(filePath, `its size (${size} bytes) is not two or more LMDB pages`);
    const second = Buffer.alloc(64);
    fs.readSync(fd, second, 0, 64, pageSize);
    for (const [index, page] of [first, second].entries()) {
      if (
        page.readUInt32LE(META_MAGIC_OFFSET) !== LMDB_MAGIC ||
        page.readUInt32LE(META_MAGIC_OFFSET + 4) !== LMDB_DATA_VERSION
      ) {
        throw corrupt(filePath, `meta page ${index} does not carry LMDB's magic and version`);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** Step 2: read everything in a child process that may crash instead of us. */
export function probeIndex(filePath: string): void {
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), filePath], {
    encoding: 'utf8',
    timeout: PROBE_TIMEOUT_MS,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (result.status === 0) return;
  if (result.status === 3) throw fromWire(JSON.parse(result.stdout) as WireError);
  const how =
    result.signal !== null
      ? `LMDB crashed reading it (${result.signal})`
      : `the probe failed (${result.status})`;
  throw corrupt(filePath, how, { stderr: result.stderr.slice(-2000) });
}

async function runProbe(filePath: string): Promise<void> {
  const { IndexDb } = await import('./index-db.ts');
  try {
    const index = IndexDb.open(filePath, { readOnly: true });
    try {
      index.readAll();
    } finally {
      index.close();
    }
  } catch (error) {
    const wire: WireError = isHornbillError(error)
      ? error.toWire()
      : {
          code: 'STORE_INDEX_CORRUPT',
          message: `index ${filePath}: ${(error as Error).message}`,
          details: {},
        };
    process.stdout.write(JSON.stringify(wire));
    process.exit(3);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await runProbe(process.argv[2]);
