import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { NbdTestClient } from '../../helpers/nbd-client.ts';
import { type HornbillProcess, startHornbill } from '../../helpers/processes.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';

/**
 * Issue 7, must-hold 1: `hornbill bench --verify crc32c` finds a block corrupted behind its
 * back and reports it with its offset. Real processes: a `hornbill replica`, a `hornbill
 * engine` with an NBD or iSCSI frontend, `hornbill bench` as the command a user runs.
 */

const MiB = 1024 * 1024;
const HORNBILL = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');

function bench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HORNBILL, 'bench', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function volume(
  t: TestContext,
  frontend: 'nbd' | 'iscsi',
): Promise<{ directory: string; replica: HornbillProcess; engine: HornbillProcess; target: string }> {
  const directory = tempDirectory(t, 'hornbill-bench-verify-');
  const replica = await startHornbill(t, [
    'replica',
    '--dir',
    path.join(directory, 'r0'),
    '--size',
    '64Mi',
    '--listen',
    '127.0.0.1:0',
  ]);
  const engine = await startHornbill(t, [
    'engine',
    '--name',
    'vol1',
    '--size',
    '64Mi',
    '--replica',
    `127.0.0.1:${replica.ready.port}`,
    '--frontend',
    frontend,
    '--listen',
    '127.0.0.1:0',
  ]);
  const target =
    frontend === 'nbd'
      ? `nbd://127.0.0.1:${engine.ready.nbd.port}/vol1`
      : `iscsi://127.0.0.1:${engine.ready.iscsi.port}/${engine.ready.iscsi.iqn}/0`;
  return { directory, replica, engine, target };
}

describe('hornbill bench --verify crc32c', () => {
  test('a block overwritten behind its back (a raw write without its header) is reported with its offset', async (t) => {
    const { engine, target } = await volume(t, 'nbd');
    const region = ['--size', '8M', '--offset', '4M'];
    const write = await bench([
      '--target',
      target,
      '--rw',
      'randwrite',
      '--bs',
      '16k',
      '--iodepth',
      '8',
      '--verify',
      'crc32c',
      ...region,
    ]);
    assert.equal(write.code, 0, write.stdout + write.stderr);
    assert.match(write.stdout, /verify: job bench: crc32c, 4096-byte blocks: 2048 checked, 0 corrupted/);

    // Behind the load generator's back: one 4 KiB block rewritten by another client.
    const corruptOffset = 4 * MiB + 3 * MiB + 20 * 4096;
    const { client } = await NbdTestClient.attach(engine.ready.nbd.port, 'vol1');
    await client.write(corruptOffset, patternBytes(7, 4096));
    await client.disconnect();

    const read = await bench([
      '--target',
      target,
      '--rw',
      'randread',
      '--bs',
      '8k',
      '--iodepth',
      '4',
      '--verify',
      'crc32c',
      ...region,
    ]);
    assert.equal(read.code, 3, `exit 3: corrupted blocks found\n${read.stdout}${read.stderr}`);
    assert.match(
      read.stdout,
      new RegExp(`verify: job bench: corrupted block at offset ${corruptOffset}: no header\\n`),
    );
    assert.match(read.stdout, /verify: job bench: crc32c, 4096-byte blocks: 2048 checked, 1 corrupted/);
    assert.match(read.stdout, /summary: bench: read .* errors=1$/m);

    const json = await bench([
      '--target',
      target,
      '--rw',
      'read',
      '--bs',
      '64k',
      '--verify',
      'crc32c',
      '--output-format',
      'json',
      ...region,
    ]);
    assert.equal(json.code, 3);
    const report = JSON.parse(json.stdout) as { jobs: { error: number; read: { io_bytes: number } }[] };
    assert.equal(report.jobs[0].error, 84, 'EILSEQ in the job, as fio reports verify failures');
    assert.equal(report.jobs[0].read.io_bytes, 8 * MiB);
    assert.match(
      json.stderr,
      new RegExp(`hornbill bench: verify: job bench: corrupted block at offset ${corruptOffset}: no header`),
    );
  });

  test("a block damaged in the replica's layer file is an I/O error, counted and shown with the offset", async (t) => {
    const { directory, target } = await volume(t, 'iscsi');
    const write = await bench([
      '--target',
      target,
      '--rw',
      'write',
      '--bs',
      '64k',
      '--iodepth',
      '4',
      '--size',
      '4M',
      '--verify',
      'crc32c',
    ]);
    assert.equal(write.code, 0, write.stdout + write.stderr);
    // Flip one byte of block 100 in the replica's head layer file (the store checks every read).
    const layers = path.join(directory, 'r0', 'layers');
    const [layer] = fs.readdirSync(layers).filter((name) => name.endsWith('.img'));
    const descriptor = fs.openSync(path.join(layers, layer), 'r+');
    const byte = Buffer.alloc(1);
    fs.readSync(descriptor, byte, 0, 1, 100 * 4096 + 77);
    byte[0] ^= 0xff;
    fs.writeSync(descriptor, byte, 0, 1, 100 * 4096 + 77);
    fs.closeSync(descriptor);

    const read = await bench([
      '--target',
      target,
      '--rw',
      'read',
      '--bs',
      '4k',
      '--size',
      '4M',
      '--verify',
      'crc32c',
    ]);
    assert.equal(read.code, 1, `exit 1: the target failed I/O\n${read.stdout}${read.stderr}`);
    assert.match(
      read.stdout,
      /errors: job bench: [1-9]\d* failed I\/O, 0 read\(s\) with corrupted blocks; first: ISCSI_SCSI_ERROR: READ\(16\) at offset 409600: SCSI status 0x2, sense key 0x3/,
    );
    assert.match(read.stdout, /err= 5:/, "fio's errno for the job: EIO");
    const summary = /summary: bench: read .* errors=(\d+)$/m.exec(read.stdout);
    assert.ok(summary !== null && Number(summary[1]) >= 1, read.stdout);
    // The job reads in order and stops at the damaged block: the blocks before it were read and checked.
    assert.match(read.stdout, /verify: job bench: crc32c, 4096-byte blocks: (9\d|100) checked, 0 corrupted/);
  });
});
