import { crc32c } from '../../native.ts';
import { BHS_BYTES, DIGEST_BYTES, PduHeader, paddedLength } from './pdu.ts';

/** Largest additional header segment area (the length field is in 4-byte words, one byte). */
const MAX_AHS_BYTES = 255 * 4;

export type ReceiveErrorKind = 'header-digest' | 'data-digest' | 'too-long';

/** What a connection does with incoming PDUs; called synchronously from `push`. */
export interface ReceiverHandler {
  /**
   * The header of a PDU arrived (its digest checked). The handler decides where the data
   * segment goes by calling `receiver.directData(...)`; otherwise it lands in the control
   * buffer. Returning false stops the receiver (the connection is closing).
   */
  headerReceived(header: PduHeader): boolean;
  /** The whole PDU arrived. `data` is the control-buffer view, or null when it was directed. */
  pduReceived(header: PduHeader, data: Buffer | null): boolean;
  /** A framing or digest error; the stream cannot be trusted after it. */
  receiveError(kind: ReceiveErrorKind, header: PduHeader, reason: string): void;
}

const State = { HEADER: 0, HEADER_REST: 1, DATA: 2, DONE: 3 } as const;

/**
 * Reassembles iSCSI PDUs from TCP chunks with no per-PDU allocation: the basic header lands
 * in one reused 48-byte buffer, the AHS and header digest in another, and the data segment
 * either straight into the buffer of the task it belongs to (Data-Out, immediate data: one
 * copy from the socket chunk) or into one reused control buffer (login, text, NOP data).
 * Digests are computed incrementally as bytes arrive.
 *
 * Bounds: a data segment longer than `maxDataSegmentBytes` is a framing error (the stream is
 * abandoned); the control buffer holds exactly that many bytes.
 */
export class PduReceiver {
  readonly header = new PduHeader();
  private readonly handler: ReceiverHandler;
  private readonly headerRest = Buffer.alloc(MAX_AHS_BYTES + DIGEST_BYTES);
  private control: Buffer;
  private state: number = State.HEADER;
  private filled = 0;
  private headerRestBytes = 0;
  private dataBytes = 0;
  private dataTotalBytes = 0;
  private digestCrc = 0;
  private readonly dataDigestBytes = Buffer.alloc(DIGEST_BYTES);
  private digestFilled = 0;
  /** Where the data segment goes: target buffer, its offset, and how many bytes fit. */
  private target: Buffer | null = null;
  private targetOffset = 0;
  private targetCapacity = 0;
  /** The data segment is dropped (read, digest-checked, not stored). */
  private discard = false;
  headerDigest = false;
  dataDigest = false;
  maxDataSegmentBytes: number;
  private stopped = false;

  constructor(handler: ReceiverHandler, maxDataSegmentBytes: number) {
    this.handler = handler;
    this.maxDataSegmentBytes = maxDataSegmentBytes;
    this.control = Buffer.alloc(maxDataSegmentBytes);
  }

  /** Grows the control buffer when the negotiated limit is larger than the login one. */
  setMaxDataSegmentBytes(bytes: number): void {
    this.maxDataSegmentBytes = bytes;
    if (this.control.length < bytes) this.control = Buffer.alloc(bytes);
  }

  /**
   * Sends this PDU's data segment to `target[offset, offset + capacity)`; bytes beyond are
   * dropped. A null target drops the whole data segment. May be called again while the data
   * arrives (a task aborted under it): later bytes follow the new direction.
   */
  directData(target: Buffer | null, offset: number, capacity: number): void {
    this.target = target;
    this.discard = target === null;
    this.targetOffset = offset;
    this.targetCapacity = target === null ? 0 : Math.max(0, Math.min(capacity, target.length - offset));
  }

  /** Stops consuming (back-pressure or closing); `push` returns how far it got. */
  stop(): void {
    this.stopped = true;
  }

