import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VERIFY_MAGIC, VerifyState } from '../../../src/bench/verify.ts';
import { crc32c } from '../../../src/native.ts';

function state(requireHeader = false): VerifyState {
  return new VerifyState({
    unitBytes: 4096,
    baseOffsetBytes: 65536,
    lengthBytes: 64 * 4096,
    requireHeader,
    jobName: 'j',
  });
}

/** Writes `data` at `offset` through the state (prepare, then complete). */
function write(verify: VerifyState, offset: number, data: Buffer): Buffer {
  verify.prepareWrite(offset, data);
  verify.completeWrite(offset, data.length, true);
  return Buffer.from(data);
}

function read(verify: VerifyState, offset: number, data: Buffer): number {
  const expectation = new Uint32Array((data.length / 4096) * 2);
  verify.prepareRead(offset, data.length, expectation);
  return verify.checkRead(offset, data, expectation);
}

describe('--verify crc32c header', () => {
  test('the header: magic, unit size, offset, run id, generation, and a CRC32C over the rest', () => {
    const verify = state();
    const data = write(verify, 65536 + 8192, Buffer.alloc(8192));
    for (const [unit, offset] of [
      [0, 65536 + 8192],
      [1, 65536 + 12288],
    ]) {
      const block = data.subarray(unit * 4096, unit * 4096 + 4096);
      assert.equal(block.readUInt32LE(0), VERIFY_MAGIC);
      assert.equal(block.readUInt32LE(4), 4096);
      assert.equal(block.readUInt32LE(8), offset);
      assert.equal(block.readUInt32LE(16), verify.runId);
      assert.equal(block.readUInt32LE(20), 1, 'one write: generation 1');
      const covered = Buffer.concat([block.subarray(0, 24), block.subarray(28)]);
      assert.equal(block.readUInt32LE(24), crc32c(covered));
      assert.notDeepEqual(block.subarray(32, 64), Buffer.alloc(32), 'a pattern follows the header');
    }
    assert.equal(read(verify, 65536 + 8192, data), 0);
    assert.equal(verify.checkedUnits, 2);
  });

  test('each kind of damage is told apart and reported with the offset of the block', () => {
    const verify = state();
    const base = 65536;
    const good = write(verify, base, Buffer.alloc(4096 * 4));
    const cases: [string, (block: Buffer) => Buffer, string][] = [
      [
        'flipped byte',
        (block) => {
          block[2000] ^= 1;
          return block;
        },
        'checksum mismatch',
      ],
      ['garbage', (block) => block.fill(0xab), 'no header'],
      ['zeros', (block) => block.fill(0), 'no header (zeros)'],
      ['another block', () => Buffer.from(good.subarray(4096, 8192)), 'wrong offset (misdirected write)'],
    ];
    for (const [what, damage, reason] of cases) {
      const data = Buffer.from(good);
      const damaged = damage(Buffer.from(data.subarray(0, 4096)));
      damaged.copy(data, 0);
      const before = verify.corruptions.length;
      assert.equal(read(verify, base, data), 1, what);
      assert.deepEqual(verify.corruptions.slice(before), [{ offsetBytes: base, reason, job: 'j' }], what);
      assert.equal(verify.lastCorruptionOffsetBytes, base);
    }
    assert.equal(verify.corruptedUnits, 4);
  });

  test('an older generation of an acknowledged write is a lost write; any generation from before is fine', () => {
    const verify = state();
    const first = write(verify, 65536, Buffer.alloc(4096));
    const second = write(verify, 65536, Buffer.alloc(4096));
    assert.equal(read(verify, 65536, second), 0);
    assert.equal(read(verify, 65536, first), 1);
    assert.equal(verify.corruptions[0].reason, 'stale data (lost write)');
    // Data from an earlier run (another run id) is fine for a block not yet written in this run.
    const later = state();
    assert.equal(read(later, 65536, first), 0);
    // …but not once this run has written it.
    write(later, 65536, Buffer.alloc(4096));
    assert.equal(read(later, 65536, first), 1);
  });

  test('while writes to a block overlap, the floor is the oldest of them; a read overlapping a write is skipped', () => {
    const verify = state();
    const a = Buffer.alloc(4096);
    const b = Buffer.alloc(4096);
    verify.prepareWrite(65536, a);
    verify.prepareWrite(65536, b);
    verify.completeWrite(65536, 4096, true);
    verify.completeWrite(65536, 4096, true);
    // The target may have applied the two writes in either order: both are acceptable.
    assert.equal(read(verify, 65536, Buffer.from(a)), 0);
    assert.equal(read(verify, 65536, Buffer.from(b)), 0);
    // A read in flight when a write to its block starts cannot know which it sees: skipped.
    const expectation = new Uint32Array(2);
    verify.prepareRead(65536, 4096, expectation);
    const c = Buffer.alloc(4096);
    verify.prepareWrite(65536, c);
    const skippedBefore = verify.skippedUnits;
    assert.equal(verify.checkRead(65536, Buffer.alloc(4096, 0xee), expectation), 0);
    assert.equal(verify.skippedUnits, skippedBefore + 1);
    // A failed write leaves the block unknown until the next successful one.
    verify.completeWrite(65536, 4096, false);
    assert.equal(read(verify, 65536, Buffer.alloc(4096, 0xee)), 0);
    write(verify, 65536, c);
    assert.equal(read(verify, 65536, Buffer.alloc(4096, 0xee)), 1);
  });

  test('zeros: a never-written block in a mixed job, corruption in a read-only job', () => {
    const mixed = state(false);
    assert.equal(read(mixed, 65536, Buffer.alloc(8192)), 0);
    assert.equal(mixed.unwrittenUnits, 2);
    const readOnly = state(true);
    assert.equal(read(readOnly, 65536, Buffer.alloc(8192)), 2);
  });

  test('the read-back walks the written blocks in runs, split among clones', () => {
    const verify = state();
    write(verify, 65536, Buffer.alloc(3 * 4096));
    write(verify, 65536 + 10 * 4096, Buffer.alloc(4096));
    const runs: [number, number][] = [];
    const cursor = { unit: 0, endUnit: verify.unitCount, offsetBytes: 0, lengthBytes: 0 };
    while (verify.nextWrittenRun(cursor, 8192)) runs.push([cursor.offsetBytes, cursor.lengthBytes]);
    assert.deepEqual(runs, [
      [65536, 8192],
      [65536 + 8192, 4096],
      [65536 + 40960, 4096],
    ]);
    const half = { unit: 5, endUnit: verify.unitCount, offsetBytes: 0, lengthBytes: 0 };
    assert.ok(verify.nextWrittenRun(half, 1 << 20));
    assert.deepEqual([half.offsetBytes, half.lengthBytes], [65536 + 40960, 4096]);
  });
});
