import type { MappingRun } from '../block-device.ts';
import {
  ReplyFlag,
  ReplyType,
  SIMPLE_REPLY_BYTES,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_HEADER_BYTES,
  STRUCTURED_REPLY_MAGIC,
} from './protocol.ts';

/** Where a slot is in its life. Free → RECEIVING (WRITE payload) or WAITING_BUFFER → DEVICE → REPLYING → free. */
export const SlotState = {
  FREE: 0,
  /** Taken; waiting for a pool buffer. */
  WAITING_BUFFER: 1,
  /** WRITE payload arriving from the socket. */
  RECEIVING: 2,
  /** The device call is running. */
  DEVICE: 3,
  /** The reply is queued on the socket; the slot is freed by the write callback. */
  REPLYING: 4,
} as const;
export type SlotStateValue = (typeof SlotState)[keyof typeof SlotState];

/** Callbacks a slot reports to; implemented by Transmission. */
export interface SlotOwner {
  deviceDone(slot: RequestSlot): void;
  deviceFailed(slot: RequestSlot, error: unknown): void;
  statusDone(slot: RequestSlot, runs: MappingRun[]): void;
  replyWritten(slot: RequestSlot, error: Error | null | undefined): void;
}

/**
 * One request in flight, preallocated per connection and reused: the decoded request, its
 * payload buffer from the pool, a reply header buffer, views on that header for each reply
 * shape, and callbacks bound once so that dispatching a request creates no closures.
 */
export class RequestSlot {
  state: SlotStateValue = SlotState.FREE;
  command = 0;
  flags = 0;
  handleHigh = 0;
  handleLow = 0;
  /** High 32 bits of the request offset; offsets at or beyond 2^53 never reach a device. */
  offsetHigh = 0;
  offsetBytes = 0;
  lengthBytes = 0;
  /** The pool buffer (a size class, at least lengthBytes), or null. */
  buffer: Buffer | null = null;
  /** `buffer` cut to the bytes the request uses. */
  view: Buffer | null = null;

  /** 32 bytes: the longest header is a structured chunk (20) plus offset (8) or context id (4). */
  readonly replyHeader = Buffer.alloc(32);
  readonly simpleHeader = this.replyHeader.subarray(0, SIMPLE_REPLY_BYTES);
  readonly chunkHeader = this.replyHeader.subarray(0, STRUCTURED_REPLY_HEADER_BYTES);
  readonly dataChunkHeader = this.replyHeader.subarray(0, STRUCTURED_REPLY_HEADER_BYTES + 8);

  readonly onDeviceDone: () => void;
  readonly onDeviceFailed: (error: unknown) => void;
  readonly onStatus: (runs: MappingRun[]) => void;
  readonly onWritten: (error?: Error | null) => void;

  constructor(owner: SlotOwner) {
    this.onDeviceDone = () => owner.deviceDone(this);
    this.onDeviceFailed = (error: unknown) => owner.deviceFailed(this, error);
    this.onStatus = (runs: MappingRun[]) => owner.statusDone(this, runs);
    this.onWritten = (error?: Error | null) => owner.replyWritten(this, error);
  }

  /** Takes the request fields from a 28-byte request header (magic already checked). */
  decode(header: Buffer): void {
    this.flags = header.readUInt16BE(4);
    this.command = header.readUInt16BE(6);
    this.handleHigh = header.readUInt32BE(8);
    this.handleLow = header.readUInt32BE(12);
    this.offsetHigh = header.readUInt32BE(16);
    this.offsetBytes = this.offsetHigh * 2 ** 32 + header.readUInt32BE(20);
    this.lengthBytes = header.readUInt32BE(24);
  }

  /** Fills `simpleHeader`: magic, error, handle. */
  encodeSimpleReply(error: number): Buffer {
    const header = this.replyHeader;
    header.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
    header.writeUInt32BE(error, 4);
    header.writeUInt32BE(this.handleHigh, 8);
    header.writeUInt32BE(this.handleLow, 12);
    return this.simpleHeader;
  }

  /** Fills a structured chunk header (flags DONE) with `payloadBytes` of payload to follow. */
  encodeChunkHeader(type: number, payloadBytes: number): Buffer {
    const header = this.replyHeader;
    header.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0);
    header.writeUInt16BE(ReplyFlag.DONE, 4);
    header.writeUInt16BE(type, 6);
    header.writeUInt32BE(this.handleHigh, 8);
    header.writeUInt32BE(this.handleLow, 12);
    header.writeUInt32BE(payloadBytes, 16);
    return this.chunkHeader;
  }

  /** Header of the one OFFSET_DATA chunk that answers a structured READ: chunk header plus offset. */
  encodeDataChunkHeader(): Buffer {
    this.encodeChunkHeader(ReplyType.OFFSET_DATA, 8 + this.lengthBytes);
    this.replyHeader.writeUInt32BE(this.offsetHigh, STRUCTURED_REPLY_HEADER_BYTES);
    this.replyHeader.writeUInt32BE(this.offsetBytes % 2 ** 32, STRUCTURED_REPLY_HEADER_BYTES + 4);
    return this.dataChunkHeader;
  }

  reset(): void {
    this.state = SlotState.FREE;
    this.buffer = null;
    this.view = null;
  }
}
