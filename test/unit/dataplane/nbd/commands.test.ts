import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BlockDevice } from '../../../../src/dataplane/block-device.ts';
import { HornbillError } from '../../../../src/errors.ts';
import { NBD, NbdTestClient } from '../../../helpers/nbd-client.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { MiB, startServer } from './fixture.ts';

const HOLE_ZERO = 3;

for (const structured of [false, true]) {
  const mode = structured ? 'structured replies' : 'simple replies';

  describe(`NBD commands against a replica store (${mode})`, () => {
    test('WRITE (plain and FUA) then READ return the data; the store holds it', async (t) => {
      const fixture = await startServer(t, { sizeBytes: 8 * MiB });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      const first = patternBytes(1, 64 * 1024);
      const second = patternBytes(2, 4096);
      const third = patternBytes(3, 512);
      await client.write(MiB, first);
      await client.write(3 * MiB + 4096, second, NBD.CMD_FLAG_FUA);
      await client.write(8 * MiB - 512, third);
      assert.ok((await client.read(MiB, first.length)).equals(first));
      assert.ok((await client.read(3 * MiB + 4096, 4096)).equals(second));
      assert.ok((await client.read(8 * MiB - 512, 512)).equals(third));
      assert.ok((await client.read(0, 4096)).equals(Buffer.alloc(4096)));
      const stored = fixture.readAll();
      assert.ok(stored.subarray(MiB, MiB + first.length).equals(first));
      assert.ok(stored.subarray(3 * MiB + 4096, 3 * MiB + 8192).equals(second));
      assert.ok(stored.subarray(8 * MiB - 512).equals(third));
      await client.disconnect();
    });

    test('the largest advertised READ and WRITE (32 MiB) work', async (t) => {
      const fixture = await startServer(t, { sizeBytes: 40 * MiB });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      const data = patternBytes(7, 32 * MiB);
      await client.write(4 * MiB, data);
      assert.ok((await client.read(4 * MiB, 32 * MiB)).equals(data));
      await client.disconnect();
    });

    test('FLUSH succeeds; with a non-zero offset or length it is invalid', async (t) => {
      const fixture = await startServer(t);
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      await client.write(0, patternBytes(4, 4096));
      assert.equal(await client.command(NBD.CMD_FLUSH), 0);
      assert.equal(await client.command(NBD.CMD_FLUSH, 0, 0, NBD.CMD_FLAG_FUA), 0);
      assert.equal(await client.command(NBD.CMD_FLUSH, 4096, 0), NBD.EINVAL);
      assert.equal(await client.command(NBD.CMD_FLUSH, 0, 512), NBD.EINVAL);
    });

    test('TRIM makes the range read as zeros and leaves the rest alone', async (t) => {
      const fixture = await startServer(t);
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      const data = patternBytes(5, 256 * 1024);
      await client.write(0, data);
      assert.equal(await client.command(NBD.CMD_TRIM, 64 * 1024, 64 * 1024 + 512), 0);
      assert.equal(await client.command(NBD.CMD_TRIM, 200 * 1024, 4096, NBD.CMD_FLAG_FUA), 0);
      const expected = Buffer.from(data);
      expected.fill(0, 64 * 1024, 128 * 1024 + 512);
      expected.fill(0, 200 * 1024, 204 * 1024);
      assert.ok((await client.read(0, data.length)).equals(expected));
      assert.ok(fixture.readAll().subarray(0, data.length).equals(expected));
    });

    test('WRITE_ZEROES with and without NO_HOLE zero the range; FAST_ZERO with NO_HOLE is ENOTSUP', async (t) => {
      const fixture = await startServer(t, { sizeBytes: 8 * MiB });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      const data = patternBytes(6, 4 * MiB);
      await client.write(0, data);
      assert.equal(await client.command(NBD.CMD_WRITE_ZEROES, 0, 1536 * 1024), 0);
      assert.equal(await client.command(NBD.CMD_WRITE_ZEROES, 2 * MiB, MiB + 512, NBD.CMD_FLAG_NO_HOLE), 0);
      assert.equal(
        await client.command(
          NBD.CMD_WRITE_ZEROES,
          3 * MiB + 4096,
          4096,
          NBD.CMD_FLAG_FAST_ZERO | NBD.CMD_FLAG_FUA,
        ),
        0,
      );
      assert.equal(
        await client.command(
          NBD.CMD_WRITE_ZEROES,
          3 * MiB + 8192,
          4096,
          NBD.CMD_FLAG_FAST_ZERO | NBD.CMD_FLAG_NO_HOLE,
        ),
        NBD.ENOTSUP,
      );
      const expected = Buffer.from(data);
      expected.fill(0, 0, 1536 * 1024);
      expected.fill(0, 2 * MiB, 3 * MiB + 512);
      expected.fill(0, 3 * MiB + 4096, 3 * MiB + 8192);
      assert.ok((await client.read(0, 4 * MiB)).equals(expected));
      assert.ok(
        fixture
          .readAll()
          .subarray(0, 4 * MiB)
          .equals(expected),
        'the refused fast zero changed nothing',
      );
    });

    test('zero-length READ and WRITE succeed without touching data', async (t) => {
      const fixture = await startServer(t);
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      assert.equal((await client.read(4096, 0)).length, 0);
      await client.write(4096, Buffer.alloc(0));
      assert.ok(fixture.readAll().equals(Buffer.alloc(16 * MiB)));
    });

    test('invalid requests are refused with the protocol error and change nothing', async (t) => {
      const fixture = await startServer(t, { sizeBytes: 4 * MiB });
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      const data = patternBytes(8, 4 * MiB);
      await client.write(0, data);
      const size = 4 * MiB;
      const cases: [
        string,
        number,
        { flags?: number; offset?: number; length?: number; payload?: Buffer },
        number,
      ][] = [
        ['read beyond the end', NBD.CMD_READ, { offset: size - 512, length: 1024 }, NBD.EINVAL],
        ['read at 2^63', NBD.CMD_READ, { offset: 2 ** 62, length: 512 }, NBD.EINVAL],
        ['unaligned read offset', NBD.CMD_READ, { offset: 100, length: 512 }, NBD.EINVAL],
        ['unaligned read length', NBD.CMD_READ, { offset: 0, length: 100 }, NBD.EINVAL],
        ['read over 32 MiB', NBD.CMD_READ, { offset: 0, length: 32 * MiB + 512 }, NBD.EINVAL],
        ['write beyond the end', NBD.CMD_WRITE, { offset: size, payload: Buffer.alloc(512, 1) }, NBD.ENOSPC],
        ['unaligned write', NBD.CMD_WRITE, { offset: 512, payload: Buffer.alloc(100, 1) }, NBD.EINVAL],
        [
          'write with NO_HOLE',
          NBD.CMD_WRITE,
          { flags: NBD.CMD_FLAG_NO_HOLE, payload: Buffer.alloc(512, 1) },
          NBD.EINVAL,
        ],
        [
          'write with unknown flag',
          NBD.CMD_WRITE,
          { flags: 1 << 9, payload: Buffer.alloc(512, 1) },
          NBD.EINVAL,
        ],
        ['trim beyond the end', NBD.CMD_TRIM, { offset: size - 4096, length: 8192 }, NBD.EINVAL],
        ['unaligned trim', NBD.CMD_TRIM, { offset: 10, length: 4096 }, NBD.EINVAL],
        ['write zeroes beyond the end', NBD.CMD_WRITE_ZEROES, { offset: size, length: 512 }, NBD.ENOSPC],
        ['write zeroes over 32 MiB', NBD.CMD_WRITE_ZEROES, { offset: 0, length: 33 * MiB }, NBD.EINVAL],
        ['trim with REQ_ONE', NBD.CMD_TRIM, { flags: NBD.CMD_FLAG_REQ_ONE, length: 4096 }, NBD.EINVAL],
        ['unknown command', 99, { offset: 0, length: 4096 }, NBD.EINVAL],
        ['NBD_CMD_CACHE (not advertised)', NBD.CMD_CACHE, { offset: 0, length: 4096 }, NBD.EINVAL],
        ['block status without a context', NBD.CMD_BLOCK_STATUS, { offset: 0, length: 4096 }, NBD.EINVAL],
      ];
      if (!structured)
        cases.push([
          'read with DF unnegotiated',
          NBD.CMD_READ,
          { flags: NBD.CMD_FLAG_DF, length: 512 },
          NBD.EINVAL,
        ]);
      for (const [what, command, options, expected] of cases) {
        const reply = await client.request(command, options);
        assert.equal(reply.error, expected, what);
        assert.equal(reply.data, undefined, `${what}: no data with an error`);
        if (structured) {
          assert.equal(reply.chunks.length, 1, what);
          assert.equal(reply.chunks[0].type, NBD.REPLY_TYPE_ERROR, what);
          assert.ok(
            reply.chunks[0].payload.readUInt16BE(4) > 0,
            `${what}: the error chunk carries a message`,
          );
        } else {
          assert.ok(reply.simple, what);
        }
      }
      assert.ok(fixture.readAll().equals(data), 'no refused request changed the volume');
      assert.ok((await client.read(0, 4096)).equals(data.subarray(0, 4096)), 'the connection still works');
    });

    test('a WRITE longer than the maximum payload is refused and the connection ended', async (t) => {
      const fixture = await startServer(t);
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      const reply = client.request(NBD.CMD_WRITE, { offset: 0, length: 64 * MiB });
      assert.equal((await reply).error, NBD.EINVAL);
      await client.closed;
      assert.ok(
        fixture.logs.some((record) =>
          String(record.details.reason).includes('beyond the 33554432-byte maximum'),
        ),
      );
      assert.ok(fixture.readAll().equals(Buffer.alloc(16 * MiB)));
    });

    test('a read-only export refuses WRITE, TRIM and WRITE_ZEROES with EPERM but reads and flushes', async (t) => {
      const fixture = await startServer(t, { exportOptions: { readOnly: true } });
      fixture.store.write(0, patternBytes(9, 8192));
      const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
      t.after(() => client.destroy());
      await assert.rejects(client.write(0, Buffer.alloc(4096, 1)), { errno: NBD.EPERM });
      assert.equal(await client.command(NBD.CMD_TRIM, 0, 4096), NBD.EPERM);
      assert.equal(await client.command(NBD.CMD_WRITE_ZEROES, 0, 4096), NBD.EPERM);
      assert.equal(await client.command(NBD.CMD_WRITE_ZEROES, 0, 4096, NBD.CMD_FLAG_FUA), NBD.EINVAL);
      assert.equal(await client.command(NBD.CMD_FLUSH), 0);
      assert.ok((await client.read(0, 8192)).equals(patternBytes(9, 8192)));
    });
  });
}

