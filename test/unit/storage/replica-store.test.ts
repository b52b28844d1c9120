import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { isHornbillError } from '../../../src/errors.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

function readAll(store: ReplicaStore, offset = 0, length = store.sizeBytes): Buffer {
  const out = Buffer.alloc(length);
  store.read(offset, out);
  return out;
}

function expectCode(code: string, run: () => unknown): void {
  assert.throws(run, (error: unknown) => isHornbillError(error) && error.code === code);
}

describe('replica store: reads and writes', () => {
  test('a new volume reads as zeros and keeps what is written', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: 4 * MiB });
    defer(t, () => store.close());
    assert.ok(readAll(store).equals(Buffer.alloc(4 * MiB)));
    const data = patternBytes(1, 64 * 1024);
    store.write(MiB, data);
    assert.ok(readAll(store, MiB, data.length).equals(data));
    assert.ok(readAll(store, 0, MiB).equals(Buffer.alloc(MiB)));
    assert.equal(store.revisionCounter, 1);
  });

  test('512-byte granularity: unaligned writes and reads merge with their neighbours', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: MiB });
    defer(t, () => store.close());
    const model = Buffer.alloc(MiB);
    const writes: [number, number, number][] = [
      [0, 4096, 1],
      [512, 512, 2],
      [3584, 1024, 3],
      [4096 * 3 + 1536, 4096 * 2 + 512, 4],
      [7 * 512, 512, 5],
      [MiB - 512, 512, 6],
    ];
    for (const [offset, length, seed] of writes) {
      const data = patternBytes(seed, length);
      store.write(offset, data);
      data.copy(model, offset);
    }
    assert.ok(readAll(store).equals(model));
    for (const [offset, length] of [
      [512, 512],
      [3072, 2048],
      [4096 * 3 + 512, 4096 * 2],
      [MiB - 1024, 1024],
    ]) {
      assert.ok(
        readAll(store, offset, length).equals(model.subarray(offset, offset + length)),
        `read ${offset}+${length}`,
      );
    }
  });

  test('overlapping sub-block writes from concurrent callers apply in call order', async (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: MiB });
    defer(t, () => store.close());
    const model = Buffer.alloc(MiB);
    const callers = Array.from({ length: 16 }, async (_, caller) => {
      for (let round = 0; round < 50; round++) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        const offset = ((caller * 7 + round * 13) % 64) * 512;
        const data = patternBytes(caller * 1000 + round, 512 * (1 + ((caller + round) % 9)));
        store.write(offset, data);
        data.copy(model, offset);
      }
    });
    await Promise.all(callers);
    assert.ok(readAll(store).equals(model));
  });

  test('writing zeros and unmapping return space and read back as zeros', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: 8 * MiB });
    defer(t, () => store.close());
    store.write(0, patternBytes(3, 4 * MiB));
    store.flush();
    const before = store.allocatedBytes();
    assert.ok(before >= 4 * MiB, `allocated ${before}`);
    store.write(0, Buffer.alloc(MiB));
    store.unmap(MiB, 2 * MiB);
    store.unmap(3 * MiB + 512, 1024);
    store.flush();
    const after = store.allocatedBytes();
    assert.ok(after <= before - 3 * MiB + 4096, `allocated ${after} after freeing 3 MiB of ${before}`);
    const view = readAll(store, 0, 4 * MiB);
    assert.ok(view.subarray(0, 3 * MiB).equals(Buffer.alloc(3 * MiB)));
    const tail = patternBytes(3, 4 * MiB).subarray(3 * MiB);
    tail.fill(0, 512, 1536);
    assert.ok(view.subarray(3 * MiB).equals(tail));
  });
});

