import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { BlockDevice, MappingRun } from '../../../../src/dataplane/block-device.ts';
import { AdditionalSense, ScsiStatus, SenseKey } from '../../../../src/dataplane/iscsi/scsi/constants.ts';
import { type ErrorCode, HornbillError } from '../../../../src/errors.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { cdb10, cdb16, NEXUS_A, run, storeUnit, unitOver } from './scsi-harness.ts';

const BLOCK = 512;

test('WRITE then READ returns the data for every CDB size (6/10/12/16), and FUA writes land', async (t) => {
  const { unit, store } = storeUnit(t);
  const data = patternBytes(1, 8 * BLOCK);
  const write12 = Buffer.alloc(12);
  write12[0] = 0xaa;
  write12.writeUInt32BE(100, 2);
  write12.writeUInt32BE(8, 6);
  const writes: [number[] | Buffer, number][] = [
    [[0x0a, 0, 0, 40, 8, 0], 40],
    [cdb10(0x2a, 60, 8, 0x08), 60],
    [write12, 100],
    [cdb16(0x8a, 140, 8, 0x08), 140],
  ];
  for (const [cdb, lba] of writes) {
    const outcome = await run(unit, cdb, { dataOut: data });
    assert.equal(outcome.status, ScsiStatus.GOOD);
    const direct = Buffer.alloc(data.length);
    store.read(lba * BLOCK, direct);
    assert.deepEqual(direct, data, `written at ${lba}`);
  }
  const read6 = await run(unit, [0x08, 0, 0, 40, 8, 0]);
  assert.deepEqual(read6.data, data);
  const read10 = await run(unit, cdb10(0x28, 60, 8));
  assert.deepEqual(read10.data, data);
  const read16 = await run(unit, cdb16(0x88, 140, 8));
  assert.deepEqual(read16.data, data);
});

