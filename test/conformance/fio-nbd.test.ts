import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { crc32c } from '@node-rs/crc32';
import { NbdServer } from '../../src/dataplane/nbd/index.ts';
import { StoreBlockDevice } from '../../src/dataplane/store-block-device.ts';
import { ReplicaStore } from '../../src/storage/replica-store.ts';
import { requireTool } from '../helpers/tools.ts';

/**
 * Issue 4, must-hold 1 for NBD: real fio (`--ioengine=nbd`, libnbd) against a Hornbill
 * volume (one replica store behind the NBD server), with verification, then a check through
 * Hornbill's own read path that the blocks fio wrote are in the store: fio's verify header
 * (magic 0xacca, block length, block offset) and its CRC32C over the block's data.
 */

const MiB = 1024 * 1024;
const VOLUME_BYTES = 256 * MiB;
const run = promisify(execFile);

interface FioJob {
  jobname: string;
  error: number;
  read: { io_bytes: number; iops: number };
  write: { io_bytes: number; iops: number };
  trim: { io_bytes: number; iops: number };
}

let directory = '';
let store: ReplicaStore;
let server: NbdServer;
let uri = '';
const warnings: string[] = [];

/** Runs fio with JSON output; returns its jobs. Fails on a non-zero exit or any job error. */
async function fio(name: string, args: string[]): Promise<FioJob[]> {
  const output = path.join(directory, `${name}.json`);
  const command = [
    '--name',
    name,
    '--ioengine=nbd',
    `--uri=${uri}`,
    '--output-format=json',
    `--output=${output}`,
    ...args,
  ];
  let failure = '';
  try {
    // In the temp folder: fio leaves verify state files in its working directory.
    await run('fio', command, { cwd: directory, timeout: 300_000, maxBuffer: 16 * MiB });
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    failure = `fio exited with ${failed.code}: ${failed.stdout}${failed.stderr}`;
  }
  const report = fs.existsSync(output) ? fs.readFileSync(output, 'utf8') : '';
  assert.equal(failure, '', `fio ${command.join(' ')}\n${report.slice(0, 2000)}`);
  const jobs = (JSON.parse(report) as { jobs: FioJob[] }).jobs;
  for (const job of jobs) assert.equal(job.error, 0, `fio job ${job.jobname} reported error ${job.error}`);
  return jobs;
}

/** Reads through the store (not NBD) and checks fio's verify blocks; returns how many carried a header. */
function checkFioBlocks(offsetBytes: number, lengthBytes: number, blockBytes: number): number {
  const data = Buffer.alloc(lengthBytes);
  for (let position = 0; position < lengthBytes; position += 32 * MiB) {
    store.read(offsetBytes + position, data.subarray(position, Math.min(lengthBytes, position + 32 * MiB)));
  }
  let withHeader = 0;
  for (let position = 0; position < lengthBytes; position += blockBytes) {
    const block = data.subarray(position, position + blockBytes);
    if (block.readUInt16LE(0) !== 0xacca) {
      // Never written by fio: the store must return zeros, nothing else.
      assert.ok(
        block.equals(Buffer.alloc(blockBytes)),
        `block at ${offsetBytes + position} is neither fio's nor zeros`,
      );
      continue;
    }
    withHeader++;
    assert.equal(block.readUInt32LE(4), blockBytes, `verify length at ${offsetBytes + position}`);
    assert.equal(
      Number(block.readBigUInt64LE(16)),
      offsetBytes + position,
      `fio's offset at ${offsetBytes + position}`,
    );
    // fio's crc32c verify: a 40-byte header, then the CRC32C of the rest of the block as
    // fio computes it (without the final inversion of standard CRC32C).
    const checksum = ~crc32c(block.subarray(44)) >>> 0;
    assert.equal(checksum, block.readUInt32LE(40), `data checksum at ${offsetBytes + position}`);
  }
  return withHeader;
}