describe('NBD structured replies and block status', () => {
  test('a structured READ is one OFFSET_DATA chunk with DONE; DF is accepted', async (t) => {
    const fixture = await startServer(t);
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured: true });
    t.after(() => client.destroy());
    const data = patternBytes(10, 8192);
    await client.write(4096, data);
    const reply = await client.request(NBD.CMD_READ, { offset: 4096, length: 8192, flags: NBD.CMD_FLAG_DF });
    assert.equal(reply.error, 0);
    assert.equal(reply.chunks.length, 1);
    assert.equal(reply.chunks[0].type, NBD.REPLY_TYPE_OFFSET_DATA);
    assert.equal(reply.chunks[0].flags, 1);
    assert.equal(Number(reply.chunks[0].payload.readBigUInt64BE(0)), 4096);
    assert.ok(reply.data!.equals(data));
  });

  test('BLOCK_STATUS reports data and holes (HOLE|ZERO) as the store maps them', async (t) => {
    const fixture = await startServer(t, { sizeBytes: 8 * MiB });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { baseAllocation: true });
    t.after(() => client.destroy());
    await client.write(MiB, patternBytes(11, 128 * 1024));
    await client.write(3 * MiB, patternBytes(12, 4096));
    const status = await client.blockStatus(0, 4 * MiB);
    assert.equal(status.error, 0);
    assert.notEqual(status.contextId, 0);
    assert.deepEqual(status.extents, [
      { length: MiB, flags: HOLE_ZERO },
      { length: 128 * 1024, flags: 0 },
      { length: 2 * MiB - 128 * 1024, flags: HOLE_ZERO },
      { length: 4096, flags: 0 },
      { length: MiB - 4096, flags: HOLE_ZERO },
    ]);
    // Compare with the store's own view, and after a trim.
    assert.equal(await client.command(NBD.CMD_TRIM, MiB, 64 * 1024), 0);
    const runs = await fixture.device.mappingStatus(MiB - 4096, 192 * 1024);
    const after = await client.blockStatus(MiB - 4096, 192 * 1024);
    assert.deepEqual(
      after.extents,
      runs.map((run) => ({ length: run.lengthBytes, flags: run.mapped ? 0 : HOLE_ZERO })),
    );
    assert.deepEqual(
      after.extents.map((extent) => extent.flags),
      [HOLE_ZERO, 0, HOLE_ZERO],
    );
  });

  test('BLOCK_STATUS with REQ_ONE returns one extent; beyond the end or length 0 is EINVAL', async (t) => {
    const fixture = await startServer(t, { sizeBytes: 4 * MiB });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { baseAllocation: true });
    t.after(() => client.destroy());
    await client.write(8192, patternBytes(13, 4096));
    const one = await client.blockStatus(0, 4 * MiB, NBD.CMD_FLAG_REQ_ONE);
    assert.deepEqual(one.extents, [{ length: 8192, flags: HOLE_ZERO }]);
    assert.equal((await client.blockStatus(4 * MiB - 4096, 8192)).error, NBD.EINVAL);
    assert.equal((await client.blockStatus(0, 0)).error, NBD.EINVAL);
    assert.equal((await client.blockStatus(0, 4096, NBD.CMD_FLAG_NO_HOLE)).error, NBD.EINVAL);
  });

  test('BLOCK_STATUS over a huge range answers for at most 256 MiB; the client asks again', async (t) => {
    const fixture = await startServer(t, { sizeBytes: 512 * MiB });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { baseAllocation: true });
    t.after(() => client.destroy());
    await client.write(300 * MiB, patternBytes(14, 4096));
    const first = await client.blockStatus(0, 512 * MiB);
    assert.deepEqual(first.extents, [{ length: 256 * MiB, flags: HOLE_ZERO }]);
    const second = await client.blockStatus(256 * MiB, 256 * MiB);
    assert.deepEqual(second.extents, [
      { length: 44 * MiB, flags: HOLE_ZERO },
      { length: 4096, flags: 0 },
      { length: 212 * MiB - 4096, flags: HOLE_ZERO },
    ]);
  });
});

