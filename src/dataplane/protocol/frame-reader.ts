import { decodeHeader, emptyHeader, FRAME_HEADER_BYTES, type FrameHeader } from './frame.ts';

/**
 * Receives one frame. `fromChunk`: the payload is a view of the chunk being pushed (valid
 * until `push` returns); otherwise it is a view of the reassembly buffer (valid until this
 * call returns).
 */
export type FrameHandler = (header: FrameHeader, payload: Buffer, fromChunk: boolean) => void;

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
  private readonly header = emptyHeader();
  private assembly = Buffer.alloc(64 * 1024);
  private assembled = 0;
  private failed = false;

  constructor(onFrame: FrameHandler, onProblem: (reason: string) => void) {
    this.onFrame = onFrame;
    this.onProblem = onProblem;
  }

  get stopped(): boolean {
    return this.failed;
  }

  push(chunk: Buffer): void {
    let position = 0;
    while (!this.failed && position < chunk.length) {
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
        this.startAssembly(chunk, position, frameBytes);
        return;
      }
      this.onFrame(this.header, chunk.subarray(position + FRAME_HEADER_BYTES, position + frameBytes), true);
      position += frameBytes;
    }
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
      this.onFrame(this.header, this.assembly.subarray(FRAME_HEADER_BYTES, frameBytes), false);
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
    this.onProblem(reason);
  }
}
