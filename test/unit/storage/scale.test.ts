import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

test('a chain of 4,001 snapshots: every layer readable, reopens, purges down', (t) => {
  const directory = path.join(tempDirectory(t), 'r');
  let store = ReplicaStore.create(directory, { sizeBytes: 64 * MiB });
  const model = Buffer.alloc(64 * MiB);
  const LAYERS = 4001;
  // Each snapshot changes one block; blocks repeat, so layers shadow each other.
  for (let index = 0; index < LAYERS; index++) {
    const offset = ((index * 7919) % 6000) * 4096;
    const data = patternBytes(index, 4096);
    store.write(offset, data);
    data.copy(model, offset);
    store.snapshot(`s${index}`);
  }
  assert.equal(store.listChain().length, LAYERS + 1);
  store.close();
  store = ReplicaStore.open(directory);
  defer(t, () => store.close());
  assert.equal(store.listChain().length, LAYERS + 1);
  const view = Buffer.alloc(64 * MiB);
  store.read(0, view);
  assert.ok(view.equals(model));
  // An old snapshot still exports as it was: the first 10 writes only.
  const image = path.join(directory, '..', 's9.img');
  store.exportImage({ snapshot: 's9', outputPath: image });
  const expected = Buffer.alloc(64 * MiB);
  for (let index = 0; index < 10; index++)
    patternBytes(index, 4096).copy(expected, ((index * 7919) % 6000) * 4096);
  assert.ok(fs.readFileSync(image).equals(expected));
  // Remove every other snapshot and purge: the chain halves, the volume is unchanged.
  for (let index = 0; index < LAYERS; index += 2) store.deleteSnapshot(`s${index}`);
  const result = store.purge();
  assert.equal(result.purgedLayers, Math.ceil(LAYERS / 2));
  assert.equal(store.listChain().length, Math.floor(LAYERS / 2) + 1);
  store.read(0, view);
  assert.ok(view.equals(model));
  store.selfCheck();
  assert.equal(store.verify().badBlockCount, 0);
});

test('thin provisioning: a 1 TiB replica with 10 MiB written uses about 10 MiB', (t) => {
  const directory = path.join(tempDirectory(t), 'r');
  const store = ReplicaStore.create(directory, { sizeBytes: 1024 ** 4 });
  defer(t, () => store.close());
  // 10 MiB in 40 places spread over the whole terabyte.
  for (let index = 0; index < 40; index++) {
    store.write(index * 26 * 1024 ** 3 + index * 4096, patternBytes(index, 256 * 1024));
  }
  store.snapshot('spread');
  store.unmap(0, 1024 ** 4); // a whole-device discard, as mkfs does
  store.flush();
  const usedBytes = folderAllocatedBytes(directory);
  t.diagnostic(`1 TiB replica, 10 MiB written: ${(usedBytes / MiB).toFixed(2)} MiB on disk`);
  assert.ok(usedBytes < 12 * MiB, `uses ${usedBytes} bytes`);
  assert.ok(usedBytes >= 10 * MiB, `uses ${usedBytes} bytes: the written data must be there`);
  const probe = Buffer.alloc(256 * 1024);
  store.read(39 * 26 * 1024 ** 3 + 39 * 4096, probe);
  assert.ok(probe.equals(Buffer.alloc(256 * 1024)), 'the discard reads as zeros');
  store.revert('spread');
  store.read(39 * 26 * 1024 ** 3 + 39 * 4096, probe);
  assert.ok(probe.equals(patternBytes(39, 256 * 1024)));
});

function folderAllocatedBytes(directory: string): number {
  let total = 0;
  for (const entry of fs.readdirSync(directory, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += fs.statSync(path.join(entry.parentPath, entry.name)).blocks * 512;
  }
  return total;
}

test('the largest volume (16 TiB less 2 MiB): blocks past 2^31 work through every path', (t) => {
  const directory = path.join(tempDirectory(t), 'r');
  const sizeBytes = 16 * 1024 ** 4 - 2 * MiB;
  let store = ReplicaStore.create(directory, { sizeBytes });
  const last = sizeBytes - 8192;
  const middle = 9 * 1024 ** 4; // block 2^31 + 2^28: beyond what a signed 32-bit shift holds
  store.write(middle, patternBytes(1, 8192));
  store.write(last, patternBytes(2, 8192));
  store.snapshot('a');
  store.write(last + 4096, patternBytes(3, 4096));
  store.unmap(middle, 4096);
  store.snapshot('b');
  store.deleteSnapshot('a');
  store.purge();
  store.close();
  store = ReplicaStore.open(directory);
  defer(t, () => store.close());
  store.selfCheck();
  assert.equal(store.verify().blocksChecked, 3);
  const out = Buffer.alloc(8192);
  store.read(last, out);
  assert.ok(out.equals(Buffer.concat([patternBytes(2, 8192).subarray(0, 4096), patternBytes(3, 4096)])));
  store.read(middle, out);
  assert.ok(out.equals(Buffer.concat([Buffer.alloc(4096), patternBytes(1, 8192).subarray(4096)])));
  assert.deepEqual(store.mappingStatus(middle, 8192), [
    { offsetBytes: middle, lengthBytes: 4096, mapped: false },
    { offsetBytes: middle + 4096, lengthBytes: 4096, mapped: true },
  ]);
  assert.match(store.hashSnapshot('b'), /^[0-9a-f]{64}$/);
});
