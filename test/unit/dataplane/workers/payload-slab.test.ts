import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  kSlabChunkCountField,
  kSlabChunkSizeField,
  kSlabDataOffsetField,
  kSlabMagicField,
  kSlabVersionField,
  PayloadSlab,
} from '../../../../src/dataplane/workers/payload-slab.ts';
import { isHornbillError } from '../../../../src/errors.ts';

function chain(slab: PayloadSlab, first: number): number[] {
  const indexes: number[] = [];
  for (let index = first; index !== -1; index = slab.nextChunk(index)) indexes.push(index);
  return indexes;
}

describe('PayloadSlab', () => {
  test('chains: one chunk up to the chunk size, more beyond; copyIn/copyOut round-trip', () => {
    const slab = PayloadSlab.create({ chunkSizeBytes: 4096, chunkCount: 8 });
    assert.equal(slab.maxPayloadBytes, 8 * 4096);
    for (const length of [1, 4096, 4097, 10_000, 8 * 4096]) {
      const first = slab.tryAllocate(length);
      const indexes = chain(slab, first);
      assert.equal(indexes.length, Math.ceil(length / 4096), `${length} bytes`);
      assert.equal(new Set(indexes).size, indexes.length);
      assert.equal(slab.freeCount(), 8 - indexes.length);
      const source = Buffer.from(Array.from({ length }, (_, index) => (index * 31 + length) & 0xff));
      slab.copyIn(first, source);
      const target = Buffer.alloc(length);
      slab.copyOut(first, target);
      assert.ok(target.equals(source));
      // The views are the chunks themselves, not copies.
      assert.ok(slab.chunkBytes(first).subarray(0, Math.min(length, 4096)).equals(source.subarray(0, 4096)));
      assert.equal(slab.chunkBytes(first), slab.chunkBytes(first), 'one view object per chunk');
      slab.free(first);
      assert.equal(slab.freeCount(), 8);
      assert.equal(slab.freeBitCount(), 8);
    }
  });

  test('allocation is all or nothing; double free is INTERNAL; bad lengths are INVALID_ARGUMENT', () => {
    const slab = PayloadSlab.create({ chunkSizeBytes: 64, chunkCount: 5 });
    const held = slab.tryAllocate(64 * 3);
    assert.equal(slab.tryAllocate(64 * 3), -1, 'only two chunks are left');
    assert.equal(slab.freeCount(), 2, 'a refused allocation holds nothing');
    assert.equal(slab.freeBitCount(), 2);
    const small = slab.tryAllocate(100);
    assert.equal(slab.tryAllocate(1), -1);
    slab.free(held);
    slab.free(small);
    assert.throws(
      () => slab.free(small),
      (error) => isHornbillError(error, 'INTERNAL'),
    );
    for (const length of [0, -1, 1.5, 64 * 5 + 1]) {
      assert.throws(
        () => slab.tryAllocate(length),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
        `${length}`,
      );
    }
    for (const [chunkSizeBytes, chunkCount] of [
      [63, 1],
      [100, 1],
      [64, 0],
      [64, 65537],
      [16 * 1024 * 1024 + 64, 1],
      [16 * 1024 * 1024, 65],
    ]) {
      assert.throws(
        () => PayloadSlab.create({ chunkSizeBytes, chunkCount }),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
        `${chunkSizeBytes} × ${chunkCount}`,
      );
    }
  });

  test('matches a model of free chunks under any allocate/free sequence (fast-check)', () => {
    const step = fc.oneof(
      fc.integer({ min: 1, max: 64 * 7 }).map((length) => ({ allocate: length })),
      fc.nat(20).map((pick) => ({ free: pick })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 70 }),
        fc.array(step, { minLength: 10, maxLength: 300, size: 'max' }),
        (chunkCount, steps) => {
          const slab = PayloadSlab.create({ chunkSizeBytes: 64, chunkCount });
          const held: number[][] = [];
          let free = chunkCount;
          for (const action of steps) {
            if ('allocate' in action) {
              const needed = Math.ceil(action.allocate / 64);
              if (needed > chunkCount) continue;
              const first = slab.tryAllocate(action.allocate);
              assert.equal(first >= 0, needed <= free);
              if (first < 0) continue;
              const indexes = chain(slab, first);
              assert.equal(indexes.length, needed);
              for (const index of indexes) assert.equal(slab.isFree(index), false);
              for (const other of held)
                for (const index of indexes) assert.ok(!other.includes(index), 'handed out twice');
              held.push(indexes);
              free -= needed;
            } else if (held.length > 0) {
              const indexes = held.splice(action.free % held.length, 1)[0];
              slab.free(indexes[0]);
              for (const index of indexes) assert.ok(slab.isFree(index));
              free += indexes.length;
            }
            assert.equal(slab.freeCount(), free);
            assert.equal(slab.freeBitCount(), free);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  test('attach validates the header; another thread sees the same bytes without a copy', async () => {
    const slab = PayloadSlab.create({ chunkSizeBytes: 4096, chunkCount: 3 });
    const first = slab.tryAllocate(4096);
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      const bytes = new Uint8Array(workerData.buffer, workerData.offset, 4096);
      for (let index = 0; index < 4096; index++) bytes[index] = (index * 7) & 0xff;
      parentPort.postMessage('written');
    `;
    // A plain worker that knows only the buffer and the chunk's byte offset writes into it.
    const offset = new Int32Array(slab.buffer)[kSlabDataOffsetField] + first * 4096;
    const worker = new Worker(code, { eval: true, workerData: { buffer: slab.buffer, offset } });
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    await new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await exited;
    const view = PayloadSlab.attach(slab.buffer).chunkBytes(first);
    for (let index = 0; index < 4096; index++) assert.equal(view[index], (index * 7) & 0xff);
    assert.equal(PayloadSlab.attach(slab.buffer).freeCount(), 2);

    const corruptions: [string, (words: Int32Array) => void][] = [
      ['magic', (words) => (words[kSlabMagicField] = 1)],
      ['version', (words) => (words[kSlabVersionField] = 2)],
      ['chunk size', (words) => (words[kSlabChunkSizeField] = 100)],
      ['chunk count beyond the buffer', (words) => (words[kSlabChunkCountField] = 1000)],
      ['data offset', (words) => (words[kSlabDataOffsetField] = 64)],
    ];
    for (const [what, corrupt] of corruptions) {
      const copy = new SharedArrayBuffer(slab.buffer.byteLength);
      new Uint8Array(copy).set(new Uint8Array(slab.buffer));
      corrupt(new Int32Array(copy));
      assert.throws(
        () => PayloadSlab.attach(copy),
        (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
        what,
      );
    }
    assert.throws(
      () => PayloadSlab.attach(new SharedArrayBuffer(8)),
      (error) => isHornbillError(error, 'WORKER_BUFFER_INVALID'),
    );
  });
});