describe('fio --ioengine=nbd against a Hornbill volume', () => {
  before(async () => {
    directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-fio-nbd-'));
    store = ReplicaStore.create(path.join(directory, 'replica'), { sizeBytes: VOLUME_BYTES });
    server = new NbdServer({
      port: 0,
      log: (level, message, details) => {
        if (level === 'warn' || level === 'error') warnings.push(`${message} ${JSON.stringify(details)}`);
      },
    });
    server.addExport('pvc-fio', new StoreBlockDevice(store, 'pvc-fio'));
    const { port } = await server.listen();
    uri = `nbd://127.0.0.1:${port}/pvc-fio`;
  });

  after(async () => {
    await server?.close();
    store?.close();
    if (directory !== '') fs.rmSync(directory, { recursive: true, force: true });
  });

  test('random read/write, 4 KiB, iodepth 16, verify=crc32c', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const [job] = await fio('randrw-4k', [
      '--rw=randrw',
      '--bs=4k',
      '--iodepth=16',
      '--offset=0',
      '--size=64M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
    ]);
    t.diagnostic(`randrw: wrote ${job.write.io_bytes} B, read ${job.read.io_bytes} B (verify included)`);
    assert.ok(job.write.io_bytes > 16 * MiB, 'fio wrote');
    assert.ok(job.read.io_bytes > job.write.io_bytes, 'fio read back (random reads plus verification)');
    const written = checkFioBlocks(0, 64 * MiB, 4096);
    t.diagnostic(`store: ${written} blocks of 4 KiB carry fio's header, offset and checksum`);
    assert.ok(written > 4000, `fio blocks found in the store: ${written}`);
  });

  test('two connections at once (numjobs=2, multi-conn), random 4 KiB read/write with verify', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const jobs = await fio('randrw-2-connections', [
      '--rw=randrw',
      '--bs=4k',
      '--iodepth=16',
      '--numjobs=2',
      '--offset=80M',
      '--offset_increment=8M',
      '--size=8M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
    ]);
    assert.equal(jobs.length, 2);
    for (const job of jobs) assert.ok(job.write.io_bytes > 2 * MiB && job.read.io_bytes > job.write.io_bytes);
    assert.ok(checkFioBlocks(80 * MiB, 16 * MiB, 4096) > 1000);
  });

  test('sequential write then verify, 1 MiB blocks, iodepth 8', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const [job] = await fio('write-1m', [
      '--rw=write',
      '--bs=1M',
      '--iodepth=8',
      '--offset=128M',
      '--size=128M',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
    ]);
    assert.equal(job.write.io_bytes, 128 * MiB);
    assert.equal(job.read.io_bytes, 128 * MiB, 'every block was read back and verified');
    assert.equal(checkFioBlocks(128 * MiB, 128 * MiB, MiB), 128, 'every 1 MiB block is in the store');
  });

  test('trim: written data trimmed by fio reads back as zeros (fio pattern verify) and is unmapped', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const region = ['--offset=64M', '--size=16M', '--bs=64k', '--iodepth=8'];
    await fio('fill', ['--rw=write', ...region, '--verify=crc32c', '--do_verify=1']);
    assert.equal(checkFioBlocks(64 * MiB, 16 * MiB, 64 * 1024), 256);
    const [trim] = await fio('randtrim', ['--rw=randtrim', ...region]);
    assert.equal(trim.trim.io_bytes, 16 * MiB, 'fio trimmed the whole region');
    // fio reads the region back and checks every byte against the pattern 0x00.
    const [check] = await fio('verify-zeros', [
      '--rw=write',
      ...region,
      '--verify=pattern',
      '--verify_pattern=0x00',
      '--verify_only=1',
    ]);
    assert.equal(check.read.io_bytes, 16 * MiB, 'fio verified the whole region');
    const zeros = Buffer.alloc(16 * MiB);
    store.read(64 * MiB, zeros);
    assert.ok(zeros.equals(Buffer.alloc(16 * MiB)), 'the store returns zeros');
    const runs = store.mappingStatus(64 * MiB, 16 * MiB);
    assert.deepEqual(
      runs,
      [{ offsetBytes: 64 * MiB, lengthBytes: 16 * MiB, mapped: false }],
      'space given back',
    );
  });

  test('trimwrite (trim then write each block) with verify=crc32c', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    const [job] = await fio('trimwrite', [
      '--rw=trimwrite',
      '--offset=96M',
      '--size=32M',
      '--bs=64k',
      '--iodepth=8',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
    ]);
    assert.equal(job.trim.io_bytes, 32 * MiB);
    assert.equal(job.write.io_bytes, 32 * MiB);
    assert.equal(checkFioBlocks(96 * MiB, 32 * MiB, 64 * 1024), 512);
  });

  test('the server logged no warning and holds no request or buffer afterwards', async (t) => {
    if (!requireTool(t, 'fio', 'fio')) return;
    assert.deepEqual(warnings, []);
    const stats = server.stats();
    assert.equal(stats.requestsInFlight, 0);
    assert.equal(stats.payloadBytesInUse, 0);
    assert.equal(stats.connectionsOpen, 0);
    assert.ok(stats.connectionsAccepted >= 8);
  });
});