describe('replica store: bad input is refused with a code and changes nothing', () => {
  test('out of range, unaligned, negative and oversized I/O', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: MiB });
    defer(t, () => store.close());
    store.write(0, patternBytes(9, 8192));
    expectCode('STORE_OUT_OF_RANGE', () => store.write(MiB - 512, Buffer.alloc(1024)));
    expectCode('STORE_OUT_OF_RANGE', () => store.read(MiB, Buffer.alloc(512)));
    expectCode('STORE_UNALIGNED', () => store.write(100, Buffer.alloc(512)));
    expectCode('STORE_UNALIGNED', () => store.read(0, Buffer.alloc(100)));
    expectCode('STORE_UNALIGNED', () => store.unmap(0, 4000));
    expectCode('INVALID_ARGUMENT', () => store.write(-512, Buffer.alloc(512)));
    expectCode('INVALID_ARGUMENT', () => store.read(0.5, Buffer.alloc(512)));
    expectCode('INVALID_ARGUMENT', () => store.unmap(0, -512));
    assert.equal(store.revisionCounter, 1);
    assert.ok(readAll(store, 0, 8192).equals(patternBytes(9, 8192)));
  });

  test('volume sizes, snapshot names and shrinking', (t) => {
    const root = tempDirectory(t);
    for (const sizeBytes of [0, -4096, 1000, 4096.5, Number.NaN, 16 * 1024 ** 4]) {
      expectCode('INVALID_ARGUMENT', () =>
        ReplicaStore.create(path.join(root, `bad-${sizeBytes}`), { sizeBytes }),
      );
    }
    const store = ReplicaStore.create(path.join(root, 'r'), { sizeBytes: MiB });
    defer(t, () => store.close());
    for (const name of ['', 'a/b', '..\u0000', 'x'.repeat(129), 'volume head']) {
      expectCode('STORE_INVALID_NAME', () => store.snapshot(name));
    }
    store.snapshot('one');
    expectCode('STORE_SNAPSHOT_EXISTS', () => store.snapshot('one'));
    expectCode('STORE_SNAPSHOT_NOT_FOUND', () => store.revert('two'));
    expectCode('STORE_SNAPSHOT_NOT_FOUND', () => store.deleteSnapshot('two'));
    expectCode('STORE_SHRINK_REFUSED', () => store.expand(MiB / 2));
    expectCode('INVALID_ARGUMENT', () => store.expand(MiB + 100));
    store.deleteSnapshot('one');
    expectCode('STORE_SNAPSHOT_REMOVED', () => store.revert('one'));
  });

  test('create refuses a folder with files; open refuses a folder without an index', (t) => {
    const root = tempDirectory(t);
    fs.writeFileSync(path.join(root, 'something'), 'x');
    expectCode('STORE_NOT_EMPTY', () => ReplicaStore.create(root, { sizeBytes: MiB }));
    expectCode('STORE_INDEX_MISSING', () => ReplicaStore.open(path.join(root, 'nothing-here')));
    expectCode('STORE_INDEX_MISSING', () => ReplicaStore.open(root));
    assert.deepEqual(fs.readdirSync(root), ['something']);
  });

  test('a folder is opened by one owner at a time; a closed store refuses calls', (t) => {
    const directory = path.join(tempDirectory(t), 'r');
    const store = ReplicaStore.create(directory, { sizeBytes: MiB });
    expectCode('STORE_LOCKED', () => ReplicaStore.open(directory));
    store.close();
    store.close();
    expectCode('STORE_CLOSED', () => store.read(0, Buffer.alloc(512)));
    ReplicaStore.open(directory).close();
  });
});

