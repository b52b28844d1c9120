import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { alignedBuffer, crc32c } from '../../../src/native.ts';
import { BlockState, HEAD_DISPLAY_NAME } from '../../../src/storage/constants.ts';
import { DirectDescriptor, isDirectRefusal } from '../../../src/storage/direct-descriptor.ts';
import { PAST_CACHE_MIN_BLOCKS } from '../../../src/storage/layer-sync.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes } from '../../helpers/temp.ts';
import { requirePrerequisite } from '../../helpers/tools.ts';

/**
 * A rebuild's writes into a snapshot layer go past the page cache (O_DIRECT, on the thread
 * pool: ReplicaStore.writeLayerBlocksPastCache): the data is in the file before the blocks
 * enter the journal and the layer's table, the layer reads as before until then, and a
 * closed store or a deleted layer turns the write into a coded error.
 */

const MiB = 1024 * 1024;
const BLOCK = 4096;
const ROOT = path.join(import.meta.dirname, '..', '..', '..');

/** A temp folder whose file system takes O_DIRECT (tmpfs does not), or undefined. */
function directIoDirectory(t: TestContext): string | undefined {
  for (const parent of [os.tmpdir(), path.join(ROOT, '.test-scratch')]) {
    fs.mkdirSync(parent, { recursive: true });
    const directory = fs.mkdtempSync(path.join(parent, 'hornbill-direct-'));
    defer(t, () => fs.rmSync(directory, { recursive: true, force: true }));
    const probe = path.join(directory, 'probe');
    fs.writeFileSync(probe, '');
    try {
      fs.closeSync(fs.openSync(probe, fs.constants.O_WRONLY | fs.constants.O_DIRECT));
      fs.rmSync(probe);
      return directory;
    } catch {
      fs.rmSync(probe);
    }
  }
  return undefined;
}

/**
 * Whether these tests can run here: the store writes past the page cache only with the
 * native addon (it tells where memory lies) and on a file system that takes O_DIRECT.
 * Without either, the store writes through the page cache (layer-sync.test.ts covers that).
 */
function directWritesPossible(
  t: TestContext,
  root: string | undefined,
  aligned: Buffer | undefined,
): { root: string; aligned: Buffer } | undefined {
  const built = requirePrerequisite(
    t,
    aligned !== undefined,
    'the native addon is not built (npm ci builds it with node-gyp: install the Debian package build-essential)',
  );
  if (!built || aligned === undefined) return undefined;
  const directIo = requirePrerequisite(
    t,
    root !== undefined,
    `neither ${os.tmpdir()} nor the project's .test-scratch folder takes O_DIRECT (tmpfs refuses it)`,
  );
  return directIo && root !== undefined ? { root, aligned } : undefined;
}

function blockChecksums(data: Uint8Array): Uint32Array {
  const out = new Uint32Array(data.length / BLOCK);
  for (let index = 0; index < out.length; index++)
    out[index] = crc32c(data.subarray(index * BLOCK, (index + 1) * BLOCK));
  return out;
}

function dataStates(blocks: number): Uint8Array {
  return new Uint8Array(blocks).fill(BlockState.DATA);
}

/** A store with snapshot 'base' (the layer a rebuild would fill) and its aligned test data. */
function setup(t: TestContext): { store: ReplicaStore; directory: string; data: Buffer } | undefined {
  const possible = directWritesPossible(t, directIoDirectory(t), alignedBuffer(64 * BLOCK));
  if (possible === undefined) return undefined;
  const { root, aligned: data } = possible;
  const directory = path.join(root, 'replica');
  const store = ReplicaStore.create(directory, { sizeBytes: 16 * MiB });
  defer(t, () => store.close());
  store.snapshot('base');
  data.set(patternBytes(7, data.length));
  return { store, directory, data };
}

test('blocks written past the page cache enter the layer only when they are in the file, and survive a reopen', async (t) => {
  const context = setup(t);
  if (context === undefined) return;
  const { store, directory, data } = context;
  const checksums = blockChecksums(data);
  const written = store.writeLayerBlocksPastCache('base', 256, dataStates(64), checksums, data);
  assert.ok(written !== undefined, 'the write went past the page cache');
  // On the thread pool now: the layer still reads as before.
  assert.deepEqual(store.layerExtents('base', 256, 64), [], 'no block of the layer is held yet');
  await written;
  const extents = store.layerExtents('base', 256, 64);
  assert.equal(extents.length, 1);
  assert.equal(extents[0].state, 'data');
  assert.deepEqual([...(extents[0].checksums ?? [])], [...checksums]);
  const back = Buffer.alloc(data.length);
  store.readLayerBlocks('base', 256, back);
  assert.ok(back.equals(data), 'the layer reads the written data');
  store.flush();
  store.close();
  const reopened = ReplicaStore.open(directory);
  defer(t, () => reopened.close());
  const again = Buffer.alloc(data.length);
  reopened.readLayerBlocks('base', 256, again);
  assert.ok(again.equals(data), 'the data is there after a reopen');
  assert.equal(reopened.verify().badBlockCount, 0);
});

