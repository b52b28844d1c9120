import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;
const hornbill = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [hornbill, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function sampleReplica(root: string): string {
  const directory = path.join(root, 'replica');
  const store = ReplicaStore.create(directory, { sizeBytes: 8 * MiB });
  store.write(0, patternBytes(1, MiB));
  store.snapshot('nightly', { labels: { job: 'backup' } });
  store.write(4 * MiB, patternBytes(2, 2 * MiB));
  store.close();
  return directory;
}

test('replica inspect prints the chain, counters and a verify summary', (t) => {
  const directory = sampleReplica(tempDirectory(t));
  const table = run('replica', 'inspect', '--dir', directory);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /Volume size\s+8\.00 MiB \(8388608 bytes\)/);
  assert.match(table.stdout, /Revision counter\s+2/);
  assert.match(table.stdout, /^nightly\s+-\s+\S+\s+yes\s+no\s+1\.00 MiB\s+yes\s+job=backup$/m);
  assert.match(table.stdout, /^volume-head\s+nightly\s/m);
  assert.match(table.stdout, /Verify\s+768 blocks in 2 layers, 0 bad/);
  const json = run('replica', 'inspect', '--dir', directory, '-o', 'json');
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  assert.equal(parsed.sizeBytes, 8 * MiB);
  assert.deepEqual(
    parsed.layers.map((layer: { name: string; dataBytes: number }) => [layer.name, layer.dataBytes]),
    [
      ['nightly', MiB],
      ['volume-head', 2 * MiB],
    ],
  );
});

test('replica export writes a sparse image of the volume or a snapshot', (t) => {
  const root = tempDirectory(t);
  const directory = sampleReplica(root);
  const volumeImage = path.join(root, 'volume.img');
  const result = run('replica', 'export', '--dir', directory, '--output', volumeImage);
  assert.equal(result.status, 0, result.stderr);
  const expected = Buffer.alloc(8 * MiB);
  patternBytes(1, MiB).copy(expected, 0);
  patternBytes(2, 2 * MiB).copy(expected, 4 * MiB);
  assert.ok(fs.readFileSync(volumeImage).equals(expected));
  assert.ok(fs.statSync(volumeImage).blocks * 512 <= 3 * MiB + 64 * 1024, 'the image is sparse');
  const snapshotImage = path.join(root, 'nightly.img');
  assert.equal(
    run('replica', 'export', '--dir', directory, '--snapshot', 'nightly', '--output', snapshotImage).status,
    0,
  );
  expected.fill(0, 4 * MiB);
  assert.ok(fs.readFileSync(snapshotImage).equals(expected));
  // The output file must not exist yet: an export never overwrites.
  const again = run('replica', 'export', '--dir', directory, '--output', snapshotImage);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /STORE_IO/);
});

test('a corrupt block: inspect exits 3 naming it; export stops, or skips it on request', (t) => {
  const root = tempDirectory(t);
  const directory = sampleReplica(root);
  const head = path.join(directory, 'layers', '000002.img');
  const fd = fs.openSync(head, 'r+');
  fs.writeSync(fd, Buffer.from([0xff]), 0, 1, 4 * MiB + 3 * 4096 + 100);
  fs.closeSync(fd);
  const inspect = run('replica', 'inspect', '--dir', directory);
  assert.equal(inspect.status, 3);
  assert.match(inspect.stdout, /1 bad/);
  assert.match(inspect.stdout, /bad block 1027 \(offset 4206592\) in layer volume-head/);
  const stopped = run('replica', 'export', '--dir', directory, '--output', path.join(root, 'a.img'));
  assert.equal(stopped.status, 1);
  assert.match(stopped.stderr, /STORE_CHECKSUM_MISMATCH: block 1027/);
  assert.ok(!fs.existsSync(path.join(root, 'a.img')), 'a failed export leaves no file');
  const skipped = run(
    'replica',
    'export',
    '--dir',
    directory,
    '--output',
    path.join(root, 'b.img'),
    '--skip-corrupt',
  );
  assert.equal(skipped.status, 3);
  assert.match(skipped.stdout, /block 1027 of layer volume-head failed its checksum; written as zeros/);
});

test('bad command lines exit 2 with a coded message; a missing folder exits 1', () => {
  for (const args of [
    ['replica', 'inspect'],
    ['replica', 'inspect', '--dir'],
    ['replica', 'frob'],
    ['replica', 'inspect', '--dir', 'x', '--bogus'],
    ['nonsense'],
  ]) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, /CLI_USAGE/);
  }
  const missing = run('replica', 'inspect', '--dir', '/nonexistent/replica');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /STORE_INDEX_MISSING/);
});
