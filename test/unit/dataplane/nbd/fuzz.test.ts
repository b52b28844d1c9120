import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { infoOptionData, NBD, NbdTestClient, rawExchange } from '../../../helpers/nbd-client.ts';
import { patternBytes } from '../../../helpers/temp.ts';
import { eventually, MiB, openDescriptorCount, startServer } from './fixture.ts';

/**
 * Must-hold 2 of issue 4 for NBD: malformed handshakes and requests, fuzzed, each on its
 * own connection against one live server. Every run checks that the server answers what
 * it can answer with the protocol's error and otherwise closes; afterwards the server is
 * up, a fresh client works, the volume is byte-identical and nothing leaked.
 */

const SIZE = 4 * MiB;
const EXPORT = 'vol';
const RUNS_PER_PHASE = 600;

// ---- handshake phase ----------------------------------------------------------------------

function clientFlags(flags: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(flags >>> 0, 0);
  return bytes;
}

function optionBytes(code: number, data: Buffer, declaredLength: number, badMagic: boolean): Buffer {
  const header = Buffer.alloc(16);
  header.writeBigUInt64BE(badMagic ? 0x4948415645000000n : NBD.OPTION_MAGIC, 0);
  header.writeUInt32BE(code >>> 0, 8);
  header.writeUInt32BE(declaredLength >>> 0, 12);
  return Buffer.concat([header, data]);
}

/** An option that must never put the client into transmission on the real export. */
const optionArbitrary = fc
  .record({
    code: fc.oneof(fc.constantFrom(1, 2, 3, 5, 6, 7, 8, 9, 10, 11), fc.integer({ min: 0, max: 0xffffffff })),
    data: fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
      fc
        .record({
          name: fc.string({ maxLength: 12 }),
          requests: fc.array(fc.integer({ min: 0, max: 65535 }), { maxLength: 4 }),
        })
        .map(({ name, requests }) => infoOptionData(name, requests)),
    ),
    lengthDelta: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -8, max: 8 })),
    badMagic: fc.integer({ min: 0, max: 9 }).map((value) => value === 0),
  })
  .filter(({ code, data }) => {
    // Entering transmission on the real export would let later fuzz bytes be requests.
    if (code === NBD.OPT_EXPORT_NAME) return data.toString('utf8') !== EXPORT;
    if (code === NBD.OPT_GO && data.length >= 6) {
      const nameLength = data.readUInt32BE(0);
      return nameLength > data.length - 6 || data.subarray(4, 4 + nameLength).toString('utf8') !== EXPORT;
    }
    return true;
  })
  .map(({ code, data, lengthDelta, badMagic }) => {
    const declared = Math.max(0, data.length + lengthDelta);
    // A declared length beyond the data leaves the option truncated: the server waits, then sees EOF.
    return optionBytes(code, data, declared, badMagic);
  });

const handshakeArbitrary = fc.oneof(
  // Garbage from the first byte.
  fc.uint8Array({ minLength: 1, maxLength: 200 }).map((bytes) => [Buffer.from(bytes)]),
  // Bad or partial client flags.
  fc.integer({ min: 0, max: 0xffffffff }).map((flags) => [clientFlags(flags)]),
  fc.uint8Array({ minLength: 1, maxLength: 3 }).map((bytes) => [Buffer.from(bytes)]),
  // Valid flags, then malformed options, maybe followed by garbage.
  fc
    .tuple(
      fc.constantFrom(0b01, 0b11),
      fc.array(optionArbitrary, { minLength: 1, maxLength: 6 }),
      fc.uint8Array({ maxLength: 40 }),
    )
    .map(([flags, options, tail]) => [clientFlags(flags), ...options, Buffer.from(tail)]),
);

/** What the server sent in the handshake: the greeting, then only well-formed option replies. */
function checkHandshakeOutput(received: Buffer): void {
  assert.ok(received.length >= 18, 'the greeting was sent');
  assert.equal(received.readBigUInt64BE(0), NBD.INIT_MAGIC);
  let position = 18;
  while (position < received.length) {
    assert.ok(received.length - position >= 20, 'a whole option reply header');
    assert.equal(received.readBigUInt64BE(position), NBD.OPTION_REPLY_MAGIC, 'option reply magic');
    position += 20 + received.readUInt32BE(position + 16);
  }
  assert.equal(position, received.length, 'replies end on a reply boundary');
}

