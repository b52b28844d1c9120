import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { crc32cBlocks } from '../../../src/native.ts';
import { BlockState } from '../../../src/storage/constants.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;
const BLOCK = 4096;

/** The lengths of the pwrite(2)s of layer data (files named NNNNNN.img) made while `run` runs. */
function layerWrites(t: TestContext, run: () => void): number[] {
  const lengths: number[] = [];
  const original = fs.writeSync;
  fs.writeSync = ((fd: number, ...rest: unknown[]) => {
    const written = (original as (...args: unknown[]) => number)(fd, ...rest);
    if (/\d{6}\.img$/.test(fs.readlinkSync(`/proc/self/fd/${fd}`))) lengths.push(written);
    return written;
  }) as typeof fs.writeSync;
  defer(t, () => {
    fs.writeSync = original;
  });
  try {
    run();
  } finally {
    fs.writeSync = original;
  }
  return lengths;
}

test('blocks new to the head are written in 32 KiB pieces, blocks it holds in one write, snapshot layers in one', (t) => {
  const store = ReplicaStore.create(path.join(tempDirectory(t), 'replica'), { sizeBytes: 16 * MiB });
  defer(t, () => store.close());
  const data = patternBytes(1, MiB);
  // First write of 1 MiB into the head: 32 pieces of 32 KiB.
  const first = layerWrites(t, () => store.write(0, data));
  assert.deepEqual(first, new Array(32).fill(32 * 1024));
  // The same blocks again: the head holds them, one write.
  const again = layerWrites(t, () => store.write(0, patternBytes(2, MiB)));
  assert.deepEqual(again, [MiB]);
  // Half new, half held: the run is written in pieces (it holds new blocks).
  const mixed = layerWrites(t, () => store.write(MiB / 2, patternBytes(3, MiB)));
  assert.deepEqual(mixed, new Array(32).fill(32 * 1024));
  // A small write of new blocks is one piece.
  assert.deepEqual(
    layerWrites(t, () => store.write(8 * MiB, patternBytes(4, 12 * 1024))),
    [12 * 1024],
  );
  // Everything reads back.
  const back = Buffer.alloc(MiB);
  store.read(MiB / 2, back);
  assert.ok(back.equals(patternBytes(3, MiB)));
  // A rebuild's copy into a snapshot layer (no random writes later): one write.
  const layer = store.createLayer({ name: 'copied', parent: null });
  const blocks = 256;
  const states = new Uint8Array(blocks).fill(BlockState.DATA);
  const checksums = new Uint32Array(blocks);
  const copied = patternBytes(5, blocks * BLOCK);
  crc32cBlocks(copied, 0, BLOCK, blocks, checksums, 0);
  const snapshotWrites = layerWrites(t, () =>
    store.writeLayerBlocks(layer.name, 0, states, checksums, copied),
  );
  assert.deepEqual(snapshotWrites, [blocks * BLOCK]);
});
