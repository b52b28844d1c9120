import { decodeHeader, emptyHeader, FRAME_HEADER_BYTES, type FrameHeader } from './frame.ts';

/**
 * Receives one frame. `fromChunk`: the payload is a view of the chunk being pushed (valid
 * until `push` returns); otherwise it is a view of the reassembly buffer (valid until this
 * call returns). `placed`: the frame's payload went where the placement provider said;
 * `payload` is then its prefix, and the rest is in the placement's `data`.
 */
export type FrameHandler = (
  header: FrameHeader,
  payload: Buffer,
  fromChunk: boolean,
  placed: boolean,
) => void;

/**
 * Where the payload of a frame still arriving should land: its first `prefix.length` bytes
 * in `prefix`, the rest in `data` (the lengths add up to the payload's).
 */
export interface PayloadPlacement {
  prefix: Buffer;
  data: Uint8Array;
}

/** Asked, once a large frame's header is known and its payload spans reads, where the payload goes (undefined: reassemble it). */
export type PlacementProvider = (header: FrameHeader) => PayloadPlacement | undefined;

/** Payloads smaller than this are reassembled as usual: placing them saves too little. */
const PLACEMENT_MIN_BYTES = 16 * 1024;

/**
 * Splits a byte stream into frames. A frame wholly inside one chunk is handed over as a
 * view of that chunk (no copy); a frame split across chunks is reassembled in one buffer
 * per connection, grown to the largest frame seen and reused. The header object is reused
 * too: `onFrame` must consume header and payload before it returns.
 *
 * A malformed header stops the reader for good (`onProblem` is called once): on a broken
 * stream nothing after it can be trusted, and the connection is closed.
 */
export class FrameReader {
  private readonly onFrame: FrameHandler;
  private readonly onProblem: (reason: string) => void;
  private readonly place: PlacementProvider | undefined;
  private readonly header = emptyHeader();
  private assembly = Buffer.alloc(64 * 1024);
  private assembled = 0;
  /** The frame being placed (its header is `header`), and how many payload bytes have landed. */
  private placement: PayloadPlacement | undefined;
  private placed = 0;
  private failed = false;

  /**
   * `place`: where large payloads should land (the replica client: read data straight into
   * the caller's memory); with it, a connection's reads can go there directly (`readBuffer`,
   * `pushPlaced`), and bytes that arrive in chunks are copied there once.
   */
  constructor(onFrame: FrameHandler, onProblem: (reason: string) => void, place?: PlacementProvider) {
    this.onFrame = onFrame;
    this.onProblem = onProblem;
    this.place = place;
  }

  /**
   * The memory the next read of the connection should fill: the rest of a placed frame's
   * data once its prefix is complete (exactly that much, so that a read never runs into the
   * next frame), otherwise `fallback`. Bytes read into `fallback` go to `push`; bytes read
   * into the memory returned here go to `pushPlaced`.
   */
  readBuffer(fallback: Buffer): Uint8Array {
    const placement = this.placement;
    if (placement === undefined || this.failed || this.placed < placement.prefix.length) return fallback;
    return placement.data.subarray(this.placed - placement.prefix.length);
  }

  /** `bytes` were read into the memory `readBuffer` returned last (not `fallback`). */
  pushPlaced(bytes: number): void {
    const placement = this.placement;
    if (placement === undefined || this.failed) return;
    this.placed += bytes;
    if (this.placed === this.header.payloadLength) this.finishPlacement();
  }

  get stopped(): boolean {
    return this.failed;
  }

