import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

function errorOf(run: () => unknown): { code: string; message: string; details: Record<string, unknown> } {
  try {
    run();
  } catch (error) {
    assert.ok(isHornbillError(error), `expected a coded error, got ${error}`);
    return error;
  }
  assert.fail('expected an error');
}

/**
 * Every file under a folder with a hash of its content: to prove a failed open changed
 * nothing. index.mdb-lock is left out: it is LMDB's table of readers, rewritten by every
 * open, and holds no data.
 */
function fingerprint(directory: string): Record<string, string> {
  const result: Record<string, string> = {};
  for (const entry of fs.readdirSync(directory, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name === 'index.mdb-lock') continue;
    const file = path.join(entry.parentPath, entry.name);
    result[path.relative(directory, file)] = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }
  return result;
}

function flipBit(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, offset);
  byte[0] ^= 0x10;
  fs.writeSync(fd, byte, 0, 1, offset);
  fs.closeSync(fd);
}

/** A replica with a snapshot and a head, closed; returns its folder. */
function sampleReplica(root: string): string {
  const directory = path.join(root, 'replica');
  const store = ReplicaStore.create(directory, { sizeBytes: 4 * MiB });
  store.write(0, patternBytes(1, MiB));
  store.snapshot('base', { labels: { purpose: 'integrity-test' } });
  store.write(2 * MiB, patternBytes(2, 64 * 1024));
  store.close();
  return directory;
}

function layerFile(directory: string, name: string): string {
  const store = ReplicaStore.open(directory);
  const layer = store.listChain().find((info) => info.name === name)!;
  store.close();
  return path.join(directory, 'layers', `${String(layer.id).padStart(6, '0')}.img`);
}

describe('integrity: a damaged block is reported, never returned', () => {
  test('a flipped bit in the head is named by the read and by verify', (t) => {
    const directory = sampleReplica(tempDirectory(t));
    flipBit(layerFile(directory, 'volume-head'), 2 * MiB + 5 * 4096 + 123);
    const store = ReplicaStore.open(directory);
    defer(t, () => store.close());
    const target = Buffer.alloc(64 * 1024);
    const error = errorOf(() => store.read(2 * MiB, target));
    assert.equal(error.code, 'STORE_CHECKSUM_MISMATCH');
    const blocks = error.details.blocks as { block: number; layerName: string; offsetBytes: number }[];
    assert.deepEqual(
      blocks.map((block) => [block.block, block.layerName, block.offsetBytes]),
      [[512 + 5, 'volume-head', 2 * MiB + 5 * 4096]],
    );
    // Neighbouring blocks still read, and a sub-block read of the bad block fails too.
    const neighbour = Buffer.alloc(4096);
    store.read(2 * MiB + 4 * 4096, neighbour);
    assert.ok(neighbour.equals(patternBytes(2, 64 * 1024).subarray(4 * 4096, 5 * 4096)));
    assert.equal(
      errorOf(() => store.read(2 * MiB + 5 * 4096 + 512, Buffer.alloc(512))).code,
      'STORE_CHECKSUM_MISMATCH',
    );
    // A partial write into the bad block cannot merge with it; a whole-block write replaces it.
    assert.equal(
      errorOf(() => store.write(2 * MiB + 5 * 4096, Buffer.alloc(512, 1))).code,
      'STORE_CHECKSUM_MISMATCH',
    );
    const report = store.verify();
    assert.equal(report.badBlockCount, 1);
    assert.equal(report.badBlocks[0].block, 517);
    store.write(2 * MiB + 5 * 4096, patternBytes(3, 4096));
    assert.equal(store.verify().badBlockCount, 0);
  });

  test('a flipped bit in a snapshot shows through the chain, with the snapshot named', (t) => {
    const directory = sampleReplica(tempDirectory(t));
    flipBit(layerFile(directory, 'base'), 77 * 4096 + 9);
    const store = ReplicaStore.open(directory);
    defer(t, () => store.close());
    const error = errorOf(() => store.read(0, Buffer.alloc(MiB)));
    const blocks = error.details.blocks as { block: number; layerName: string }[];
    assert.deepEqual(blocks, [{ ...blocks[0], block: 77, layerName: 'base' }]);
    assert.equal(errorOf(() => store.hashSnapshot('base')).code, 'STORE_CHECKSUM_MISMATCH');
    assert.equal(
      errorOf(() => store.exportImage({ outputPath: path.join(directory, '..', 'x.img') })).code,
      'STORE_CHECKSUM_MISMATCH',
    );
    const report = store.exportImage({ outputPath: path.join(directory, '..', 'y.img'), skipCorrupt: true });
    assert.deepEqual(
      report.corruptBlocks.map((block) => block.block),
      [77],
    );
    assert.equal(store.verify().badBlocks[0].layerName, 'base');
  });
});