// ---- transmission phase -------------------------------------------------------------------

interface RequestItem {
  bytes: Buffer;
  /** Expected reply error for this handle, or null when the item ends the connection. */
  errno: number | null;
  /** After this item the server reads no further requests. */
  terminal: boolean;
}

let handleCounter = 1n;

function requestBytes(
  command: number,
  flags: number,
  offset: bigint,
  length: number,
  payload?: Buffer,
): Buffer {
  const header = Buffer.alloc(28);
  header.writeUInt32BE(NBD.REQUEST_MAGIC, 0);
  header.writeUInt16BE(flags, 4);
  header.writeUInt16BE(command, 6);
  header.writeBigUInt64BE(handleCounter++, 8);
  header.writeBigUInt64BE(offset, 16);
  header.writeUInt32BE(length >>> 0, 24);
  return payload === undefined ? header : Buffer.concat([header, payload]);
}

const aligned = (maximum: number) => fc.integer({ min: 0, max: maximum / 512 }).map((value) => value * 512);
const smallLength = fc.integer({ min: 1, max: 64 }).map((value) => value * 512);
const anyLength = fc.integer({ min: 0, max: 0xffffffff });

function item(
  command: number,
  flags: number,
  offset: bigint,
  length: number,
  errno: number,
  withPayload = false,
): RequestItem {
  const payload = withPayload ? Buffer.alloc(length, 0xa5) : undefined;
  return { bytes: requestBytes(command, flags, offset, length, payload), errno, terminal: false };
}

/** Requests the server must refuse (or, for valid reads, answer) without changing data. */
const requestArbitrary: fc.Arbitrary<RequestItem> = fc.oneof(
  // Unknown commands (including NBD_CMD_CACHE, not advertised).
  fc
    .tuple(fc.oneof(fc.constant(5), fc.integer({ min: 8, max: 65535 })), aligned(SIZE), smallLength)
    .map(([command, offset, length]) => item(command, 0, BigInt(offset), length, NBD.EINVAL)),
  // Flags not valid for the command.
  fc
    .tuple(
      fc.constantFrom(
        NBD.CMD_READ,
        NBD.CMD_WRITE,
        NBD.CMD_FLUSH,
        NBD.CMD_TRIM,
        NBD.CMD_WRITE_ZEROES,
        NBD.CMD_BLOCK_STATUS,
      ),
      fc.integer({ min: 5, max: 15 }),
      smallLength,
    )
    .map(([command, bit, length]) =>
      item(command, 1 << bit, 0n, length, NBD.EINVAL, command === NBD.CMD_WRITE),
    ),
  // Unaligned offset or length.
  fc
    .tuple(
      fc.constantFrom(NBD.CMD_READ, NBD.CMD_WRITE, NBD.CMD_TRIM, NBD.CMD_WRITE_ZEROES),
      fc.integer({ min: 0, max: SIZE - 70_000 }),
      fc.integer({ min: 1, max: 65_536 }),
    )
    .filter(([, offset, length]) => offset % 512 !== 0 || length % 512 !== 0)
    .map(([command, offset, length]) =>
      item(command, 0, BigInt(offset), length, NBD.EINVAL, command === NBD.CMD_WRITE),
    ),
  // Beyond the end of the export, up to 2^64 - 512.
  fc
    .tuple(
      fc.constantFrom(NBD.CMD_READ, NBD.CMD_WRITE, NBD.CMD_TRIM, NBD.CMD_WRITE_ZEROES),
      fc.oneof(
        aligned(SIZE).map(BigInt),
        fc.bigInt({ min: 0n, max: (1n << 55n) - 1n }).map((value) => value * 512n),
      ),
      smallLength,
    )
    .filter(([, offset, length]) => offset + BigInt(length) > BigInt(SIZE))
    .map(([command, offset, length]) =>
      item(
        command,
        0,
        offset,
        length,
        command === NBD.CMD_WRITE || command === NBD.CMD_WRITE_ZEROES ? NBD.ENOSPC : NBD.EINVAL,
        command === NBD.CMD_WRITE,
      ),
    ),
  // READ or WRITE_ZEROES longer than the 32 MiB maximum.
  fc
    .tuple(
      fc.constantFrom(NBD.CMD_READ, NBD.CMD_WRITE_ZEROES),
      fc.integer({ min: 32 * MiB + 1, max: 0xffffffff }),
    )
    .map(([command, length]) => item(command, 0, 0n, length, NBD.EINVAL)),
  // FLUSH with an offset or length.
  fc
    .tuple(aligned(SIZE), anyLength)
    .filter(([offset, length]) => offset !== 0 || length !== 0)
    .map(([offset, length]) => item(NBD.CMD_FLUSH, 0, BigInt(offset), length, NBD.EINVAL)),
  // Block status without a negotiated context; zeroing that refuses to be slow.
  aligned(SIZE - 4096).map((offset) => item(NBD.CMD_BLOCK_STATUS, 0, BigInt(offset), 4096, NBD.EINVAL)),
  aligned(SIZE - 32_768).map((offset) =>
    item(
      NBD.CMD_WRITE_ZEROES,
      NBD.CMD_FLAG_NO_HOLE | NBD.CMD_FLAG_FAST_ZERO,
      BigInt(offset),
      32_768,
      NBD.ENOTSUP,
    ),
  ),
  // Valid reads in between: the connection keeps working.
  aligned(SIZE - 32_768).map((offset) => item(NBD.CMD_READ, 0, BigInt(offset), 32_768, 0)),
);

