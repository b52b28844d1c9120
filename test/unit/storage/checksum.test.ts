import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { crc32c as portableCrc32c } from '@node-rs/crc32';
import { checksumImplementation, crc32cBlocks, crc32cRange } from '../../../src/native.ts';
import { patternBytes } from '../../helpers/temp.ts';

test('CRC32C matches the published check value', () => {
  // RFC 3720 B.4 / the CRC catalogue: CRC-32C of "123456789" is 0xE3069283.
  assert.equal(crc32cRange(Buffer.from('123456789'), 0, 9), 0xe3069283);
});

test(`CRC32C (${checksumImplementation}) agrees with @node-rs/crc32 at every length to 3,000 bytes, at any offset and seed`, () => {
  const data = patternBytes(11, 1024 * 1024 + 64);
  let compared = 0;
  for (let length = 0; length <= 3000; length++) {
    for (const offset of [0, 1, 13]) {
      for (const seed of [0, 0xdeadbeef]) {
        const expected = portableCrc32c(data.subarray(offset, offset + length), seed) >>> 0;
        assert.equal(
          crc32cRange(data, offset, length, seed),
          expected,
          `length ${length} offset ${offset} seed ${seed}`,
        );
        compared++;
      }
    }
  }
  // The sizes Hornbill checksums most: a block, a burst, a rebuild transfer.
  for (const length of [4096, 65536, 1024 * 1024]) {
    assert.equal(
      crc32cRange(data, 64, length),
      portableCrc32c(data.subarray(64, 64 + length)) >>> 0,
      `length ${length}`,
    );
  }
  assert.equal(compared, 3001 * 6);
});

const cpuFlags = new Set(
  (/^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/),
);
test('on a CPU with AVX-512 and VPCLMULQDQ the native CRC32C folds (its check against the table at load passed)', {
  skip:
    !checksumImplementation.startsWith('native') ||
    !['avx512f', 'avx512bw', 'vpclmulqdq'].every((flag) => cpuFlags.has(flag))
      ? 'needs the native addon and a CPU with avx512f, avx512bw and vpclmulqdq'
      : false,
}, () => {
  assert.equal(checksumImplementation, 'native, AVX-512 VPCLMULQDQ folding');
});

test('crc32cBlocks checksums blocks back to back, or records a stride apart', () => {
  const data = patternBytes(3, 64 * 1024);
  const out = new Uint32Array(20);
  crc32cBlocks(data, 100, 4096, 15, out, 2);
  for (let block = 0; block < 15; block++)
    assert.equal(out[2 + block], crc32cRange(data, 100 + block * 4096, 4096), `block ${block}`);
  // Journal records: 28 bytes checksummed out of every 32, skipping each record's first 4.
  const records = new Uint32Array(2000);
  crc32cBlocks(data, 4, 28, 2000, records, 0, 32);
  for (let record = 0; record < 2000; record++)
    assert.equal(records[record], crc32cRange(data, 4 + record * 32, 28), `record ${record}`);
  // Nothing to do is fine; a changed byte changes exactly its record's checksum.
  crc32cBlocks(data, 0, 28, 0, records, 0, 32);
  const changed = Buffer.from(data);
  changed[4 + 7 * 32 + 5] ^= 1;
  const again = new Uint32Array(2000);
  crc32cBlocks(changed, 4, 28, 2000, again, 0, 32);
  const differing = [...again.keys()].filter((index) => again[index] !== records[index]);
  assert.deepEqual(differing, [7]);
});

test('the native crc32cBlocks refuses ranges outside its arguments', {
  skip: !checksumImplementation.startsWith('native'),
}, () => {
  const data = Buffer.alloc(1024);
  const out = new Uint32Array(8);
  const refused = (call: () => void) =>
    assert.throws(call, (error: Error & { code?: string }) => error.code === 'INVALID_ARGUMENT');
  refused(() => crc32cBlocks(data, 4, 28, 33, out, 0, 32)); // the 33rd record would end past the data
  refused(() => crc32cBlocks(data, 4, 28, 9, new Uint32Array(64), 0, 128)); // stride walks off the end
  refused(() => crc32cBlocks(data, 0, 32, 4, out, 6)); // out too short
  refused(() => crc32cBlocks(data, 0, 32, 4, out, 0, 16)); // stride shorter than a block
  refused(() => crc32cBlocks(data, 2000, 32, 1, out, 0));
  crc32cBlocks(data, 4, 28, 32, new Uint32Array(32), 0, 32); // exactly fits
});
