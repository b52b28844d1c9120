import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { BlockState } from '../../../src/storage/constants.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;
const BLOCK = 4096;

/**
 * Brings layer `name` of `target` to the content it has in `source`, as a rebuild does:
 * compares (state, checksum) per block from both sides' extents and sends only blocks that
 * differ; blocks the target holds and the source does not are dropped. Returns the data
 * bytes sent.
 */
function syncLayer(source: ReplicaStore, target: ReplicaStore, name: string): number {
  const blocks = source.sizeBytes / BLOCK;
  const want = new Map<number, { state: number; checksum: number }>();
  for (const extent of source.layerExtents(name)) {
    for (let index = 0; index < extent.blockCount; index++) {
      want.set(extent.startBlock + index, {
        state: extent.state === 'data' ? BlockState.DATA : BlockState.ZERO,
        checksum: extent.checksums?.[index] ?? 0,
      });
    }
  }
  const have = new Map<number, { state: number; checksum: number }>();
  for (const extent of target.layerExtents(name, 0, blocks)) {
    for (let index = 0; index < extent.blockCount; index++) {
      have.set(extent.startBlock + index, {
        state: extent.state === 'data' ? BlockState.DATA : BlockState.ZERO,
        checksum: extent.checksums?.[index] ?? 0,
      });
    }
  }
  let sentBytes = 0;
  const data = Buffer.alloc(BLOCK);
  for (const [block, wanted] of want) {
    const current = have.get(block);
    if (current !== undefined && current.state === wanted.state && current.checksum === wanted.checksum)
      continue;
    if (wanted.state === BlockState.DATA) {
      source.readLayerBlocks(name, block, data);
      sentBytes += BLOCK;
    }
    target.writeLayerBlocks(name, block, Uint8Array.of(wanted.state), Uint32Array.of(wanted.checksum), data);
  }
  for (const block of have.keys()) {
    if (!want.has(block))
      target.writeLayerBlocks(name, block, Uint8Array.of(BlockState.ABSENT), Uint32Array.of(0), null);
  }
  return sentBytes;
}

function readAll(store: ReplicaStore): Buffer {
  const out = Buffer.alloc(store.sizeBytes);
  store.read(0, out);
  return out;
}

test('a fresh replica is built layer by layer from extents and ends identical', (t) => {
  const root = tempDirectory(t);
  const source = ReplicaStore.create(path.join(root, 'source'), { sizeBytes: 16 * MiB });
  const target = ReplicaStore.create(path.join(root, 'target'), { sizeBytes: 16 * MiB });
  defer(t, () => source.close());
  defer(t, () => target.close());
  source.write(0, patternBytes(1, 6 * MiB));
  source.snapshot('a', { labels: { tier: 'gold' } });
  source.unmap(MiB, 2 * MiB);
  source.write(10 * MiB, patternBytes(2, MiB));
  source.snapshot('b');
  source.write(5 * MiB, patternBytes(3, 64 * 1024));
  // Rebuild: the source's head becomes a snapshot; the target receives new writes in its head meanwhile.
  source.snapshot('rebuild-1', { userCreated: false });
  target.setRebuilding(true);
  source.write(3 * MiB, patternBytes(4, 8192));
  target.write(3 * MiB, patternBytes(4, 8192));
  source.unmap(0, BLOCK);
  target.unmap(0, BLOCK);

  let sent = 0;
  let parent: string | null = null;
  for (const layer of source.listChain().filter((info) => !info.isHead)) {
    target.createLayer({
      name: layer.name,
      parent,
      createdAt: layer.createdAt,
      userCreated: layer.userCreated,
      labels: layer.labels,
    });
    sent += syncLayer(source, target, layer.name);
    parent = layer.name;
  }
  target.setHeadParent(parent);
  target.setRevisionCounter(source.revisionCounter);
  target.setRebuilding(false);

  for (const name of ['a', 'b', 'rebuild-1'])
    assert.equal(target.hashSnapshot(name), source.hashSnapshot(name), name);
  assert.ok(readAll(target).equals(readAll(source)));
  assert.deepEqual(
    target.listChain().map((layer) => [layer.name, layer.parent, layer.labels]),
    source.listChain().map((layer) => [layer.name, layer.parent, layer.labels]),
  );
  // Unmapped ranges travel as zero extents, not as data.
  const dataBytes = source.listChain().reduce((sum, layer) => sum + (layer.isHead ? 0 : layer.dataBytes), 0);
  assert.equal(sent, dataBytes);
  target.selfCheck();
});

test('a returning replica re-syncs only the blocks that changed', (t) => {
  const root = tempDirectory(t);
  const source = ReplicaStore.create(path.join(root, 'source'), { sizeBytes: 64 * MiB });
  const target = ReplicaStore.create(path.join(root, 'target'), { sizeBytes: 64 * MiB });
  defer(t, () => source.close());
  defer(t, () => target.close());
  const data = patternBytes(9, 32 * MiB);
  source.write(0, data);
  target.write(0, data);
  // The target goes away; 1 % of the blocks change on the source, and the target had one stray write.
  const blocks = (32 * MiB) / BLOCK;
  const changed = Math.ceil(blocks / 100);
  for (let index = 0; index < changed; index++)
    source.write(((index * 101) % blocks) * BLOCK, patternBytes(1000 + index, BLOCK));
  target.write(40 * MiB, patternBytes(77, BLOCK));
  source.snapshot('rebuild-2');
  target.snapshot('rebuild-2');
  const sent = syncLayer(source, target, 'rebuild-2');
  assert.equal(sent, changed * BLOCK);
  assert.ok(sent < 0.02 * 32 * MiB);
  assert.equal(target.hashSnapshot('rebuild-2'), source.hashSnapshot('rebuild-2'));
  assert.ok(readAll(target).equals(readAll(source)));
});

test('blocks that arrive with the wrong checksum are refused and change nothing', (t) => {
  const target = ReplicaStore.create(path.join(tempDirectory(t), 'target'), { sizeBytes: MiB });
  defer(t, () => target.close());
  target.snapshot('s');
  const data = patternBytes(5, 2 * BLOCK);
  const checksums = Uint32Array.of(0, 0);
  assert.throws(
    () => target.writeLayerBlocks('s', 0, Uint8Array.of(1, 1), checksums, data),
    (error) => isHornbillError(error, 'STORE_CHECKSUM_MISMATCH'),
  );
  assert.throws(
    () => target.writeLayerBlocks('s', 0, Uint8Array.of(7), Uint32Array.of(0), null),
    (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
  );
  assert.throws(
    () => target.writeLayerBlocks('s', 256, Uint8Array.of(2), Uint32Array.of(0), null),
    (error) => isHornbillError(error, 'STORE_OUT_OF_RANGE'),
  );
  assert.deepEqual(target.layerExtents('s'), []);
});
