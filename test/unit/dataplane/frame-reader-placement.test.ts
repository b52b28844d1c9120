import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeHeader,
  FRAME_HEADER_BYTES,
  type FrameHeader,
  Op,
} from '../../../src/dataplane/protocol/frame.ts';
import { FrameReader, type PayloadPlacement } from '../../../src/dataplane/protocol/frame-reader.ts';
import { patternBytes } from '../../helpers/temp.ts';

/**
 * FrameReader placement: a large payload still arriving goes where the provider says (the
 * replica client: read data straight into the caller's memory), by copy from pushed chunks
 * or by reads into the memory `readBuffer` hands out, and the frames after it are parsed as
 * before. The stream here is a mix of small frames, placed frames and large frames the
 * provider declines; it is cut at random points.
 */

interface SentFrame {
  sequence: number;
  payload: Buffer;
  /** Bytes of the payload's prefix when the provider places it; undefined: not placed. */
  prefixBytes: number | undefined;
}

function frameBytes(sequence: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  encodeHeader(out, 0, {
    op: Op.OK,
    sequence,
    offsetBytes: 0,
    lengthBytes: 0,
    payloadLength: payload.length,
    flags: 0,
  });
  payload.copy(out, FRAME_HEADER_BYTES);
  return out;
}

function makeStream(seed: number): { frames: SentFrame[]; stream: Buffer } {
  const frames: SentFrame[] = [];
  let state = seed;
  const next = (limit: number) => {
    state = (state * 1103515245 + 12345) >>> 0;
    return state % limit;
  };
  for (let sequence = 0; sequence < 60; sequence++) {
    const kind = next(3);
    const length = kind === 0 ? next(600) : 16 * 1024 + next(300 * 1024);
    const prefixBytes = kind === 1 ? Math.min(length, 4 * (1 + next(64))) : undefined;
    frames.push({ sequence, payload: patternBytes(seed * 100 + sequence, length), prefixBytes });
  }
  return { frames, stream: Buffer.concat(frames.map((frame) => frameBytes(frame.sequence, frame.payload))) };
}

/** A reader over `frames`: placed payloads land in fresh buffers; every delivery is recorded. */
function readerFor(frames: SentFrame[]) {
  const delivered: { sequence: number; payload: Buffer; placed: boolean }[] = [];
  const targets = new Map<number, PayloadPlacement>();
  const problems: string[] = [];
  const reader = new FrameReader(
    (header: FrameHeader, payload: Buffer, _fromChunk: boolean, placed: boolean) => {
      const whole = placed
        ? Buffer.concat([payload, targets.get(header.sequence)!.data])
        : Buffer.from(payload);
      delivered.push({ sequence: header.sequence, payload: whole, placed });
    },
    (reason) => problems.push(reason),
    (header) => {
      const prefixBytes = frames[header.sequence]?.prefixBytes;
      if (prefixBytes === undefined) return undefined;
      const placement = {
        prefix: Buffer.alloc(prefixBytes),
        data: new Uint8Array(header.payloadLength - prefixBytes),
      };
      targets.set(header.sequence, placement);
      return placement;
    },
  );
  return { reader, delivered, problems };
}

function assertDelivered(
  frames: SentFrame[],
  delivered: { sequence: number; payload: Buffer; placed: boolean }[],
) {
  assert.equal(delivered.length, frames.length);
  for (const [index, frame] of frames.entries()) {
    const got = delivered[index];
    assert.equal(got.sequence, frame.sequence, `frame ${index} in order`);
    assert.ok(got.payload.equals(frame.payload), `frame ${index}'s payload is intact`);
  }
  assert.ok(
    delivered.some((frame) => frame.placed),
    'some frames were placed (the provider is consulted)',
  );
}

test('placed payloads pushed in chunks of any size arrive whole, and the frames after them too', () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const { frames, stream } = makeStream(seed);
    const { reader, delivered, problems } = readerFor(frames);
    let position = 0;
    let state = seed;
    while (position < stream.length) {
      state = (state * 1103515245 + 12345) >>> 0;
      const size = 1 + (state % 90_000);
      reader.push(stream.subarray(position, position + size));
      position += size;
    }
    assert.deepEqual(problems, []);
    assertDelivered(frames, delivered);
  }
});

test('reads into the memory readBuffer hands out never pass the placed payload, and land in place', () => {
  for (const seed of [11, 12, 13]) {
    const { frames, stream } = makeStream(seed);
    const { reader, delivered, problems } = readerFor(frames);
    const receiveBuffer = Buffer.alloc(64 * 1024);
    let position = 0;
    let inPlace = 0;
    let state = seed;
    while (position < stream.length) {
      state = (state * 1103515245 + 12345) >>> 0;
      // A socket read fills at most the buffer it was given, with what has arrived.
      const destination = reader.readBuffer(receiveBuffer);
      const size = Math.min(destination.length, stream.length - position, 1 + (state % 70_000));
      destination.set(stream.subarray(position, position + size));
      position += size;
      if (destination === receiveBuffer) {
        reader.push(receiveBuffer.subarray(0, size));
      } else {
        inPlace += size;
        reader.pushPlaced(size);
      }
    }
    assert.deepEqual(problems, []);
    assertDelivered(frames, delivered);
    assert.ok(inPlace > 0, 'some bytes were read straight into placed memory');
  }
});

test('a provider whose placement does not add up to the payload is ignored (the frame is reassembled)', () => {
  const payload = patternBytes(9, 100 * 1024);
  const delivered: { placed: boolean; payload: Buffer }[] = [];
  const reader = new FrameReader(
    (_header, body, _fromChunk, placed) => delivered.push({ placed, payload: Buffer.from(body) }),
    () => assert.fail('no problem expected'),
    () => ({ prefix: Buffer.alloc(4), data: new Uint8Array(10) }),
  );
  const stream = frameBytes(7, payload);
  reader.push(stream.subarray(0, 5000));
  reader.push(stream.subarray(5000));
  assert.equal(delivered.length, 1);
  assert.equal(delivered[0].placed, false);
  assert.ok(delivered[0].payload.equals(payload));
});

test('a malformed header after a placed frame still stops the reader', () => {
  const payload = patternBytes(3, 40 * 1024);
  const problems: string[] = [];
  let frames = 0;
  const reader = new FrameReader(
    () => frames++,
    (reason) => problems.push(reason),
    (header) => ({ prefix: Buffer.alloc(8), data: new Uint8Array(header.payloadLength - 8) }),
  );
  const good = frameBytes(1, payload);
  const bad = Buffer.alloc(FRAME_HEADER_BYTES, 0xee);
  reader.push(good.subarray(0, 1000));
  reader.push(Buffer.concat([good.subarray(1000), bad]));
  assert.equal(frames, 1);
  assert.equal(problems.length, 1);
  assert.match(problems[0], /bad magic/);
  assert.equal(reader.readBuffer(Buffer.alloc(1)).length, 1, 'a stopped reader hands out the fallback');
});