  push(chunk: Buffer): void {
    let position = 0;
    while (!this.failed && position < chunk.length) {
      if (this.placement !== undefined) {
        position = this.continuePlacement(chunk, position);
        continue;
      }
      if (this.assembled > 0) {
        position = this.continueAssembly(chunk, position);
        continue;
      }
      const available = chunk.length - position;
      if (available < FRAME_HEADER_BYTES) {
        this.startAssembly(chunk, position, FRAME_HEADER_BYTES);
        return;
      }
      const problem = decodeHeader(chunk, position, this.header);
      if (problem !== undefined) {
        this.fail(problem);
        return;
      }
      const frameBytes = FRAME_HEADER_BYTES + this.header.payloadLength;
      if (available < frameBytes) {
        if (this.startPlacement()) {
          position = this.continuePlacement(chunk, position + FRAME_HEADER_BYTES);
          continue;
        }
        this.startAssembly(chunk, position, frameBytes);
        return;
      }
      this.onFrame(
        this.header,
        chunk.subarray(position + FRAME_HEADER_BYTES, position + frameBytes),
        true,
        false,
      );
      position += frameBytes;
    }
  }

  /** Asks where the payload of the frame whose header was just read goes; true when it is placed. */
  private startPlacement(): boolean {
    if (this.place === undefined || this.header.payloadLength < PLACEMENT_MIN_BYTES) return false;
    const placement = this.place(this.header);
    if (placement === undefined) return false;
    if (placement.prefix.length + placement.data.length !== this.header.payloadLength) return false;
    this.placement = placement;
    this.placed = 0;
    return true;
  }

  /** Copies payload bytes of the placed frame from `chunk`; delivers the frame once complete; returns the new position. */
  private continuePlacement(chunk: Buffer, position: number): number {
    const { prefix, data } = this.placement!;
    const total = this.header.payloadLength;
    while (position < chunk.length && this.placed < total) {
      const inPrefix = this.placed < prefix.length;
      const destination = inPrefix ? prefix : data;
      const at = inPrefix ? this.placed : this.placed - prefix.length;
      const take = Math.min(destination.length - at, chunk.length - position);
      destination.set(chunk.subarray(position, position + take), at);
      this.placed += take;
      position += take;
    }
    if (this.placed === total) this.finishPlacement();
    return position;
  }

  private finishPlacement(): void {
    const { prefix } = this.placement!;
    this.placement = undefined;
    this.placed = 0;
    this.onFrame(this.header, prefix, false, true);
  }

  private startAssembly(chunk: Buffer, position: number, needed: number): void {
    this.reserve(needed);
    chunk.copy(this.assembly, 0, position);
    this.assembled = chunk.length - position;
  }

  /** Copies from `chunk` into the assembly; delivers the frame once complete; returns the new position. */
  private continueAssembly(chunk: Buffer, position: number): number {
    if (this.assembled < FRAME_HEADER_BYTES) {
      const take = Math.min(FRAME_HEADER_BYTES - this.assembled, chunk.length - position);
      chunk.copy(this.assembly, this.assembled, position, position + take);
      this.assembled += take;
      position += take;
      if (this.assembled < FRAME_HEADER_BYTES) return position;
      const problem = decodeHeader(this.assembly, 0, this.header);
      if (problem !== undefined) {
        this.fail(problem);
        return chunk.length;
      }
      this.reserve(FRAME_HEADER_BYTES + this.header.payloadLength);
    }
    const frameBytes = FRAME_HEADER_BYTES + this.header.payloadLength;
    const take = Math.min(frameBytes - this.assembled, chunk.length - position);
    chunk.copy(this.assembly, this.assembled, position, position + take);
    this.assembled += take;
    position += take;
    if (this.assembled === frameBytes) {
      this.assembled = 0;
      this.onFrame(this.header, this.assembly.subarray(FRAME_HEADER_BYTES, frameBytes), false, false);
    }
    return position;
  }

  private reserve(bytes: number): void {
    if (this.assembly.length >= bytes) return;
    const grown = Buffer.alloc(Math.max(bytes, this.assembly.length * 2));
    this.assembly.copy(grown, 0, 0, this.assembled);
    this.assembly = grown;
  }

  private fail(reason: string): void {
    this.failed = true;
    this.assembled = 0;
    this.placement = undefined;
    this.onProblem(reason);
  }
}