describe('bad files: a coded error, and nothing in the folder changes', () => {
  const cases: [string, string, (directory: string) => void][] = [
    [
      'index overwritten with garbage',
      'STORE_INDEX_CORRUPT',
      (directory) => fs.writeFileSync(path.join(directory, 'index.mdb'), patternBytes(4, 64 * 1024)),
    ],
    [
      'index truncated',
      'STORE_INDEX_CORRUPT',
      (directory) => fs.truncateSync(path.join(directory, 'index.mdb'), 100),
    ],
    [
      'a byte of a layer record flipped inside the index',
      'STORE_INDEX_CORRUPT',
      (directory) => {
        const file = path.join(directory, 'index.mdb');
        const at = fs.readFileSync(file).indexOf('integrity-test');
        assert.ok(at > 0);
        flipBit(file, at + 3);
      },
    ],
    ['index missing', 'STORE_INDEX_MISSING', (directory) => fs.rmSync(path.join(directory, 'index.mdb'))],
    [
      'a layer file missing',
      'STORE_LAYER_MISSING',
      (directory) => fs.rmSync(path.join(directory, 'layers', '000001.img')),
    ],
    [
      'an unknown file among the layers',
      'STORE_UNKNOWN_FILE',
      (directory) => fs.writeFileSync(path.join(directory, 'layers', 'notes.txt'), 'x'),
    ],
    [
      'the journal named by the index missing',
      'STORE_JOURNAL_CORRUPT',
      (directory) => {
        for (const name of fs.readdirSync(path.join(directory, 'journal')))
          fs.rmSync(path.join(directory, 'journal', name));
      },
    ],
  ];
  for (const [label, code, damage] of cases) {
    test(label, (t) => {
      const directory = sampleReplica(tempDirectory(t));
      damage(directory);
      const before = fingerprint(directory);
      const error = errorOf(() => ReplicaStore.open(directory));
      assert.equal(error.code, code, error.message);
      assert.deepEqual(fingerprint(directory), before);
    });
  }
});

describe('the journal after a crash', () => {
  /** A copy of an open store's folder: what a crash (kill -9) at this moment leaves. */
  function crashImage(t: TestContext): { image: string; expected: Buffer } {
    const root = tempDirectory(t);
    const store = ReplicaStore.create(path.join(root, 'live'), { sizeBytes: 4 * MiB });
    const expected = Buffer.alloc(4 * MiB);
    for (let index = 0; index < 40; index++) {
      const data = patternBytes(100 + index, 8192);
      store.write(index * 3 * 4096, data);
      data.copy(expected, index * 3 * 4096);
    }
    const image = path.join(root, 'image');
    fs.cpSync(path.join(root, 'live'), image, { recursive: true });
    store.close();
    return { image, expected };
  }

  function journalOf(directory: string): string {
    const [name] = fs.readdirSync(path.join(directory, 'journal'));
    return path.join(directory, 'journal', name);
  }

  test('a crash image reopens with every write, from the journal', (t) => {
    const { image, expected } = crashImage(t);
    assert.ok(fs.statSync(journalOf(image)).size > 64 + 40 * 32, 'the journal holds the writes');
    const store = ReplicaStore.open(image);
    defer(t, () => store.close());
    const volume = Buffer.alloc(4 * MiB);
    store.read(0, volume);
    assert.ok(volume.equals(expected));
    assert.equal(store.revisionCounter, 40);
  });

  test('a torn last record is dropped; earlier ones replay', (t) => {
    const { image, expected } = crashImage(t);
    const journal = journalOf(image);
    fs.truncateSync(journal, fs.statSync(journal).size - 20);
    const store = ReplicaStore.open(image);
    defer(t, () => store.close());
    const volume = Buffer.alloc(4 * MiB);
    store.read(0, volume);
    // The last write's second block lost its record, so that block keeps its old (zero) content.
    expected.fill(0, 39 * 3 * 4096 + 4096, 39 * 3 * 4096 + 8192);
    assert.ok(volume.equals(expected));
  });

  test('a damaged record followed by intact ones is refused, not silently dropped', (t) => {
    const { image } = crashImage(t);
    const journal = journalOf(image);
    flipBit(journal, 64 + 10 * 32 + 14);
    const before = fingerprint(image);
    const error = errorOf(() => ReplicaStore.open(image));
    assert.equal(error.code, 'STORE_JOURNAL_CORRUPT');
    assert.deepEqual(fingerprint(image), before);
  });
});