/** Items after which the server reads nothing more (the connection is closed or stops). */
const terminalArbitrary: fc.Arbitrary<RequestItem> = fc.oneof(
  fc
    .uint8Array({ minLength: 28, maxLength: 28 })
    .filter((bytes) => Buffer.from(bytes).readUInt32BE(0) !== NBD.REQUEST_MAGIC)
    .map((bytes) => ({ bytes: Buffer.from(bytes), errno: null, terminal: true })),
  fc.uint8Array({ minLength: 1, maxLength: 27 }).map((bytes) => ({
    bytes: requestBytes(NBD.CMD_WRITE, 0, 0n, 4096).subarray(0, bytes.length),
    errno: null,
    terminal: true,
  })),
  fc.integer({ min: 0, max: 4095 }).map((sent) => ({
    bytes: Buffer.concat([requestBytes(NBD.CMD_WRITE, 0, 0n, 4096), Buffer.alloc(sent, 0x5a)]),
    errno: null,
    terminal: true,
  })),
  fc.constant({
    bytes: optionBytes(NBD.OPT_GO, infoOptionData(EXPORT, []), 10, false),
    errno: null,
    terminal: true,
  }),
  fc.integer({ min: 32 * MiB + 1, max: 0xffffffff }).map((length) => ({
    ...item(NBD.CMD_WRITE, 0, 0n, length, NBD.EINVAL),
    terminal: true,
  })),
  fc
    .uint8Array({ minLength: 4, maxLength: 300 })
    .filter((bytes) => Buffer.from(bytes).readUInt32BE(0) !== NBD.REQUEST_MAGIC)
    .map((bytes) => ({ bytes: Buffer.from(bytes), errno: null, terminal: true })),
);

const transmissionArbitrary = fc.record({
  structured: fc.boolean(),
  items: fc.array(requestArbitrary, { maxLength: 12 }),
  last: fc.option(terminalArbitrary, { nil: undefined }),
});

/** Parses replies (simple or structured) into handle → error; reads carry their data. */
function parseReplies(
  bytes: Buffer,
  structured: boolean,
  readLengths: Map<bigint, number>,
): Map<bigint, number> {
  const errors = new Map<bigint, number>();
  let position = 0;
  while (position < bytes.length) {
    const magic = bytes.readUInt32BE(position);
    if (magic === NBD.SIMPLE_REPLY_MAGIC) {
      assert.equal(structured, false, 'simple replies only without structured replies');
      const error = bytes.readUInt32BE(position + 4);
      const handle = bytes.readBigUInt64BE(position + 8);
      position += 16 + (error === 0 ? (readLengths.get(handle) ?? 0) : 0);
      errors.set(handle, error);
    } else {
      assert.equal(magic, NBD.STRUCTURED_REPLY_MAGIC, `reply magic at ${position}`);
      assert.ok(structured, 'structured replies only when negotiated');
      const type = bytes.readUInt16BE(position + 6);
      const handle = bytes.readBigUInt64BE(position + 8);
      const length = bytes.readUInt32BE(position + 16);
      errors.set(handle, (type & 0x8000) !== 0 ? bytes.readUInt32BE(position + 20) : 0);
      position += 20 + length;
    }
  }
  assert.equal(position, bytes.length, 'replies end on a reply boundary');
  return errors;
}