test('the head, other states, unaligned memory, short runs and a bad checksum do not go past the cache', (t) => {
  const context = setup(t);
  if (context === undefined) return;
  const { store, data } = context;
  const checksums = blockChecksums(data);
  assert.equal(
    store.writeLayerBlocksPastCache(HEAD_DISPLAY_NAME, 0, dataStates(64), checksums, data),
    undefined,
  );
  const zeros = new Uint8Array(64).fill(BlockState.ZERO);
  assert.equal(store.writeLayerBlocksPastCache('base', 0, zeros, new Uint32Array(64), data), undefined);
  const unaligned = data.subarray(BLOCK / 2, BLOCK / 2 + 32 * BLOCK);
  assert.equal(
    store.writeLayerBlocksPastCache('base', 0, dataStates(32), blockChecksums(unaligned), unaligned),
    undefined,
  );
  const short = data.subarray(0, (PAST_CACHE_MIN_BLOCKS - 1) * BLOCK);
  assert.equal(
    store.writeLayerBlocksPastCache(
      'base',
      0,
      dataStates(PAST_CACHE_MIN_BLOCKS - 1),
      blockChecksums(short),
      short,
    ),
    undefined,
    'a short run goes through the page cache',
  );
  const wrong = Uint32Array.from(checksums);
  wrong[3] ^= 1;
  assert.throws(
    () => store.writeLayerBlocksPastCache('base', 0, dataStates(64), wrong, data),
    (error) => isHornbillError(error, 'STORE_CHECKSUM_MISMATCH'),
  );
  assert.deepEqual(store.layerExtents('base'), [], 'nothing was written');
});

test('a store closed while the data is on the thread pool rejects the write and leaks no descriptor', async (t) => {
  const context = setup(t);
  if (context === undefined) return;
  const { store, directory, data } = context;
  const descriptors = () => fs.readdirSync('/proc/self/fd').length;
  const before = descriptors();
  const written = store.writeLayerBlocksPastCache('base', 0, dataStates(64), blockChecksums(data), data);
  assert.ok(written !== undefined);
  store.close();
  await assert.rejects(written, (error) => isHornbillError(error, 'STORE_CLOSED'));
  assert.ok(descriptors() <= before - 1, 'the store and its direct descriptor are closed');
  const reopened = ReplicaStore.open(directory);
  defer(t, () => reopened.close());
  assert.deepEqual(reopened.layerExtents('base'), [], 'blocks never journaled are not in the index');
});

test('a layer deleted while its data is on the thread pool rejects the write', async (t) => {
  const context = setup(t);
  if (context === undefined) return;
  const { store, data } = context;
  const written = store.writeLayerBlocksPastCache('base', 0, dataStates(64), blockChecksums(data), data);
  assert.ok(written !== undefined);
  store.setHeadParent(null);
  store.deleteLayerNow('base');
  await assert.rejects(written, (error) => isHornbillError(error, 'STORE_SNAPSHOT_NOT_FOUND'));
  assert.ok(!store.listChain().some((layer) => layer.name === 'base'));
  assert.equal(store.verify().badBlockCount, 0);
});

test('a direct write the kernel refuses ends with a coded EINVAL that isDirectRefusal recognizes, and release closes the descriptor after the writes in flight', async (t) => {
  const possible = directWritesPossible(t, directIoDirectory(t), alignedBuffer(8 * BLOCK));
  if (possible === undefined) return;
  const { root, aligned } = possible;
  const file = path.join(root, 'layer.img');
  fs.writeFileSync(file, Buffer.alloc(16 * BLOCK));
  const descriptor = DirectDescriptor.open(file);
  assert.ok(descriptor !== undefined);
  const descriptors = () => fs.readdirSync('/proc/self/fd').length;
  // Memory one byte off a block boundary: O_DIRECT refuses it (accepts() would not pass it).
  const misaligned = aligned.subarray(1, 1 + 4 * BLOCK);
  assert.equal(DirectDescriptor.accepts(misaligned, 0), false);
  const refusal = await new Promise<Error | undefined>((resolve) => descriptor.write(misaligned, 0, resolve));
  assert.ok(isDirectRefusal(refusal), `EINVAL as STORE_IO: ${refusal?.message}`);
  // Two good writes in flight, then release: the descriptor stays open until both end.
  aligned.set(patternBytes(5, aligned.length));
  const open = descriptors();
  const writes = [0, 8].map(
    (block) => new Promise<Error | undefined>((resolve) => descriptor.write(aligned, block * BLOCK, resolve)),
  );
  assert.equal(descriptor.writesInFlight, 2);
  descriptor.release();
  assert.equal(descriptors(), open, 'not closed while writes are in flight');
  assert.deepEqual(await Promise.all(writes), [undefined, undefined]);
  assert.equal(descriptors(), open - 1, 'closed once they ended');
  const back = fs.readFileSync(file);
  assert.ok(back.subarray(0, 8 * BLOCK).equals(aligned));
  assert.ok(back.subarray(8 * BLOCK, 16 * BLOCK).equals(aligned));
  const late = await new Promise<Error | undefined>((resolve) => descriptor.write(aligned, 0, resolve));
  assert.ok(isHornbillError(late, 'STORE_IO'), 'a write after release is refused with a code');
});
