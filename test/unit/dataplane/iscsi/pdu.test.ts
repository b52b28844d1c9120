import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  computeDigest,
  computeDigestParts,
  readDigest,
  writeDigest,
} from '../../../../src/dataplane/iscsi/digest.ts';
import {
  BHS_BYTES,
  Opcode,
  PduHeader,
  paddedLength,
  serialLessOrEqual,
  serialLessThan,
} from '../../../../src/dataplane/iscsi/pdu.ts';
import { PduReceiver, type ReceiverHandler } from '../../../../src/dataplane/iscsi/receiver.ts';
import { PduSender } from '../../../../src/dataplane/iscsi/sender.ts';
import {
  encodeTextKeys,
  parseBinary,
  parseNumber,
  parseTextKeys,
} from '../../../../src/dataplane/iscsi/text.ts';

const u32 = fc.integer({ min: 0, max: 0xffffffff });

test('PDU header fields round-trip through the 48-byte encoding', () => {
  fc.assert(
    fc.property(
      fc.record({
        opcode: fc.integer({ min: 0, max: 0x3f }),
        immediate: fc.boolean(),
        flags: fc.integer({ min: 0, max: 255 }),
        byte2: fc.integer({ min: 0, max: 255 }),
        byte3: fc.integer({ min: 0, max: 255 }),
        ahs: fc.integer({ min: 0, max: 255 }),
        dataLength: fc.integer({ min: 0, max: 0xffffff }),
        lun: fc.integer({ min: 0, max: 0x3fff }),
        itt: u32,
        ttt: u32,
        cmdSN: u32,
        expStatSN: u32,
        maxCmdSN: u32,
        dataSN: u32,
        offset: u32,
        residual: u32,
      }),
      (fields) => {
        const header = new PduHeader();
        header.opcode = fields.opcode;
        header.immediate = fields.immediate;
        header.flags = fields.flags;
        header.byte2 = fields.byte2;
        header.byte3 = fields.byte3;
        header.totalAhsLength = fields.ahs;
        header.dataSegmentLength = fields.dataLength;
        header.lun = fields.lun;
        header.initiatorTaskTag = fields.itt;
        header.targetTransferTag = fields.ttt;
        header.cmdSN = fields.cmdSN;
        header.expStatSN = fields.expStatSN;
        header.maxCmdSN = fields.maxCmdSN;
        header.dataSN = fields.dataSN;
        header.bufferOffset = fields.offset;
        header.residualCount = fields.residual;
        const decoded = new PduHeader(Buffer.from(header.bytes));
        assert.equal(decoded.opcode, fields.opcode);
        assert.equal(decoded.immediate, fields.immediate);
        assert.equal(decoded.flags, fields.flags);
        assert.equal(decoded.byte2, fields.byte2);
        assert.equal(decoded.byte3, fields.byte3);
        assert.equal(decoded.totalAhsLength, fields.ahs);
        assert.equal(decoded.dataSegmentLength, fields.dataLength);
        assert.equal(decoded.lun, fields.lun);
        assert.equal(decoded.lunIsComplex, false);
        assert.equal(decoded.initiatorTaskTag, fields.itt);
        assert.equal(decoded.targetTransferTag, fields.ttt);
        assert.equal(decoded.statSN, fields.cmdSN, 'CmdSN and StatSN share byte 24');
        assert.equal(decoded.expCmdSN, fields.expStatSN);
        assert.equal(decoded.maxCmdSN, fields.maxCmdSN);
        assert.equal(decoded.dataSN, fields.dataSN);
        assert.equal(decoded.bufferOffset, fields.offset);
        assert.equal(decoded.residualCount, fields.residual);
      },
    ),
  );
});

