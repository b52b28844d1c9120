import type { Socket } from 'node:net';
import { assert } from '../../assert.ts';
import { crc32c } from '../../native.ts';
import { TickCork } from '../tick-cork.ts';
import { BHS_BYTES, DIGEST_BYTES, type PduHeader, paddedLength } from './pdu.ts';

/** Something to tell when the last byte of a PDU has been handed to the kernel. */
export interface WriteCompletion {
  written(): void;
}

/** PDUs whose header and trailer bytes may be in flight at once (the slot ring). */
const SLOTS = 2048;
/** Bytes per slot: a 48-byte header and its digest, or padding and a data digest. */
const SLOT_BYTES = 64;
const HEADER_SLOT = 0;
const TRAILER_SLOT = 1;
const ZERO_PADDING = Buffer.alloc(4);
/** Views of 0-3 zero bytes, for the data digest over the padding. */
const PADDINGS = [0, 1, 2, 3].map((bytes) => ZERO_PADDING.subarray(0, bytes));

class WriteRecord {
  /** Slots freed when this record's write completes. */
  slots = 0;
  completion: WriteCompletion | null = null;
}

/**
 * Writes iSCSI PDUs to a socket without allocating per PDU: each PDU's header (with its
 * digest) and trailer (padding and data digest) are built in a slot of a preallocated slab,
 * written through views made once per slot and length, and the slots come back, in order, as
 * the socket's write callbacks report them written. Data segments are written as views of the
 * caller's buffer (never copied); the caller keeps the buffer until `written()`.
 *
 * Bound: SLOTS PDUs in flight use the slab; beyond that (a socket that is not draining)
 * headers are allocated on the heap and counted, and connections stop reading from a socket
 * whose queue is long, which bounds it.
 */
export class PduSender {
  headerDigest = false;
  dataDigest = false;
  /** Headers and trailers that did not fit in the slot ring (allocated instead). */
  overflowAllocations = 0;
  private readonly socket: Socket;
  private readonly slab = Buffer.allocUnsafe(SLOTS * 2 * SLOT_BYTES);
  /** views[kind][length][slot]: a view of `length` bytes at the start of that slot, made once. */
  private readonly views: Buffer[][][] = [[], []];
  private slotHead = 0;
  private slotsUsed = 0;
  private readonly records: WriteRecord[] = [];
  private recordsHead = 0;
  private recordsCount = 0;
  private readonly freeRecords: WriteRecord[] = [];
  private readonly onWriteDone = (): void => this.writeDone();

  private readonly tickCork: TickCork;

  constructor(socket: Socket) {
    this.socket = socket;
    this.tickCork = new TickCork(socket);
  }

  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  cork(): void {
    this.socket.cork();
  }

  /** Holds what is sent until this tick's work is done: responses completed together leave in one writev. */
  holdUntilTickEnd(): void {
    this.tickCork.hold();
  }

  uncork(): void {
    this.socket.uncork();
  }

  /**
   * Sends one PDU: `header` (whose dataSegmentLength is set here from `data`), then `data`.
   * `completion.written()` runs once every byte of the PDU has left.
   */
  send(header: PduHeader, data: Buffer | null, completion: WriteCompletion | null = null): void {
    if (this.socket.destroyed || this.socket.writableEnded) {
      // Nothing will be written: the caller's buffer is free at once.
      completion?.written();
      return;
    }
    const dataBytes = data === null ? 0 : data.length;
    header.dataSegmentLength = dataBytes;
    const padding = paddedLength(dataBytes) - dataBytes;
    const trailerBytes = dataBytes === 0 ? 0 : padding + (this.dataDigest ? DIGEST_BYTES : 0);
    const record = this.freeRecords.pop() ?? new WriteRecord();
    record.completion = completion;
    record.slots = 0;
    const slot = this.takeSlot();
    if (slot >= 0) record.slots++;
    const headerCopy = this.view(HEADER_SLOT, slot, BHS_BYTES + (this.headerDigest ? DIGEST_BYTES : 0));
    header.bytes.copy(headerCopy, 0);
    if (this.headerDigest) headerCopy.writeUInt32LE(crc32c(header.bytes) >>> 0, BHS_BYTES);
    let trailer: Buffer | null = null;
    if (trailerBytes > 0) {
      trailer = this.view(TRAILER_SLOT, slot, trailerBytes);
      ZERO_PADDING.copy(trailer, 0, 0, padding);
      if (this.dataDigest) {
        let crc = crc32c(data!);
        if (padding > 0) crc = crc32c(PADDINGS[padding], crc);
        trailer.writeUInt32LE(crc >>> 0, padding);
      }
    }
    this.pushRecord(record);
    // The callback goes on the last write of the PDU; callbacks fire in write order.
    if (dataBytes === 0) {
      this.socket.write(headerCopy, this.onWriteDone);
      return;
    }
    this.socket.write(headerCopy);
    if (trailer === null) {
      this.socket.write(data!, this.onWriteDone);
      return;
    }
    this.socket.write(data!);
    this.socket.write(trailer, this.onWriteDone);
  }

  /** The next free slot (header and trailer halves), or -1 when all are in flight. */
  private takeSlot(): number {
    if (this.slotsUsed === SLOTS) {
      this.overflowAllocations++;
      return -1;
    }
    const slot = this.slotHead;
    this.slotHead = (this.slotHead + 1) % SLOTS;
    this.slotsUsed++;
    return slot;
  }

  private view(kind: number, slot: number, bytes: number): Buffer {
    assert(bytes <= SLOT_BYTES, 'a header or trailer fits its slot');
    if (slot < 0) return Buffer.allocUnsafe(bytes);
    let byLength = this.views[kind][bytes];
    if (byLength === undefined) {
      byLength = new Array<Buffer>(SLOTS);
      this.views[kind][bytes] = byLength;
    }
    let view = byLength[slot];
    if (view === undefined) {
      const start = (slot * 2 + kind) * SLOT_BYTES;
      view = this.slab.subarray(start, start + bytes);
      byLength[slot] = view;
    }
    return view;
  }

  private pushRecord(record: WriteRecord): void {
    if (this.recordsCount === this.records.length) {
      // Grow: rotate the queue so it starts at 0, then append room.
      const ordered: WriteRecord[] = [];
      for (let index = 0; index < this.recordsCount; index++) {
        ordered.push(this.records[(this.recordsHead + index) % this.records.length]);
      }
      this.records.length = 0;
      this.records.push(...ordered);
      this.recordsHead = 0;
      const grow = Math.max(16, this.records.length);
      for (let index = 0; index < grow; index++) this.records.push(new WriteRecord());
    }
    this.records[(this.recordsHead + this.recordsCount) % this.records.length] = record;
    this.recordsCount++;
  }

  private writeDone(): void {
    if (this.recordsCount === 0) return;
    const record = this.records[this.recordsHead];
    this.recordsHead = (this.recordsHead + 1) % this.records.length;
    this.recordsCount--;
    // Slots are taken and released in the same order, so the oldest ones come back.
    this.slotsUsed -= record.slots;
    const completion = record.completion;
    record.completion = null;
    this.freeRecords.push(record);
    completion?.written();
  }
}
