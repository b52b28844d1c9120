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
