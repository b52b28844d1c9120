import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Engine } from '../../../src/dataplane/engine/engine.ts';
import { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import type { PullResult } from '../../../src/dataplane/replica/range-pull.ts';
import { ReplicaServer } from '../../../src/dataplane/replica/replica-server.ts';
import { silentLogger } from '../../../src/logging.ts';
import { blockChecksum } from '../../../src/storage/checksum.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

// The rebuild target's pullRange (src/dataplane/replica/range-pull.ts): real stores, real
// replica servers on loopback, the target reaching its source over TCP.

const MiB = 1024 * 1024;
const BLOCK = 4096;

async function serve(t: TestContext, name: string) {
  const directory = path.join(tempDirectory(t), name);
  const store = ReplicaStore.create(directory, { sizeBytes: 16 * MiB });
  const server = new ReplicaServer({ store, host: '127.0.0.1', port: 0, log: silentLogger });
  const address = await server.listen();
  defer(t, () => store.close());
  defer(t, () => void server.close());
  return { directory, store, server, address };
}

function checksums(data: Uint8Array): Uint32Array {
  return Uint32Array.from({ length: data.length / BLOCK }, (_, index) => blockChecksum(data, index * BLOCK));
}

/**
 * A source whose snapshot `base` holds data at 0-4 MiB and 40 KiB at 8 MiB; a target (being
 * rebuilt) whose `base` already holds the first 2 MiB, and 32 KiB of stray data at 12 MiB
 * where the source has none. `engine` is a connection to the target, as the engine's.
 */
async function pair(t: TestContext) {
  const source = await serve(t, 'source');
  const target = await serve(t, 'target');
  const data = patternBytes(3, 4 * MiB);
  source.store.write(0, data);
  source.store.write(8 * MiB, patternBytes(4, 40 * 1024));
  source.store.snapshot('base');
  target.store.setRebuilding(true);
  target.store.createLayer({ name: 'base', parent: null });
  const held = data.subarray(0, 2 * MiB);
  target.store.writeLayerBlocks('base', 0, new Uint8Array(512).fill(1), checksums(held), held);
  const stray = patternBytes(9, 8 * BLOCK);
  target.store.writeLayerBlocks('base', 3072, new Uint8Array(8).fill(1), checksums(stray), stray);
  const engine = new ReplicaClient({ address: target.address, log: silentLogger });
  await engine.connect();
  defer(t, () => engine.close());
  return { source, target, engine, data };
}

const wholeVolume = { layer: 'base', startBlock: 0, blockCount: 4096 };

test('a pull copies only the blocks that differ, straight from the source: afterwards the layers are the same', async (t) => {
  const { source, target, engine } = await pair(t);
  const result = await engine.control<PullResult>('pullRange', { source: source.address, ...wholeVolume });
  assert.deepEqual(result, {
    examinedBytes: 4 * MiB + 40 * 1024,
    transferredBytes: 2 * MiB + 40 * 1024,
  });
  assert.deepEqual(target.store.layerExtents('base'), source.store.layerExtents('base'));
  const copied = Buffer.alloc(4 * MiB);
  const original = Buffer.alloc(4 * MiB);
  target.store.readLayerBlocks('base', 0, copied);
  source.store.readLayerBlocks('base', 0, original);
  assert.ok(copied.equals(original));
  // The stray data is gone: a hole stays a hole.
  assert.equal(
    target.store.layerExtents('base', 3072, 8).filter((extent) => extent.state === 'data').length,
    0,
  );
  // Pulled again: nothing left to copy.
  const again = await engine.control<PullResult>('pullRange', { source: source.address, ...wholeVolume });
  assert.deepEqual(again, { examinedBytes: 4 * MiB + 40 * 1024, transferredBytes: 0 });
});

test('a fragmented layer (4 KiB data, 4 KiB hole) is copied with its holes, data packed on the wire', async (t) => {
  const source = await serve(t, 'source');
  const target = await serve(t, 'target');
  for (let block = 0; block < 512; block += 2) source.store.write(block * BLOCK, patternBytes(block, BLOCK));
  source.store.snapshot('base');
  target.store.setRebuilding(true);
  target.store.createLayer({ name: 'base', parent: null });
  // A packed read answers the data blocks of a range only, in order.
  const reader = new ReplicaClient({ address: source.address, log: silentLogger });
  await reader.connect();
  defer(t, () => reader.close());
  const packed = Buffer.alloc(4 * BLOCK);
  await reader.readLayerPacked('base', 10, 8, packed);
  for (let index = 0; index < 4; index++)
    assert.ok(
      packed.subarray(index * BLOCK, (index + 1) * BLOCK).equals(patternBytes(10 + 2 * index, BLOCK)),
    );
  // A target expecting another count of data blocks gets an error, not shifted data.
  await assert.rejects(reader.readLayerPacked('base', 10, 8, Buffer.alloc(3 * BLOCK)), {
    code: 'REPLICA_PROTOCOL_ERROR',
  });
  const engine = new ReplicaClient({ address: target.address, log: silentLogger });
  await engine.connect();
  defer(t, () => engine.close());
  const result = await engine.control<PullResult>('pullRange', {
    source: source.address,
    layer: 'base',
    startBlock: 0,
    blockCount: 1024,
  });
  assert.deepEqual(result, { examinedBytes: 256 * BLOCK, transferredBytes: 256 * BLOCK });
  assert.deepEqual(target.store.layerExtents('base'), source.store.layerExtents('base'));
  assert.equal(target.store.hashSnapshot('base'), source.store.hashSnapshot('base'));
});

test('a pull of part of the layer touches only that part', async (t) => {
  const { source, target, engine } = await pair(t);
  const result = await engine.control<PullResult>('pullRange', {
    source: source.address,
    layer: 'base',
    startBlock: 512,
    blockCount: 256,
  });
  assert.deepEqual(result, { examinedBytes: MiB, transferredBytes: MiB });
  assert.deepEqual(target.store.layerExtents('base', 0, 768), source.store.layerExtents('base', 0, 768));
  assert.equal(
    target.store.layerExtents('base', 768, 256).filter((extent) => extent.state === 'data').length,
    0,
    'blocks after the range were not copied',
  );
});

test('an unreachable source or a damaged block there is REBUILD_SOURCE_FAILED, and the target keeps what it had', async (t) => {
  const { source, target, engine } = await pair(t);
  const before = target.store.layerExtents('base');
  const unused = new ReplicaServer({ store: source.store, host: '127.0.0.1', port: 0, log: silentLogger });
  const { port: closedPort } = await unused.listen();
  await unused.close();
  await assert.rejects(
    engine.control('pullRange', { source: { host: '127.0.0.1', port: closedPort }, ...wholeVolume }),
    (error: Error & { code?: string; details?: { cause?: string } }) => {
      assert.equal(error.code, 'REBUILD_SOURCE_FAILED');
      assert.equal(error.details?.cause, 'REPLICA_UNREACHABLE');
      return true;
    },
  );
  assert.deepEqual(target.store.layerExtents('base'), before);
  // Damage block 600 of the source's base layer (its older layer file), behind its back.
  const layers = path.join(source.directory, 'layers');
  const baseFile = path.join(layers, fs.readdirSync(layers).sort()[0]);
  const fd = fs.openSync(baseFile, 'r+');
  fs.writeSync(fd, Buffer.from([0xde, 0xad]), 0, 2, 600 * BLOCK + 7);
  fs.closeSync(fd);
  await assert.rejects(
    engine.control('pullRange', { source: source.address, layer: 'base', startBlock: 512, blockCount: 256 }),
    (error: Error & { code?: string; details?: { cause?: string } }) => {
      assert.equal(error.code, 'REBUILD_SOURCE_FAILED');
      assert.equal(error.details?.cause, 'STORE_CHECKSUM_MISMATCH');
      return true;
    },
  );
  const damaged = target.store.layerExtents('base', 600, 1);
  assert.notEqual(damaged[0]?.state, 'data', 'the damaged block was not stored');
  assert.ok(!engine.failed, 'the engine connection to the target stays up');
});

test('bad pullRange parameters are INVALID_ARGUMENT and change nothing', async (t) => {
  const { source, target, engine } = await pair(t);
  const before = target.store.layerExtents('base');
  const good = { source: source.address, ...wholeVolume };
  const bad: Record<string, unknown>[] = [
    { ...good, source: undefined },
    { ...good, source: 'localhost:1' },
    { ...good, source: { host: '127.0.0.1', port: 0 } },
    { ...good, source: { host: '127.0.0.1', port: 70000 } },
    { ...good, source: { host: '', port: 1 } },
    { ...good, layer: 7 },
    { ...good, layer: '' },
    { ...good, startBlock: -1 },
    { ...good, startBlock: 1.5 },
    { ...good, blockCount: 0 },
    { ...good, blockCount: 16385 },
    { ...good, bandwidthBytesPerSecond: -5 },
    { ...good, bandwidthBytesPerSecond: 'fast' },
    { ...good, timeoutMs: 10 },
  ];
  for (const params of bad) {
    await assert.rejects(
      engine.control('pullRange', params),
      { code: 'INVALID_ARGUMENT' },
      JSON.stringify(params),
    );
  }
  await assert.rejects(engine.control('pullRange', { ...good, layer: 'missing' }), {
    code: 'STORE_SNAPSHOT_NOT_FOUND',
  });
  await assert.rejects(engine.control('pullRange', { ...good, startBlock: 4000, blockCount: 200 }), {
    code: 'STORE_OUT_OF_RANGE',
  });
  assert.deepEqual(target.store.layerExtents('base'), before);
  assert.ok(!engine.failed);
});

test('the connection to the source closes when the target stops rebuilding', async (t) => {
  const { source, engine } = await pair(t);
  await engine.control('pullRange', { source: source.address, ...wholeVolume });
  assert.equal(source.server.connectionCount, 1, 'the target keeps one connection to its source');
  await engine.control('pullRange', { source: source.address, ...wholeVolume });
  assert.equal(source.server.connectionCount, 1, 'and reuses it');
  await engine.control('setRebuilding', { rebuilding: false });
  for (let wait = 0; wait < 100 && source.server.connectionCount > 0; wait++) await sleep(10);
  assert.equal(source.server.connectionCount, 0);
});

test('an engine rebuild whose first source holds a damaged block takes that range from the other source', async (t) => {
  const first = await serve(t, 'first');
  const second = await serve(t, 'second');
  const messages: string[] = [];
  const engine = await Engine.start({
    name: 'pull',
    replicas: [{ address: first.address }, { address: second.address }],
    log: (_level, message) => messages.push(message),
  });
  defer(t, () => void engine.close());
  const data = patternBytes(11, 6 * MiB);
  await engine.write(0, data);
  await engine.flush();
  // Damage a block of the first replica's head: at the rebuild it becomes the snapshot copied.
  const layers = path.join(first.directory, 'layers');
  const headFile = path.join(layers, fs.readdirSync(layers).sort().at(-1)!);
  const fd = fs.openSync(headFile, 'r+');
  fs.writeSync(fd, Buffer.from([0xbe, 0xef]), 0, 2, 300 * BLOCK + 9);
  fs.closeSync(fd);
  const target = await serve(t, 'target');
  const progress = await engine.addReplica(target.address);
  assert.equal(progress.state, 'done');
  assert.equal(progress.doneBytes, 6 * MiB);
  // The spans copied from the first source before its bad block count once, as sent.
  assert.equal(progress.transferredBytes, 6 * MiB);
  assert.ok(messages.includes('rebuild source failed for a range; trying another replica'));
  assert.equal(
    target.store.hashSnapshot(progress.snapshot),
    second.store.hashSnapshot(progress.snapshot),
    'the target holds the good copy',
  );
  const readBack = Buffer.alloc(6 * MiB);
  target.store.read(0, readBack);
  assert.ok(readBack.equals(data));
});