describe('replica store: snapshots, purge, revert, expand', () => {
  test('snapshots keep their content while the head moves on, across reopen', (t) => {
    const directory = path.join(tempDirectory(t), 'r');
    let store = ReplicaStore.create(directory, { sizeBytes: 2 * MiB });
    store.write(0, patternBytes(1, 2 * MiB));
    const first = store.snapshot('first', { labels: { app: 'db' } });
    assert.equal(first.name, 'first');
    assert.equal(first.dataBytes, 2 * MiB);
    store.write(4096, patternBytes(2, 4096));
    store.snapshot('second', { userCreated: false });
    store.unmap(0, 4096);
    store.close();
    store = ReplicaStore.open(directory);
    defer(t, () => store.close());
    const chain = store.listChain();
    assert.deepEqual(
      chain.map((layer) => [layer.name, layer.parent, layer.isHead]),
      [
        ['first', null, false],
        ['second', 'first', false],
        ['volume-head', 'second', true],
      ],
    );
    assert.deepEqual(chain[0].labels, { app: 'db' });
    assert.equal(chain[1].userCreated, false);
    const expected = patternBytes(1, 2 * MiB);
    patternBytes(2, 4096).copy(expected, 4096);
    expected.fill(0, 0, 4096);
    assert.ok(readAll(store).equals(expected));
    store.revert('first');
    assert.ok(readAll(store).equals(patternBytes(1, 2 * MiB)));
    assert.deepEqual(
      store.listChain().map((layer) => [layer.name, layer.inLiveChain]),
      [
        ['first', true],
        ['volume-head', true],
        ['second', false],
      ],
    );
  });

  test('purge merges removed snapshots down into the head and up into a larger parent', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: 8 * MiB });
    defer(t, () => store.close());
    const model = Buffer.alloc(8 * MiB);
    const put = (offset: number, length: number, seed: number) => {
      const data = patternBytes(seed, length);
      store.write(offset, data);
      data.copy(model, offset);
    };
    put(0, 4 * MiB, 1); // big base
    store.snapshot('base');
    put(MiB, 8192, 2); // small middle
    store.snapshot('middle');
    put(2 * MiB, 4096, 3);
    store.snapshot('top');
    put(3 * MiB, 4096, 4);
    store.deleteSnapshot('base');
    store.deleteSnapshot('top');
    const hashMiddleBefore = store.hashSnapshot('middle');
    const result = store.purge();
    assert.equal(result.purgedLayers, 2);
    assert.deepEqual(
      store.listChain().map((layer) => layer.name),
      ['middle', 'volume-head'],
    );
    assert.ok(readAll(store).equals(model));
    // "base" (1024 blocks) merged with its smaller child "middle" by copying middle up:
    // 2 blocks; "top" (1 block) merged down into the head: 1 block.
    assert.equal(result.copiedBytes, 3 * 4096);
    assert.notEqual(store.hashSnapshot('middle'), hashMiddleBefore);
    assert.equal(store.verify().badBlockCount, 0);
  });

  test('purge steps interleave with writes and reads', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: 16 * MiB });
    defer(t, () => store.close());
    const model = Buffer.alloc(16 * MiB);
    for (let index = 0; index < 4; index++) {
      const data = patternBytes(index + 10, 3 * MiB);
      store.write(index * 3 * MiB, data);
      data.copy(model, index * 3 * MiB);
      store.snapshot(`s${index}`);
      store.deleteSnapshot(`s${index}`);
    }
    const job = store.startPurge();
    let steps = 0;
    while (!job.step()) {
      steps++;
      const offset = ((steps * 7919) % 4000) * 4096;
      const data = patternBytes(1000 + steps, 4096);
      store.write(offset, data);
      data.copy(model, offset);
      assert.ok(readAll(store, offset, 4096).equals(data));
    }
    assert.ok(steps > 4, `purge took ${steps} steps`);
    assert.deepEqual(
      store.listChain().map((layer) => layer.name),
      ['volume-head'],
    );
    assert.ok(readAll(store).equals(model));
  });

  test('expand grows the volume; the new range reads zeros and takes writes', (t) => {
    const directory = path.join(tempDirectory(t), 'r');
    let store = ReplicaStore.create(directory, { sizeBytes: MiB });
    store.write(0, patternBytes(5, MiB));
    store.snapshot('small');
    store.expand(3 * MiB);
    assert.equal(store.sizeBytes, 3 * MiB);
    assert.ok(readAll(store, MiB, 2 * MiB).equals(Buffer.alloc(2 * MiB)));
    store.write(2 * MiB, patternBytes(6, MiB));
    store.close();
    store = ReplicaStore.open(directory);
    defer(t, () => store.close());
    assert.equal(store.sizeBytes, 3 * MiB);
    assert.ok(readAll(store, 2 * MiB, MiB).equals(patternBytes(6, MiB)));
    store.revert('small');
    assert.equal(store.sizeBytes, 3 * MiB);
    assert.ok(readAll(store, 0, MiB).equals(patternBytes(5, MiB)));
    assert.ok(readAll(store, MiB, 2 * MiB).equals(Buffer.alloc(2 * MiB)));
  });

  test('snapshot hashes are equal for equal content and stored with the layer', (t) => {
    const root = tempDirectory(t);
    const stores = ['a', 'b'].map((name) =>
      ReplicaStore.create(path.join(root, name), { sizeBytes: 4 * MiB }),
    );
    defer(t, () => {
      for (const store of stores) store.close();
    });
    for (const store of stores) {
      store.write(MiB, patternBytes(7, 12288));
      store.unmap(0, 4096);
      store.snapshot('s');
    }
    stores[1].snapshot('other');
    const [hashA, hashB] = stores.map((store) => store.hashSnapshot('s'));
    assert.equal(hashA, hashB);
    assert.match(hashA, /^[0-9a-f]{64}$/);
    assert.equal(stores[0].listChain()[0].hash, hashA);
    stores[1].write(MiB, patternBytes(8, 4096));
    stores[1].snapshot('changed');
    assert.notEqual(stores[1].hashSnapshot('changed'), hashA);
  });
});