test('PDU header byte layout follows RFC 7143 §11.3 (SCSI Command)', () => {
  const header = new PduHeader();
  header.opcode = Opcode.SCSI_COMMAND;
  header.immediate = true;
  header.flags = 0xa1;
  header.dataSegmentLength = 0x010203;
  header.lun = 5;
  header.initiatorTaskTag = 0x11223344;
  header.expectedDataTransferLength = 4096;
  header.cmdSN = 7;
  header.expStatSN = 9;
  header.cdb()[0] = 0x2a;
  const bytes = header.bytes;
  assert.equal(bytes[0], 0x41);
  assert.equal(bytes[1], 0xa1);
  assert.deepEqual([...bytes.subarray(5, 8)], [1, 2, 3]);
  assert.deepEqual([...bytes.subarray(8, 16)], [0, 5, 0, 0, 0, 0, 0, 0]);
  assert.equal(bytes.readUInt32BE(16), 0x11223344);
  assert.equal(bytes.readUInt32BE(20), 4096);
  assert.equal(bytes.readUInt32BE(24), 7);
  assert.equal(bytes.readUInt32BE(28), 9);
  assert.equal(bytes[32], 0x2a);
  header.lun = 300;
  assert.deepEqual([...bytes.subarray(8, 10)], [0x41, 0x2c], 'flat addressing above 255');
  assert.equal(header.lun, 300);
  bytes[12] = 1;
  assert.equal(header.lunIsComplex, true);
});

test('a PDU header needs exactly 48 bytes', () => {
  assert.throws(() => new PduHeader(Buffer.alloc(47)), RangeError);
  assert.equal(new PduHeader().bytes.length, BHS_BYTES);
  assert.equal(paddedLength(0), 0);
  assert.equal(paddedLength(1), 4);
  assert.equal(paddedLength(8), 8);
});

test('CRC32C digests match the RFC 7143 Appendix B examples and are sent LSB first', () => {
  assert.equal(computeDigest(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(computeDigest(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  const ascending = Buffer.from(Array.from({ length: 32 }, (_, index) => index));
  assert.equal(computeDigest(ascending), 0x46dd794e);
  const target = Buffer.alloc(4);
  writeDigest(target, 0, 0x8a9136aa);
  assert.deepEqual([...target], [0xaa, 0x36, 0x91, 0x8a]);
  assert.equal(readDigest(target, 0), 0x8a9136aa);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 8 }), (first, second) => {
      assert.equal(computeDigestParts(first, second), computeDigest(Buffer.concat([first, second])));
    }),
  );
});

test('serial number arithmetic wraps at 2^32', () => {
  assert.equal(serialLessThan(1, 2), true);
  assert.equal(serialLessThan(2, 1), false);
  assert.equal(serialLessThan(0xffffffff, 0), true);
  assert.equal(serialLessThan(0, 0xffffffff), false);
  assert.equal(serialLessOrEqual(5, 5), true);
  assert.equal(serialLessThan(5, 5), false);
});

test('text keys round-trip and malformed text is refused with a reason', () => {
  const keyArbitrary = fc.stringMatching(/^[A-Za-z][A-Za-z0-9.\-+@_]{0,20}$/);
  const valueArbitrary = fc.stringMatching(/^[\x20-\x7e]{0,40}$/);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(keyArbitrary, valueArbitrary), { selector: (pair) => pair[0], maxLength: 20 }),
      (pairs) => {
        const parsed = parseTextKeys(encodeTextKeys(pairs));
        assert.ok(parsed.ok);
        assert.deepEqual(parsed.pairs, pairs);
      },
    ),
  );
  const without = parseTextKeys(Buffer.from('A=1\0B=2'));
  assert.ok(without.ok && without.pairs.length === 2, 'the last NUL may be missing');
  for (const bad of ['novalue\0', '=x\0', 'A=1\0A=2\0', 'bad key=1\0', `${'K'.repeat(64)}=1\0`]) {
    const parsed = parseTextKeys(Buffer.from(bad));
    assert.equal(parsed.ok, false, bad);
  }
  assert.equal(parseTextKeys(Buffer.alloc(70000, 0x41)).ok, false);
  assert.equal(parseNumber('8192'), 8192);
  assert.equal(parseNumber('0x10'), 16);
  assert.equal(parseNumber('12a'), null);
  assert.deepEqual([...parseBinary('0x0a0b')!], [10, 11]);
  assert.deepEqual([...parseBinary('0bAQI=')!], [1, 2]);
  assert.equal(parseBinary('zz'), null);
});