test('fuzz: malformed handshakes and requests never crash, corrupt, or leak', async (t) => {
  const fixture = await startServer(t, { sizeBytes: SIZE, serverOptions: { handshakeTimeoutMs: 10_000 } });
  fixture.store.write(0, patternBytes(2026, SIZE));
  fixture.store.flush();
  const digest = () => createHash('sha256').update(fixture.readAll()).digest('hex');
  const before = digest();
  const descriptorsBefore = openDescriptorCount();

  await fc.assert(
    fc.asyncProperty(handshakeArbitrary, async (pieces) => {
      const { received } = await rawExchange(fixture.port, pieces);
      checkHandshakeOutput(received);
    }),
    { numRuns: RUNS_PER_PHASE },
  );

  const greetingAndGo = (structured: boolean): Buffer[] => [
    clientFlags(0b11),
    ...(structured ? [optionBytes(NBD.OPT_STRUCTURED_REPLY, Buffer.alloc(0), 0, false)] : []),
    (() => {
      const go = infoOptionData(EXPORT, [NBD.INFO_BLOCK_SIZE]);
      return optionBytes(NBD.OPT_GO, go, go.length, false);
    })(),
  ];
  await fc.assert(
    fc.asyncProperty(transmissionArbitrary, async ({ structured, items, last }) => {
      const all = last === undefined ? items : [...items, last];
      const { received } = await rawExchange(fixture.port, [
        ...greetingAndGo(structured),
        ...all.map((entry) => entry.bytes),
      ]);
      // Skip the greeting and the option replies up to the ACK of NBD_OPT_GO.
      let position = 18;
      for (;;) {
        const type = received.readUInt32BE(position + 12);
        position += 20 + received.readUInt32BE(position + 16);
        if (type === NBD.REP_ACK && received.readUInt32BE(position - 20 + 8) === NBD.OPT_GO) break;
      }
      const readLengths = new Map<bigint, number>();
      const expected = new Map<bigint, number>();
      for (const entry of all) {
        if (entry.errno === null) break;
        const handle = entry.bytes.readBigUInt64BE(8);
        expected.set(handle, entry.errno);
        if (entry.bytes.readUInt16BE(6) === NBD.CMD_READ && entry.errno === 0) {
          readLengths.set(handle, entry.bytes.readUInt32BE(24));
        }
        if (entry.terminal) break;
      }
      const replies = parseReplies(received.subarray(position), structured, readLengths);
      assert.deepEqual(replies, expected);
    }),
    { numRuns: RUNS_PER_PHASE },
  );

  // The server is up and a fresh client works (read-only, so the data check below holds).
  const { client } = await NbdTestClient.attach(fixture.port, EXPORT, { structured: true });
  assert.ok((await client.read(0, 65536)).equals(patternBytes(2026, SIZE).subarray(0, 65536)));
  await client.disconnect();

  await eventually(() => fixture.server.stats().connectionsOpen === 0, 'every connection closed');
  const stats = fixture.server.stats();
  assert.equal(stats.requestsInFlight, 0);
  assert.equal(stats.payloadBytesInUse, 0);
  assert.equal(stats.connectionsAccepted, 2 * RUNS_PER_PHASE + 1);
  assert.ok(stats.protocolViolations > 100, `violations counted: ${stats.protocolViolations}`);
  const refusals = fixture.logs.filter((record) => record.message === 'NBD client refused');
  assert.equal(refusals.length, stats.protocolViolations, 'every refusal is logged');
  assert.ok(
    refusals.every((record) => typeof record.details.reason === 'string' && record.details.reason !== ''),
  );
  await eventually(() => openDescriptorCount() <= descriptorsBefore, 'descriptors back to where they were');
  assert.equal(digest(), before, 'the volume is byte-identical');
});