test('reads and writes beyond the end give LBA OUT OF RANGE; protection and oversize give INVALID FIELD', async (t) => {
  const { unit } = storeUnit(t, 1024 * 1024, { maxTransferBytes: 64 * 1024 });
  const blocks = 2048;
  const beyond = await run(unit, cdb10(0x28, blocks - 1, 2));
  assert.equal(beyond.status, ScsiStatus.CHECK_CONDITION);
  assert.equal(beyond.senseKey, SenseKey.ILLEGAL_REQUEST);
  assert.equal(beyond.additionalSense, AdditionalSense.LBA_OUT_OF_RANGE);
  const huge = await run(unit, cdb16(0x88, 2 ** 40, 1));
  assert.equal(huge.additionalSense, AdditionalSense.LBA_OUT_OF_RANGE);
  const writeBeyond = await run(unit, cdb16(0x8a, blocks, 1), { dataOut: Buffer.alloc(BLOCK) });
  assert.equal(writeBeyond.additionalSense, AdditionalSense.LBA_OUT_OF_RANGE);
  const protect = await run(unit, cdb10(0x28, 0, 1, 0x20));
  assert.equal(protect.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  assert.equal(protect.sense[15], 0x80 | 0x40 | 0x08 | 7, 'SKSV, C/D, BPV, bit 7');
  assert.equal(protect.sense.readUInt16BE(16), 1, 'field pointer: byte 1');
  const tooLong = await run(unit, cdb10(0x28, 0, 256));
  assert.equal(tooLong.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  assert.equal(tooLong.sense.readUInt16BE(16), 7, 'field pointer: the transfer length');
  const zero = await run(unit, cdb10(0x28, blocks, 0));
  assert.equal(zero.status, ScsiStatus.GOOD, 'zero blocks at the end is fine');
  const unknown = await run(unit, [0xc0, 0, 0, 0, 0, 0]);
  assert.equal(unknown.additionalSense, AdditionalSense.INVALID_OPERATION_CODE);
});

test('a write shorter than its CDB (initiator sent less) writes only whole blocks received', async (t) => {
  const { unit, store } = storeUnit(t);
  store.write(0, Buffer.alloc(2 * BLOCK, 0x61));
  const outcome = await run(unit, cdb10(0x2a, 0, 2), {
    dataOut: Buffer.alloc(BLOCK + 100, 0x62),
    expectedBytes: BLOCK + 100,
  });
  assert.equal(outcome.status, ScsiStatus.GOOD);
  const back = Buffer.alloc(2 * BLOCK);
  store.read(0, back);
  assert.ok(back.subarray(0, BLOCK).every((byte) => byte === 0x62));
  assert.ok(
    back.subarray(BLOCK).every((byte) => byte === 0x61),
    'the partial second block is not written',
  );
});

test('VERIFY with BYTCHK=1 reports a MISCOMPARE with the offset; BYTCHK=0 checks the medium', async (t) => {
  const { unit, store } = storeUnit(t);
  const data = patternBytes(2, 4 * BLOCK);
  store.write(8 * BLOCK, data);
  const same = await run(unit, cdb10(0x2f, 8, 4, 0x02), { dataOut: data });
  assert.equal(same.status, ScsiStatus.GOOD);
  const changed = Buffer.from(data);
  changed[1000] ^= 0xff;
  const different = await run(unit, cdb16(0x8f, 8, 4, 0x02), { dataOut: changed });
  assert.equal(different.senseKey, SenseKey.MISCOMPARE);
  assert.equal(different.additionalSense, AdditionalSense.MISCOMPARE_DURING_VERIFY);
  assert.equal(different.sense[0] & 0x80, 0x80, 'INFORMATION is valid');
  assert.equal(different.sense.readUInt32BE(3), 1000);
  const medium = await run(unit, cdb10(0x2f, 8, 4, 0));
  assert.equal(medium.status, ScsiStatus.GOOD);
  const reserved = await run(unit, cdb10(0x2f, 8, 4, 0x04));
  assert.equal(reserved.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('WRITE AND VERIFY writes and reads back', async (t) => {
  const { unit, store } = storeUnit(t);
  const data = patternBytes(3, 16 * BLOCK);
  assert.equal((await run(unit, cdb10(0x2e, 32, 16, 0x02), { dataOut: data })).status, ScsiStatus.GOOD);
  assert.equal((await run(unit, cdb16(0x8e, 64, 16), { dataOut: data })).status, ScsiStatus.GOOD);
  const back = Buffer.alloc(data.length);
  store.read(64 * BLOCK, back);
  assert.deepEqual(back, data);
});

test('COMPARE AND WRITE writes on a match, reports the miscompare offset otherwise, and checks its data size', async (t) => {
  const { unit, store } = storeUnit(t);
  const old = patternBytes(4, 2 * BLOCK);
  const next = patternBytes(5, 2 * BLOCK);
  store.write(16 * BLOCK, old);
  const caw = (lba: number, blocks: number): number[] => {
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x89;
    cdb.writeUInt32BE(lba, 6);
    cdb[13] = blocks;
    return [...cdb];
  };
  const ok = await run(unit, caw(16, 2), { dataOut: Buffer.concat([old, next]) });
  assert.equal(ok.status, ScsiStatus.GOOD);
  const back = Buffer.alloc(2 * BLOCK);
  store.read(16 * BLOCK, back);
  assert.deepEqual(back, next);
  const stale = await run(unit, caw(16, 2), { dataOut: Buffer.concat([old, patternBytes(6, 2 * BLOCK)]) });
  assert.equal(stale.senseKey, SenseKey.MISCOMPARE);
  let firstDifference = 0;
  while (old[firstDifference] === next[firstDifference]) firstDifference++;
  assert.equal(stale.sense.readUInt32BE(3), firstDifference);
  store.read(16 * BLOCK, back);
  assert.deepEqual(back, next, 'a miscompare writes nothing');
  const wrongSize = await run(unit, caw(16, 1), { dataOut: Buffer.alloc(4 * BLOCK) });
  assert.equal(wrongSize.status, ScsiStatus.CHECK_CONDITION);
});

test('COMPARE AND WRITE is atomic against concurrent writes to the same blocks', async (t) => {
  // A device that yields between every operation, so commands interleave.
  const { device } = storeUnit(t);
  const slow: BlockDevice = {
    get sizeBytes() {
      return device.sizeBytes;
    },
    sectorSize: 512,
    physicalBlockSize: 4096,
    name: 'slow',
    read: async (offset, target) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      await device.read(offset, target);
    },
    write: async (offset, source) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      await device.write(offset, source);
    },
    unmap: (offset, length) => device.unmap(offset, length),
    flush: () => device.flush(),
    mappingStatus: (offset, length) => device.mappingStatus(offset, length),
  };
  const unit = unitOver(slow);
  const zero = Buffer.alloc(BLOCK);
  const one = Buffer.alloc(BLOCK, 1);
  const caw = Buffer.alloc(16);
  caw[0] = 0x89;
  caw[13] = 1;
  // 20 compare-and-writes that each flip 0 → 1 or 1 → 0, racing: exactly one may win per state.
  const outcomes = await Promise.all(
    Array.from({ length: 20 }, (_, index) =>
      run(unit, caw, { dataOut: index % 2 === 0 ? Buffer.concat([zero, one]) : Buffer.concat([one, zero]) }),
    ),
  );
  const successes = outcomes.filter((outcome) => outcome.status === ScsiStatus.GOOD).length;
  const miscompares = outcomes.filter((outcome) => outcome.senseKey === SenseKey.MISCOMPARE).length;
  assert.equal(successes + miscompares, 20);
  assert.ok(successes >= 1);
  const final = Buffer.alloc(BLOCK);
  await slow.read(0, final);
  // Each success flips the block, so the final state is known from the count.
  assert.ok(
    final.every((byte) => byte === successes % 2),
    'no lost or torn update',
  );
  assert.equal(unit.locks.heldCount, 0);
  assert.equal(unit.locks.waitingCount, 0);
});

test('UNMAP and WRITE SAME with UNMAP deallocate; GET LBA STATUS reports it; WRITE SAME writes the pattern', async (t) => {
  const { unit, store } = storeUnit(t);
  store.write(0, patternBytes(7, 64 * BLOCK));
  const list = Buffer.alloc(24);
  list.writeUInt16BE(22, 0);
  list.writeUInt16BE(16, 2);
  list.writeUInt32BE(16, 12);
  list.writeUInt32BE(16, 16);
  const unmap = [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0];
  assert.equal((await run(unit, unmap, { dataOut: list })).status, ScsiStatus.GOOD);
  const status = await run(unit, cdb16(0x9e, 0, 64, 0x12));
  assert.equal(status.status, ScsiStatus.GOOD);
  const descriptors = (status.data.readUInt32BE(0) - 4) / 16;
  const runs: [number, number, number][] = [];
  for (let index = 0; index < descriptors; index++) {
    const offset = 8 + index * 16;
    runs.push([
      status.data.readUInt32BE(offset + 4),
      status.data.readUInt32BE(offset + 8),
      status.data[offset + 12],
    ]);
  }
  assert.deepEqual(runs.slice(0, 3), [
    [0, 16, 0],
    [16, 16, 1],
    [32, 32, 0],
  ]);
  const zeros = await run(unit, cdb10(0x28, 16, 16));
  assert.ok(zeros.data.every((byte) => byte === 0));
  const pattern = Buffer.alloc(BLOCK, 0xab);
  const writeSame = await run(unit, cdb10(0x41, 100, 300), { dataOut: pattern });
  assert.equal(writeSame.status, ScsiStatus.GOOD);
  const back = await run(unit, cdb10(0x28, 100, 300));
  assert.ok(back.data.every((byte) => byte === 0xab));
  const sameUnmap = await run(unit, cdb16(0x93, 100, 300, 0x08), { dataOut: pattern });
  assert.equal(sameUnmap.status, ScsiStatus.GOOD);
  assert.ok(
    (await run(unit, cdb10(0x28, 100, 300))).data.every((byte) => byte === 0),
    'UNMAP bit deallocates',
  );
  const wrongSize = await run(unit, cdb10(0x41, 0, 1), {
    dataOut: Buffer.alloc(2 * BLOCK),
    expectedBytes: 2 * BLOCK,
  });
  assert.equal(wrongSize.status, ScsiStatus.CHECK_CONDITION);
  const anchor = await run(unit, cdb10(0x41, 0, 1, 0x10), { dataOut: pattern });
  assert.equal(anchor.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
  const beyondList = Buffer.from(list);
  beyondList.writeUInt32BE(2 ** 20, 12);
  assert.equal(
    (await run(unit, unmap, { dataOut: beyondList })).additionalSense,
    AdditionalSense.LBA_OUT_OF_RANGE,
  );
  const shortList = await run(unit, [0x42, 0, 0, 0, 0, 0, 0, 0, 4, 0], { dataOut: Buffer.alloc(4) });
  assert.equal(shortList.additionalSense, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR);
});

test('SYNCHRONIZE CACHE flushes the device; PRE-FETCH checks the range', async (t) => {
  const { device } = storeUnit(t);
  let flushes = 0;
  const counting: BlockDevice = Object.create(device, {
    flush: {
      value: async () => {
        flushes++;
        await device.flush();
      },
    },
  });
  const unit = unitOver(counting);
  assert.equal((await run(unit, cdb10(0x35, 0, 0))).status, ScsiStatus.GOOD);
  assert.equal((await run(unit, cdb16(0x91, 0, 0))).status, ScsiStatus.GOOD);
  assert.equal(flushes, 2);
  assert.equal((await run(unit, cdb10(0x34, 0, 8))).status, ScsiStatus.GOOD);
  assert.equal((await run(unit, cdb16(0x90, 2 ** 30, 8))).additionalSense, AdditionalSense.LBA_OUT_OF_RANGE);
});

test('device errors map to sense data as block-device.ts documents', async (t) => {
  const { device } = storeUnit(t);
  const cases: [ErrorCode | 'plain', number, number][] = [
    ['STORE_CHECKSUM_MISMATCH', SenseKey.MEDIUM_ERROR, AdditionalSense.UNRECOVERED_READ_ERROR],
    ['STORE_NO_SPACE', SenseKey.DATA_PROTECT, AdditionalSense.SPACE_ALLOCATION_FAILED_WRITE_PROTECT],
    ['DEVICE_NOT_READY', SenseKey.NOT_READY, AdditionalSense.LOGICAL_UNIT_NOT_READY_CAUSE_NOT_REPORTABLE],
    ['STORE_OUT_OF_RANGE', SenseKey.ILLEGAL_REQUEST, AdditionalSense.LBA_OUT_OF_RANGE],
    ['STORE_UNALIGNED', SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB],
    ['STORE_IO', SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE],
    ['plain', SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE],
  ];
  for (const [code, senseKey, additionalSense] of cases) {
    const failure = (): Promise<never> =>
      Promise.reject(code === 'plain' ? new Error('boom') : new HornbillError(code, 'injected'));
    const failing: BlockDevice = {
      sizeBytes: device.sizeBytes,
      sectorSize: 512,
      physicalBlockSize: 4096,
      name: 'failing',
      read: failure,
      write: failure,
      unmap: failure,
      flush: failure,
      mappingStatus: failure as () => Promise<MappingRun[]>,
    };
    const unit = unitOver(failing);
    for (const cdb of [cdb10(0x28, 0, 1), cdb10(0x35, 0, 0)]) {
      const outcome = await run(unit, cdb);
      assert.equal(outcome.status, ScsiStatus.CHECK_CONDITION, code);
      assert.equal(outcome.senseKey, senseKey, code);
      assert.equal(outcome.additionalSense, additionalSense, code);
    }
    const write = await run(unit, cdb10(0x2a, 0, 1), { dataOut: Buffer.alloc(BLOCK), nexus: NEXUS_A });
    assert.equal(write.senseKey, senseKey, `${code} on write`);
  }
});

test('READ CAPACITY reports 512-byte blocks, 4 KiB physical blocks and thin provisioning', async (t) => {
  const { unit } = storeUnit(t, 8 * 1024 * 1024);
  const ten = await run(unit, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(ten.data.readUInt32BE(0), 16383);
  assert.equal(ten.data.readUInt32BE(4), 512);
  const sixteen = await run(unit, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  assert.equal(sixteen.data.readUInt32BE(4), 16383);
  assert.equal(sixteen.data[13] & 0x0f, 3, 'LBPPBE');
  assert.equal(sixteen.data[14] & 0xc0, 0xc0, 'LBPME and LBPRZ');
  const short = await run(unit, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0]);
  assert.equal(short.data.length, 12, 'allocation length limits the data');
  const pmi = await run(unit, [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
  assert.equal(pmi.additionalSense, AdditionalSense.INVALID_FIELD_IN_CDB);
});

test('random WRITE, UNMAP, WRITE SAME and COMPARE AND WRITE sequences read back like a byte-array model', async (t) => {
  const { unit } = storeUnit(t, 1024 * 1024);
  const blocks = 2048;
  const model = Buffer.alloc(blocks * BLOCK);
  const range = fc
    .tuple(fc.integer({ min: 0, max: blocks - 1 }), fc.integer({ min: 1, max: 24 }))
    .map(([lba, count]) => ({ lba, count: Math.min(count, blocks - lba) }));
  const operation = fc.oneof(
    fc.record({ kind: fc.constant('write' as const), range, seed: fc.nat() }),
    fc.record({ kind: fc.constant('unmap' as const), range }),
    fc.record({
      kind: fc.constant('same' as const),
      range,
      byte: fc.integer({ min: 0, max: 255 }),
      unmap: fc.boolean(),
    }),
    fc.record({ kind: fc.constant('caw' as const), range, seed: fc.nat(), match: fc.boolean() }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 12 }), async (operations) => {
      for (const op of operations) {
        const { lba, count } = op.range;
        const start = lba * BLOCK;
        const bytes = count * BLOCK;
        if (op.kind === 'write') {
          const data = patternBytes(op.seed, bytes);
          assert.equal((await run(unit, cdb10(0x2a, lba, count), { dataOut: data })).status, ScsiStatus.GOOD);
          data.copy(model, start);
        } else if (op.kind === 'unmap') {
          const list = Buffer.alloc(24);
          list.writeUInt16BE(22, 0);
          list.writeUInt16BE(16, 2);
          list.writeUInt32BE(lba, 12);
          list.writeUInt32BE(count, 16);
          assert.equal(
            (await run(unit, [0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0], { dataOut: list })).status,
            ScsiStatus.GOOD,
          );
          model.fill(0, start, start + bytes);
        } else if (op.kind === 'same') {
          const block = Buffer.alloc(BLOCK, op.byte);
          const outcome = await run(unit, cdb16(0x93, lba, count, op.unmap ? 0x08 : 0), { dataOut: block });
          assert.equal(outcome.status, ScsiStatus.GOOD);
          model.fill(op.unmap ? 0 : op.byte, start, start + bytes);
        } else {
          const count255 = Math.min(count, 255);
          const compare = op.match
            ? Buffer.from(model.subarray(start, start + count255 * BLOCK))
            : patternBytes(op.seed + 1, count255 * BLOCK);
          const next = patternBytes(op.seed, count255 * BLOCK);
          const cdb = Buffer.alloc(16);
          cdb[0] = 0x89;
          cdb.writeUInt32BE(lba, 6);
          cdb[13] = count255;
          const outcome = await run(unit, cdb, { dataOut: Buffer.concat([compare, next]) });
          const matches = compare.equals(model.subarray(start, start + count255 * BLOCK));
          assert.equal(outcome.status, matches ? ScsiStatus.GOOD : ScsiStatus.CHECK_CONDITION);
          if (matches) next.copy(model, start);
        }
      }
      const whole = await run(unit, cdb10(0x28, 0, blocks));
      assert.ok(whole.data.equals(model), 'the volume reads like the model');
    }),
    { numRuns: 60 },
  );
});