describe('NBD errors from the device', () => {
  function failing(
    code: 'STORE_CHECKSUM_MISMATCH' | 'STORE_NO_SPACE' | 'DEVICE_NOT_READY' | 'INTERNAL' | null,
  ) {
    return (device: BlockDevice): BlockDevice => ({
      get sizeBytes() {
        return device.sizeBytes;
      },
      sectorSize: device.sectorSize,
      physicalBlockSize: device.physicalBlockSize,
      name: device.name,
      read: async () => {
        if (code === null) throw new TypeError('a bug');
        throw new HornbillError(code, `injected ${code}`);
      },
      write: async () => {
        throw new HornbillError(code ?? 'INTERNAL', 'injected');
      },
      unmap: (offset, length) => device.unmap(offset, length),
      flush: () => {
        throw new HornbillError('DEVICE_NOT_READY', 'thrown synchronously');
      },
      mappingStatus: async () => [],
    });
  }

  const cases: [Parameters<typeof failing>[0], number, string][] = [
    ['STORE_CHECKSUM_MISMATCH', NBD.EIO, 'warn'],
    ['STORE_NO_SPACE', NBD.ENOSPC, 'warn'],
    ['DEVICE_NOT_READY', NBD.EIO, 'warn'],
    ['INTERNAL', NBD.EIO, 'error'],
    [null, NBD.EIO, 'error'],
  ];
  for (const [code, expected, level] of cases) {
    test(`${code ?? 'a non-Hornbill error'} maps to NBD error ${expected} and is logged`, async (t) => {
      const fixture = await startServer(t, { wrapDevice: failing(code) });
      for (const structured of [false, true]) {
        const { client } = await NbdTestClient.attach(fixture.port, 'vol', { structured });
        t.after(() => client.destroy());
        const reply = await client.request(NBD.CMD_READ, { offset: 0, length: 4096 });
        assert.equal(reply.error, expected);
        assert.equal(reply.data, undefined);
        if (structured) {
          const message = reply.chunks[0].payload.subarray(6).toString('utf8');
          assert.ok(code === null ? message.includes('a bug') : message.startsWith(code), message);
        }
        assert.ok((await client.read(0, 0)).length === 0, 'the connection goes on');
      }
      assert.ok(
        fixture.logs.some(
          (record) => record.level === level && record.message.includes('failed on the device'),
        ),
      );
    });
  }

  test('a device that throws synchronously answers EIO; an empty mapping answer is EIO', async (t) => {
    const fixture = await startServer(t, { wrapDevice: failing('STORE_NO_SPACE') });
    const { client } = await NbdTestClient.attach(fixture.port, 'vol', { baseAllocation: true });
    t.after(() => client.destroy());
    assert.equal(await client.command(NBD.CMD_FLUSH), NBD.EIO);
    assert.equal((await client.blockStatus(0, 4096)).error, NBD.EIO);
    assert.equal(await client.command(NBD.CMD_TRIM, 0, 4096), 0);
  });
});
