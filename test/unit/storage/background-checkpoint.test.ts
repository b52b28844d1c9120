import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { JOURNAL_HEADER_BYTES, Journal } from '../../../src/storage/journal.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;
/** Each 8 KiB write below journals 3 records (two blocks and the operation) of 32 bytes: ~10 writes fill it. */
const CHECKPOINT_JOURNAL_BYTES = 1024;

function journals(directory: string): { name: string; size: number }[] {
  const folder = path.join(directory, 'journal');
  return fs
    .readdirSync(folder)
    .sort()
    .map((name) => ({ name, size: fs.statSync(path.join(folder, name)).size }));
}

/** Writes `count` 8 KiB writes synchronously (no turn of the event loop between them). */
function writeMany(store: ReplicaStore, expected: Buffer, first: number, count: number): void {
  for (let index = first; index < first + count; index++) {
    const data = patternBytes(500 + index, 8192);
    store.write(index * 3 * 4096, data);
    data.copy(expected, index * 3 * 4096);
  }
}

function openStore(
  t: TestContext,
  sizeBytes = 4 * MiB,
): { root: string; store: ReplicaStore; expected: Buffer } {
  const root = tempDirectory(t);
  const store = ReplicaStore.create(path.join(root, 'live'), {
    sizeBytes,
    checkpointJournalBytes: CHECKPOINT_JOURNAL_BYTES,
  });
  defer(t, () => store.close());
  return { root, store, expected: Buffer.alloc(sizeBytes) };
}

function readAll(store: ReplicaStore): Buffer {
  const volume = Buffer.alloc(store.sizeBytes);
  store.read(0, volume);
  return volume;
}

async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('background checkpoints', () => {
  test('a full journal is rotated at once; the checkpoint commits after the pool has synced the layer data', async (t) => {
    const { root, store, expected } = openStore(t);
    const live = path.join(root, 'live');
    writeMany(store, expected, 0, 12);
    const rotated = journals(live);
    assert.equal(
      rotated.length,
      2,
      'the old journal stays until the commit, the writes go on in the next one',
    );
    assert.ok(rotated[0].size >= CHECKPOINT_JOURNAL_BYTES, 'the old journal holds the first writes');
    assert.ok(rotated[1].size > JOURNAL_HEADER_BYTES, 'the next journal holds the later writes');
    await eventually(() => journals(live).length === 1, 'the background commit');
    assert.equal(journals(live)[0].name, rotated[1].name, 'the index names the next journal');
    assert.ok(readAll(store).equals(expected));
    store.close();
    const reopened = ReplicaStore.open(live);
    defer(t, () => reopened.close());
    assert.ok(readAll(reopened).equals(expected));
    assert.equal(reopened.revisionCounter, 12);
  });

  test('a crash before the background commit reopens with the writes of both journals', (t) => {
    const { root, store, expected } = openStore(t);
    // Rotations at ~10 and ~20 writes: the second settles the first (synchronously) and rotates again.
    writeMany(store, expected, 0, 25);
    const image = path.join(root, 'image');
    fs.cpSync(path.join(root, 'live'), image, { recursive: true });
    const left = journals(image);
    assert.equal(left.length, 2);
    for (const journal of left)
      assert.ok(journal.size > JOURNAL_HEADER_BYTES + 3 * 32, `${journal.name} holds writes`);
    const reopened = ReplicaStore.open(image);
    defer(t, () => reopened.close());
    assert.ok(readAll(reopened).equals(expected), 'every write, from the index and both journals');
    assert.equal(reopened.revisionCounter, 25);
    assert.equal(
      journals(image).length,
      1,
      'both replayed journals are gone after the consolidating checkpoint',
    );
    reopened.verify();
  });

  test('flush, a snapshot and close settle a background checkpoint first', (t) => {
    const { root, store, expected } = openStore(t);
    const live = path.join(root, 'live');
    writeMany(store, expected, 0, 12);
    assert.equal(journals(live).length, 2);
    store.flush();
    assert.equal(journals(live).length, 1, 'flush committed the checkpoint');
    writeMany(store, expected, 12, 12);
    assert.equal(journals(live).length, 2);
    store.snapshot('s1');
    assert.equal(journals(live).length, 1, 'the snapshot checkpoint committed it first');
    writeMany(store, expected, 24, 12);
    assert.equal(journals(live).length, 2);
    store.close();
    assert.equal(journals(live).length, 1);
    const reopened = ReplicaStore.open(live);
    defer(t, () => reopened.close());
    assert.ok(readAll(reopened).equals(expected));
    assert.equal(reopened.revisionCounter, 36);
  });

  test('when the next journal cannot be made, the write that filled the journal fails with a code and nothing is lost', (t) => {
    // Two index chunks (4 MiB each): the writes after the failure go to the second, so the
    // first chunk's record reaches the index only if the failed checkpoint kept it due.
    const { root, store, expected } = openStore(t, 8 * MiB);
    const live = path.join(root, 'live');
    writeMany(store, expected, 0, 9);
    const [current] = journals(live);
    assert.ok(current.size < CHECKPOINT_JOURNAL_BYTES, 'nine writes do not fill the journal');
    // A directory where the next generation's journal file would go: creating it fails.
    const blocked = path.join(
      live,
      'journal',
      `${String(Number(current.name.slice(0, 10)) + 1).padStart(10, '0')}.journal`,
    );
    fs.mkdirSync(blocked);
    const data = patternBytes(509, 8192);
    data.copy(expected, 9 * 3 * 4096);
    assert.throws(
      () => store.write(9 * 3 * 4096, data),
      (error) => isHornbillError(error, 'STORE_IO'),
    );
    // An immediate checkpoint (a snapshot) fails the same way and changes nothing either.
    assert.throws(
      () => store.snapshot('s1'),
      (error) => isHornbillError(error, 'STORE_IO'),
    );
    assert.deepEqual(
      store.listChain().map((layer) => layer.name),
      [store.listChain().at(-1)?.name],
      'no snapshot was made',
    );
    fs.rmdirSync(blocked);
    for (let index = 0; index < 12; index++) {
      const later = patternBytes(600 + index, 8192);
      store.write(4 * MiB + index * 3 * 4096, later);
      later.copy(expected, 4 * MiB + index * 3 * 4096);
    }
    store.close();
    const reopened = ReplicaStore.open(live);
    defer(t, () => reopened.close());
    assert.ok(readAll(reopened).equals(expected), 'every write, the one whose checkpoint failed included');
    assert.equal(reopened.verify().badBlockCount, 0);
  });

  test('a journal with records two generations past the index is refused and nothing changes', (t) => {
    const { root, store, expected } = openStore(t);
    writeMany(store, expected, 0, 12);
    const image = path.join(root, 'image');
    fs.cpSync(path.join(root, 'live'), image, { recursive: true });
    const [, newer] = journals(image);
    const folder = path.join(image, 'journal');
    const stray = Journal.create(folder, Number(newer.name.slice(0, 10)) + 1);
    stray.addOperation(99);
    stray.commit();
    stray.close();
    const before = journals(image);
    assert.throws(
      () => ReplicaStore.open(image),
      (error) => isHornbillError(error, 'STORE_JOURNAL_CORRUPT') && /its successor/.test(error.message),
    );
    assert.deepEqual(journals(image), before);
  });
});