describe('replica store: checksums from and to the wire', () => {
  test('a write with the sender checksums is checked before anything is written', (t) => {
    const store = ReplicaStore.create(path.join(tempDirectory(t), 'r'), { sizeBytes: MiB });
    defer(t, () => store.close());
    const data = patternBytes(4, 8192);
    const checksums = new Uint32Array(2);
    store.readWithChecksums(0, Buffer.alloc(8192), checksums);
    assert.deepEqual([...checksums], [crc32c(Buffer.alloc(4096)), crc32c(Buffer.alloc(4096))]);
    const good = Uint32Array.of(crc32c(data.subarray(0, 4096)), crc32c(data.subarray(4096)));
    store.write(0, data, { expected: good });
    assert.equal(store.revisionCounter, 1);
    const damaged = Buffer.from(data);
    damaged[5000] ^= 1;
    expectCode('STORE_CHECKSUM_MISMATCH', () => store.write(0, damaged, { expected: good }));
    expectCode('STORE_CHECKSUM_MISMATCH', () =>
      store.write(512, damaged.subarray(0, 1024), { expected: 12345 }),
    );
    expectCode('STORE_CHECKSUM_MISMATCH', () =>
      store.writeBatch([
        {
          offsetBytes: 8192,
          data: patternBytes(5, 4096),
          expected: Uint32Array.of(crc32c(patternBytes(5, 4096))),
        },
        { offsetBytes: 0, data: damaged, expected: good },
      ]),
    );
    assert.equal(store.revisionCounter, 1, 'refused writes are not revisions');
    assert.ok(readAll(store, 0, 12288).equals(Buffer.concat([data, Buffer.alloc(4096)])));
    const back = new Uint32Array(2);
    const out = Buffer.alloc(8192);
    store.readWithChecksums(0, out, back);
    assert.ok(out.equals(data));
    assert.deepEqual([...back], [...good]);
    store.write(512, data.subarray(0, 1024), { expected: crc32c(data.subarray(0, 1024)) });
    assert.equal(store.revisionCounter, 2);
    expectCode('STORE_UNALIGNED', () => store.readWithChecksums(512, Buffer.alloc(4096), back));
  });

  test('a repair write is not a revision; a partial write over a bad block leaves the counter alone', (t) => {
    const directory = path.join(tempDirectory(t), 'r');
    const store = ReplicaStore.create(directory, { sizeBytes: MiB });
    defer(t, () => store.close());
    store.write(0, patternBytes(6, 8192));
    store.write(0, patternBytes(6, 4096), { repair: true });
    assert.equal(store.revisionCounter, 1);
    // Damage block 1 behind the store's back; a 512-byte write into it must fail cleanly.
    const file = path.join(directory, 'layers', '000001.img');
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, Buffer.from([0x55]), 0, 1, 4096 + 7);
    fs.closeSync(fd);
    expectCode('STORE_CHECKSUM_MISMATCH', () => store.write(4096 + 512, Buffer.alloc(512, 1)));
    expectCode('STORE_CHECKSUM_MISMATCH', () => store.unmap(4096 + 512, 512));
    assert.equal(store.revisionCounter, 1);
    store.write(4096, patternBytes(6, 8192).subarray(4096), { repair: true });
    assert.equal(store.verify().badBlockCount, 0);
    assert.equal(store.revisionCounter, 1);
  });
});