  resume(): void {
    this.stopped = false;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Consumes bytes of `chunk` from `start`; returns how many were consumed (all unless stopped). */
  push(chunk: Buffer, start = 0): number {
    let position = start;
    while (position < chunk.length && !this.stopped) {
      switch (this.state) {
        case State.HEADER: {
          const take = Math.min(BHS_BYTES - this.filled, chunk.length - position);
          chunk.copy(this.header.bytes, this.filled, position, position + take);
          this.filled += take;
          position += take;
          if (this.filled === BHS_BYTES) this.headerComplete();
          break;
        }
        case State.HEADER_REST: {
          const take = Math.min(this.headerRestBytes - this.filled, chunk.length - position);
          chunk.copy(this.headerRest, this.filled, position, position + take);
          this.filled += take;
          position += take;
          if (this.filled === this.headerRestBytes) this.headerRestComplete();
          break;
        }
        case State.DATA:
          position = this.consumeData(chunk, position);
          break;
        default:
          this.pduComplete();
          break;
      }
      if (this.state === State.DONE && !this.stopped) this.pduComplete();
    }
    return position - start;
  }

  private headerComplete(): void {
    const header = this.header;
    const ahsBytes = header.totalAhsLength * 4;
    this.dataTotalBytes = header.dataSegmentLength;
    if (this.dataTotalBytes > this.maxDataSegmentBytes) {
      this.fail(
        'too-long',
        `data segment of ${this.dataTotalBytes} bytes exceeds ${this.maxDataSegmentBytes}`,
      );
      return;
    }
    this.headerRestBytes = ahsBytes + (this.headerDigest ? DIGEST_BYTES : 0);
    this.filled = 0;
    if (this.headerRestBytes > 0) this.state = State.HEADER_REST;
    else this.headerRestComplete();
  }

  private headerRestComplete(): void {
    const header = this.header;
    const ahsBytes = header.totalAhsLength * 4;
    if (this.headerDigest) {
      const expected = this.headerRest.readUInt32LE(ahsBytes);
      let crc = crc32c(header.bytes);
      if (ahsBytes > 0) crc = crc32c(this.headerRest.subarray(0, ahsBytes), crc);
      if (crc >>> 0 !== expected) {
        this.fail('header-digest', 'header digest mismatch');
        return;
      }
    }
    this.target = null;
    this.discard = false;
    this.targetOffset = 0;
    this.targetCapacity = this.dataTotalBytes;
    if (!this.handler.headerReceived(header)) {
      this.stopped = true;
      return;
    }
    this.dataBytes = 0;
    this.digestFilled = 0;
    this.digestCrc = 0;
    this.state = this.dataTotalBytes > 0 ? State.DATA : State.DONE;
  }

  private consumeData(chunk: Buffer, start: number): number {
    let position = start;
    const paddedBytes = paddedLength(this.dataTotalBytes);
    if (this.dataBytes < paddedBytes) {
      const take = Math.min(paddedBytes - this.dataBytes, chunk.length - position);
      if (this.dataDigest) this.digestCrc = crc32c(chunk.subarray(position, position + take), this.digestCrc);
      // Copy the part of this slice that is data (not padding) and fits the destination.
      const dataEnd = Math.min(this.dataBytes + take, this.dataTotalBytes);
      if (dataEnd > this.dataBytes && !this.discard) {
        const destination = this.target ?? this.control;
        const base = this.target === null ? 0 : this.targetOffset;
        const capacity = this.target === null ? this.control.length : this.targetCapacity;
        const copyEnd = Math.min(dataEnd, capacity);
        if (copyEnd > this.dataBytes) {
          chunk.copy(destination, base + this.dataBytes, position, position + (copyEnd - this.dataBytes));
        }
      }
      this.dataBytes += take;
      position += take;
    }
    if (this.dataBytes === paddedBytes) {
      if (!this.dataDigest) {
        this.state = State.DONE;
        return position;
      }
      const take = Math.min(DIGEST_BYTES - this.digestFilled, chunk.length - position);
      chunk.copy(this.dataDigestBytes, this.digestFilled, position, position + take);
      this.digestFilled += take;
      position += take;
      if (this.digestFilled === DIGEST_BYTES) {
        if (this.dataDigestBytes.readUInt32LE(0) !== this.digestCrc >>> 0) {
          this.fail('data-digest', 'data digest mismatch');
          return position;
        }
        this.state = State.DONE;
      }
    }
    return position;
  }

  private pduComplete(): void {
    const data =
      this.target === null && this.dataTotalBytes > 0 ? this.control.subarray(0, this.dataTotalBytes) : null;
    this.state = State.HEADER;
    this.filled = 0;
    const target = this.target;
    this.target = null;
    if (!this.handler.pduReceived(this.header, target === null ? data : null)) this.stopped = true;
  }

  private fail(kind: ReceiveErrorKind, reason: string): void {
    this.stopped = true;
    this.handler.receiveError(kind, this.header, reason);
  }
}