test('the receiver reassembles PDUs from arbitrary chunking and checks digests', () => {
  const received: { opcode: number; data: string }[] = [];
  const errors: string[] = [];
  const handler: ReceiverHandler = {
    headerReceived: () => true,
    pduReceived: (header, data) => {
      received.push({ opcode: header.opcode, data: data === null ? '' : data.toString() });
      return true;
    },
    receiveError: (kind) => {
      errors.push(kind);
    },
  };
  const build = (opcode: number, text: string, digests: boolean): Buffer => {
    const header = new PduHeader();
    header.opcode = opcode;
    const data = Buffer.from(text);
    header.dataSegmentLength = data.length;
    const parts: Buffer[] = [Buffer.from(header.bytes)];
    const digest = (bytes: Buffer): Buffer => {
      const out = Buffer.alloc(4);
      writeDigest(out, 0, computeDigest(bytes));
      return out;
    };
    if (digests) parts.push(digest(header.bytes));
    if (data.length > 0) {
      const padded = Buffer.alloc(paddedLength(data.length));
      data.copy(padded);
      parts.push(padded);
      if (digests) parts.push(digest(padded));
    }
    return Buffer.concat(parts);
  };
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 0x3f }), fc.string({ maxLength: 50 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.boolean(),
      fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 20 }),
      (pdus, digests, cuts) => {
        received.length = 0;
        errors.length = 0;
        const receiver = new PduReceiver(handler, 8192);
        receiver.headerDigest = digests;
        receiver.dataDigest = digests;
        const stream = Buffer.concat(pdus.map(([opcode, text]) => build(opcode, text, digests)));
        let position = 0;
        let cut = 0;
        while (position < stream.length) {
          const size = cuts[cut++ % cuts.length];
          receiver.push(stream.subarray(position, position + size));
          position += size;
        }
        assert.deepEqual(errors, []);
        assert.deepEqual(
          received,
          pdus.map(([opcode, text]) => ({ opcode, data: Buffer.from(text).toString() })),
        );
      },
    ),
  );
  // A flipped bit in the data is a data digest error; in the header, a header digest error.
  for (const [index, kind] of [
    [60, 'data-digest'],
    [3, 'header-digest'],
  ] as const) {
    errors.length = 0;
    const receiver = new PduReceiver(handler, 8192);
    receiver.headerDigest = true;
    receiver.dataDigest = true;
    const stream = build(Opcode.NOP_OUT, 'ping data', true);
    stream[index] ^= 0x01;
    receiver.push(stream);
    assert.deepEqual(errors, [kind]);
  }
  errors.length = 0;
  const small = new PduReceiver(handler, 16);
  small.push(build(Opcode.NOP_OUT, 'x'.repeat(17), false));
  assert.deepEqual(errors, ['too-long']);
});

test('the sender writes header, data, padding and digests, and reuses its header slots', () => {
  const writes: { bytes: Buffer; callback?: () => void }[] = [];
  const socket = {
    destroyed: false,
    writableEnded: false,
    writableLength: 0,
    cork() {},
    uncork() {},
    write(bytes: Buffer, callback?: () => void) {
      writes.push({ bytes, callback });
      return true;
    },
  };
  const sender = new PduSender(socket as unknown as Socket);
  sender.headerDigest = true;
  sender.dataDigest = true;
  let completed = 0;
  const header = new PduHeader();
  header.opcode = Opcode.DATA_IN;
  const data = Buffer.from('hello');
  sender.send(header, data, { written: () => completed++ });
  const stream = Buffer.concat(writes.map((write) => Buffer.from(write.bytes)));
  assert.equal(stream.length, 48 + 4 + 8 + 4);
  assert.equal(stream.readUIntBE(5, 3), 5, 'data segment length set from the data');
  assert.equal(stream.readUInt32LE(48), computeDigest(stream.subarray(0, 48)));
  assert.deepEqual(stream.subarray(52, 60), Buffer.from('hello\0\0\0'));
  assert.equal(stream.readUInt32LE(60), computeDigest(stream.subarray(52, 60)));
  assert.equal(completed, 0, 'not written yet');
  for (const write of writes) write.callback?.();
  assert.equal(completed, 1);
  // 2048 slots: the same header view comes back once the ring wraps, and nothing is allocated.
  const firstHeader = writes[0].bytes;
  writes.length = 0;
  for (let index = 0; index < 2047; index++) sender.send(header, null);
  sender.send(header, null);
  assert.equal(writes.at(-1)!.bytes, firstHeader, 'slot 0 is reused through the same view');
  assert.equal(sender.overflowAllocations, 0);
  sender.send(header, null);
  assert.equal(sender.overflowAllocations, 1, 'a full ring falls back to the heap');
  for (const write of writes) write.callback?.();
  sender.send(header, null);
  assert.equal(sender.overflowAllocations, 1, 'slots come back as writes complete');
});
