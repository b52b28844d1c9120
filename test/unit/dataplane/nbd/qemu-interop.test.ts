import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { patternBytes } from '../../../helpers/temp.ts';
import { requireTool } from '../../../helpers/tools.ts';
import { MiB, startServer } from './fixture.ts';

/**
 * Clients nobody here wrote: qemu's NBD client (libnbd-free, its own implementation) via
 * qemu-img and qemu-io from qemu-utils. The server runs in this process, so the tools run
 * asynchronously.
 */

const run = promisify(execFile);

async function tool(command: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(command, args, { timeout: 60_000, maxBuffer: 16 * MiB });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : -1,
      output: `${failed.stdout}${failed.stderr}`,
    };
  }
}

describe('NBD interop with qemu-utils', () => {
  test('qemu-img info sees the export size and format', async (t) => {
    if (!requireTool(t, 'qemu-img', 'qemu-utils')) return;
    const { port } = await startServer(t, { sizeBytes: 24 * MiB });
    const { code, output } = await tool('qemu-img', ['info', '--output=json', `nbd://127.0.0.1:${port}/vol`]);
    assert.equal(code, 0, output);
    const info = JSON.parse(output);
    assert.equal(info['virtual-size'], 24 * MiB);
    assert.equal(info.format, 'raw');
  });

  test('qemu-io writes, reads, zeroes, discards and flushes; the store holds the result', async (t) => {
    if (!requireTool(t, 'qemu-io', 'qemu-utils')) return;
    const fixture = await startServer(t, { sizeBytes: 16 * MiB });
    const url = `nbd://127.0.0.1:${fixture.port}/vol`;
    const commands = [
      'write -P 0xab 0 1M',
      'read -P 0xab 0 1M',
      'write -f -P 0xcd 1M 64k',
      'discard 0 64k',
      'read -P 0 0 64k',
      'write -z 128k 64k',
      'write -z -u 256k 64k',
      'read -P 0 128k 64k',
      'aio_write -P 0x11 4M 64k',
      'aio_write -P 0x22 5M 128k',
      'aio_write -P 0x33 6M 4k',
      'aio_flush',
      'read -P 0x22 5M 128k',
      'flush',
    ];
    const { code, output } = await tool('qemu-io', [
      '-f',
      'raw',
      url,
      ...commands.flatMap((command) => ['-c', command]),
    ]);
    assert.equal(code, 0, output);
    assert.doesNotMatch(output, /failed|error/i);
    const expected = Buffer.alloc(16 * MiB);
    expected.fill(0xab, 0, MiB);
    expected.fill(0xcd, MiB, MiB + 64 * 1024);
    expected.fill(0, 0, 64 * 1024);
    expected.fill(0, 128 * 1024, 192 * 1024);
    expected.fill(0, 256 * 1024, 320 * 1024);
    expected.fill(0x11, 4 * MiB, 4 * MiB + 64 * 1024);
    expected.fill(0x22, 5 * MiB, 5 * MiB + 128 * 1024);
    expected.fill(0x33, 6 * MiB, 6 * MiB + 4096);
    assert.ok(fixture.readAll().equals(expected), 'the replica store holds what qemu-io wrote');

    // A negative control: qemu-io notices a wrong pattern, so the checks above mean something.
    const wrong = await tool('qemu-io', ['-f', 'raw', url, '-c', 'read -P 0x99 0 4k']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.output, /Pattern verification failed/);
  });

  test('qemu-img map reads base:allocation block status as the store maps it', async (t) => {
    if (!requireTool(t, 'qemu-img', 'qemu-utils')) return;
    const fixture = await startServer(t, { sizeBytes: 8 * MiB });
    fixture.store.write(MiB, patternBytes(1, 256 * 1024));
    fixture.store.write(5 * MiB, patternBytes(2, 4096));
    const { code, output } = await tool('qemu-img', [
      'map',
      '--output=json',
      `nbd://127.0.0.1:${fixture.port}/vol`,
    ]);
    assert.equal(code, 0, output);
    const extents = (
      JSON.parse(output) as { start: number; length: number; data: boolean; zero: boolean }[]
    ).map(({ start, length, data, zero }) => ({ start, length, data, zero }));
    assert.deepEqual(extents, [
      { start: 0, length: MiB, data: false, zero: true },
      { start: MiB, length: 256 * 1024, data: true, zero: false },
      { start: MiB + 256 * 1024, length: 4 * MiB - 256 * 1024, data: false, zero: true },
      { start: 5 * MiB, length: 4096, data: true, zero: false },
      { start: 5 * MiB + 4096, length: 3 * MiB - 4096, data: false, zero: true },
    ]);
  });

  test('qemu-img convert copies a sparse image onto the export and qemu-img compare agrees', async (t) => {
    if (!requireTool(t, 'qemu-img', 'qemu-utils')) return;
    const fixture = await startServer(t, { sizeBytes: 16 * MiB });
    // Old data everywhere first: convert must zero the holes of the source, not skip them.
    fixture.store.write(0, patternBytes(9, 16 * MiB));
    const source = path.join(fixture.directory, 'source.img');
    const image = Buffer.alloc(16 * MiB);
    patternBytes(3, 3 * MiB).copy(image, 2 * MiB);
    patternBytes(4, 512 * 1024).copy(image, 11 * MiB);
    fs.writeFileSync(source, image);
    const url = `nbd://127.0.0.1:${fixture.port}/vol`;
    const converted = await tool('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', source, url]);
    assert.equal(converted.code, 0, converted.output);
    const compared = await tool('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, url]);
    assert.equal(compared.code, 0, compared.output);
    assert.match(compared.output, /Images are identical/);
    assert.ok(fixture.readAll().equals(image));
  });

  test('qemu-io cannot write to a read-only export', async (t) => {
    if (!requireTool(t, 'qemu-io', 'qemu-utils')) return;
    const fixture = await startServer(t, { exportOptions: { readOnly: true } });
    const url = `nbd://127.0.0.1:${fixture.port}/vol`;
    const written = await tool('qemu-io', ['-f', 'raw', url, '-c', 'write -P 0x55 0 4k']);
    assert.notEqual(written.code, 0, written.output);
    const read = await tool('qemu-io', ['-r', '-f', 'raw', url, '-c', 'read -P 0 0 4k']);
    assert.equal(read.code, 0, read.output);
    assert.ok(fixture.readAll().equals(Buffer.alloc(16 * MiB)));
  });
});
