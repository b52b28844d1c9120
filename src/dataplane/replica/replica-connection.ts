import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { checksumOf } from '../../storage/checksum.ts';
import { BLOCK_SIZE, MAX_IO_BLOCKS, MAX_IO_BYTES } from '../../storage/constants.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import {
  encodeHeader,
  FRAME_HEADER_BYTES,
  FrameFlag,
  type FrameHeader,
  Op,
  type OpValue,
} from '../protocol/frame.ts';
import { FrameReader } from '../protocol/frame-reader.ts';
import type { ByteStream } from '../protocol/in-thread-link.ts';
import {
  checksumSectionBytes,
  decodeJson,
  decodeLayerWrite,
  encodeError,
  encodeExtents,
  encodeJson,
  isBlockAligned,
  readChecksumSection,
} from '../protocol/payloads.ts';
import { applyLayerWrite } from './apply-layer-write.ts';
import type { ReplicaControl } from './replica-control.ts';
import { ResponseArena } from './response-arena.ts';
import { applyWriteBatch, type BatchedWrite, MAX_BATCH_WRITES } from './write-batch.ts';

interface PendingWrite extends BatchedWrite {
  sequence: number;
  expected: Uint32Array | number;
}

/**
 * One engine connection to a replica. Frames are handled in arrival order; the only thing
 * deferred is applying aligned WRITEs, which are gathered while one socket read is being
 * parsed and applied together (one journal append) before any other request of that read
 * runs, so ordering is as if each were applied on arrival. Responses of a read go out
 * together (the socket is corked), from a reused arena.
 */
export class ReplicaConnection {
  private readonly socket: ByteStream;
  private readonly peer: string;
  private readonly store: ReplicaStore;
  private readonly control: ReplicaControl;
  private readonly log: Logger;
  private readonly reader: FrameReader;
  private readonly arena = new ResponseArena();
  private readonly pending: PendingWrite[] = [];
  private readonly outcomes: unknown[] = [];
  /** Sender checksums of the pending writes (copied out of the socket data, which may be unaligned). */
  private readonly expectedScratch = new Uint32Array(MAX_IO_BLOCKS);
  private expectedUsed = 0;
  private pendingFua = false;
  private closed = false;

  /** Called before the frames of each chunk are handled (the in-thread link: apply the direct writes sent before them). */
  private readonly beforeFrames: (() => void) | undefined;

  constructor(
    socket: ByteStream,
    peer: string,
    store: ReplicaStore,
    control: ReplicaControl,
    log: Logger,
    beforeFrames?: () => void,
  ) {
    this.socket = socket;
    this.beforeFrames = beforeFrames;
    this.peer = peer;
    this.store = store;
    this.control = control;
    this.log = log;
    this.reader = new FrameReader(
      (header, payload, fromChunk) => this.handle(header, payload, fromChunk),
      (reason) => this.refuse(reason),
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (error) => this.log('debug', 'replica connection error', { error: error.message }));
    socket.on('close', () => {
      this.closed = true;
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.beforeFrames?.();
    this.arena.begin(this.socket.writableLength === 0);
    this.socket.cork();
    try {
      this.reader.push(chunk);
      this.applyPendingWrites();
    } finally {
      this.socket.uncork();
    }
  }

  private refuse(reason: string): void {
    this.log('warn', 'closing a replica connection after a malformed frame', {
      reason,
      peer: this.peer,
    });
    this.pending.length = 0;
    this.socket.destroy();
  }

  private handle(header: FrameHeader, payload: Buffer, fromChunk: boolean): void {
    if (this.closed) return;
    const { op, sequence } = header;
    try {
      if (op === Op.WRITE) {
        this.queueWrite(header, payload, fromChunk);
        return;
      }
      this.applyPendingWrites();
      switch (op) {
        case Op.READ:
          this.read(header);
          return;
        case Op.UNMAP:
          this.requireNoPayload(header);
          this.store.unmap(header.offsetBytes, header.lengthBytes);
          this.respond(sequence, Op.OK, null);
          return;
        case Op.FLUSH:
          this.requireNoPayload(header);
          this.store.flush();
          this.respond(sequence, Op.OK, null);
          return;
        case Op.PING:
          this.respond(sequence, Op.OK, null);
          return;
        case Op.CONTROL:
          this.callControl(sequence, payload);
          return;
        case Op.LAYER_EXTENTS:
          this.layerExtents(sequence, payload);
          return;
        case Op.READ_LAYER:
          this.readLayer(header, payload);
          return;
        case Op.WRITE_LAYER:
          this.writeLayer(header, payload);
          return;
        default:
          throw new HornbillError('INVALID_ARGUMENT', `op ${op} is a response, not a request`);
      }
    } catch (error) {
      this.respondError(sequence, error);
    }
  }

  private requireNoPayload(header: FrameHeader): void {
    if (header.payloadLength !== 0)
      throw new HornbillError('INVALID_ARGUMENT', `op ${header.op} carries no payload`);
  }

  private requireIoLength(header: FrameHeader): void {
    if (header.lengthBytes > MAX_IO_BYTES) {
      throw new HornbillError('INVALID_ARGUMENT', `an I/O is limited to ${MAX_IO_BYTES} bytes`, {
        lengthBytes: header.lengthBytes,
      });
    }
  }

  private queueWrite(header: FrameHeader, payload: Buffer, fromChunk: boolean): void {
    this.requireIoLength(header);
    const sectionBytes = checksumSectionBytes(header.offsetBytes, header.lengthBytes);
    if (payload.length !== sectionBytes + header.lengthBytes) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        'write payload length does not match its length and checksums',
        {
          payloadLength: payload.length,
          expected: sectionBytes + header.lengthBytes,
        },
      );
    }
    const aligned = isBlockAligned(header.offsetBytes, header.lengthBytes);
    const blocks = aligned ? header.lengthBytes / BLOCK_SIZE : 0;
    if (
      this.pending.length === MAX_BATCH_WRITES ||
      this.expectedUsed + blocks > this.expectedScratch.length
    ) {
      this.applyPendingWrites();
    }
    let expected: Uint32Array | number;
    if (aligned) {
      expected = this.expectedScratch.subarray(this.expectedUsed, this.expectedUsed + blocks);
      readChecksumSection(payload, expected, blocks);
      this.expectedUsed += blocks;
    } else {
      expected = payload.readUInt32LE(0);
    }
    this.pending.push({
      sequence: header.sequence,
      offsetBytes: header.offsetBytes,
      data: payload.subarray(sectionBytes),
      expected,
      repair: (header.flags & FrameFlag.REPAIR) !== 0,
      fua: (header.flags & FrameFlag.FUA) !== 0,
    });
    if ((header.flags & FrameFlag.FUA) !== 0) this.pendingFua = true;
    // A payload reassembled across socket reads lives in the reader's buffer, which the next
    // frame reuses: apply it now.
    if (!fromChunk || !aligned) this.applyPendingWrites();
  }

  /** Applies the gathered writes (write-batch.ts) and answers each. */
  private applyPendingWrites(): void {
    const writes = this.pending;
    if (writes.length === 0) return;
    applyWriteBatch(this.store, writes, this.pendingFua, this.outcomes);
    for (let index = 0; index < writes.length; index++) {
      const outcome = this.outcomes[index];
      if (outcome === undefined) this.respond(writes[index].sequence, Op.OK, null);
      else this.respondError(writes[index].sequence, outcome);
    }
    writes.length = 0;
    this.outcomes.length = 0;
    this.expectedUsed = 0;
    this.pendingFua = false;
  }

  private read(header: FrameHeader): void {
    this.requireNoPayload(header);
    this.requireIoLength(header);
    const length = header.lengthBytes;
    const sectionBytes = checksumSectionBytes(header.offsetBytes, length);
    const frame = this.arena.take(FRAME_HEADER_BYTES + sectionBytes + length);
    const data = frame.subarray(FRAME_HEADER_BYTES + sectionBytes);
    if (isBlockAligned(header.offsetBytes, length)) {
      // The arena hands out 8-byte aligned memory, so the section can be a Uint32Array view (little-endian host).
      const checksums = new Uint32Array(
        frame.buffer,
        frame.byteOffset + FRAME_HEADER_BYTES,
        sectionBytes / 4,
      );
      this.store.readWithChecksums(header.offsetBytes, data, checksums);
    } else {
      this.store.read(header.offsetBytes, data);
      frame.writeUInt32LE(checksumOf(data), FRAME_HEADER_BYTES);
    }
    this.writeFrame(frame, header.sequence, Op.OK, sectionBytes + length);
  }

  private callControl(sequence: number, payload: Buffer): void {
    const request = decodeJson(payload, 'control request') as { method?: unknown; params?: unknown } | null;
    if (typeof request !== 'object' || request === null) {
      throw new HornbillError('INVALID_ARGUMENT', 'a control request is a JSON object {method, params}');
    }
    this.control
      .call(request.method, request.params, () => this.closed)
      .then(
        (result) => this.respond(sequence, Op.OK, encodeJson(result ?? null)),
        (error) => this.respondError(sequence, error),
      );
  }

  private layerExtents(sequence: number, payload: Buffer): void {
    const request = decodeJson(payload, 'extents request') as {
      layer?: unknown;
      startBlock?: unknown;
      blockCount?: unknown;
    };
    if (
      typeof request?.layer !== 'string' ||
      typeof request.startBlock !== 'number' ||
      typeof request.blockCount !== 'number'
    ) {
      throw new HornbillError('INVALID_ARGUMENT', 'an extents request is {layer, startBlock, blockCount}');
    }
    if (request.blockCount > MAX_IO_BLOCKS) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `extents are listed at most ${MAX_IO_BLOCKS} blocks at a time`,
      );
    }
    this.respond(
      sequence,
      Op.OK,
      encodeExtents(this.store.layerExtents(request.layer, request.startBlock, request.blockCount)),
    );
  }

  private readLayer(header: FrameHeader, payload: Buffer): void {
    const request = decodeJson(payload, 'layer read') as { layer?: unknown; packed?: unknown };
    if (typeof request?.layer !== 'string' || !isBlockAligned(header.offsetBytes, header.lengthBytes)) {
      throw new HornbillError('INVALID_ARGUMENT', 'a layer read names a layer and covers whole blocks');
    }
    this.requireIoLength(header);
    const startBlock = header.offsetBytes / BLOCK_SIZE;
    const blocks = header.lengthBytes / BLOCK_SIZE;
    if (request.packed === true) {
      this.readLayerPacked(header.sequence, request.layer, startBlock, blocks);
      return;
    }
    const frame = this.arena.take(FRAME_HEADER_BYTES + blocks * 4 + header.lengthBytes);
    this.store.readLayerBlocks(request.layer, startBlock, frame.subarray(FRAME_HEADER_BYTES + blocks * 4));
    let at = FRAME_HEADER_BYTES;
    for (const extent of this.store.layerExtents(request.layer, startBlock, blocks)) {
      for (const checksum of extent.checksums ?? []) {
        frame.writeUInt32LE(checksum, at);
        at += 4;
      }
    }
    this.writeFrame(frame, header.sequence, Op.OK, blocks * 4 + header.lengthBytes);
  }

  /**
   * A packed layer read: the range's data blocks only, one after another in block order
   * (their checksums, then their data), whatever holes lie between them — a fragmented
   * layer is read in one request, not one per run of data.
   */
  private readLayerPacked(sequence: number, layer: string, startBlock: number, blocks: number): void {
    const extents = this.store.layerExtents(layer, startBlock, blocks);
    let dataBlocks = 0;
    for (const extent of extents) if (extent.state === 'data') dataBlocks += extent.blockCount;
    const frame = this.arena.take(FRAME_HEADER_BYTES + dataBlocks * (4 + BLOCK_SIZE));
    let checksumAt = FRAME_HEADER_BYTES;
    let dataAt = FRAME_HEADER_BYTES + dataBlocks * 4;
    for (const extent of extents) {
      if (extent.state !== 'data') continue;
      const length = extent.blockCount * BLOCK_SIZE;
      this.store.readLayerBlocks(layer, extent.startBlock, frame.subarray(dataAt, dataAt + length));
      dataAt += length;
      for (const checksum of extent.checksums ?? []) {
        frame.writeUInt32LE(checksum, checksumAt);
        checksumAt += 4;
      }
    }
    this.writeFrame(frame, sequence, Op.OK, dataBlocks * (4 + BLOCK_SIZE));
  }

  private writeLayer(header: FrameHeader, payload: Buffer): void {
    if (!isBlockAligned(header.offsetBytes, header.lengthBytes)) {
      throw new HornbillError('INVALID_ARGUMENT', 'a layer write covers whole blocks');
    }
    this.requireIoLength(header);
    const startBlock = header.offsetBytes / BLOCK_SIZE;
    applyLayerWrite(this.store, startBlock, decodeLayerWrite(payload, header.lengthBytes / BLOCK_SIZE));
    this.respond(header.sequence, Op.OK, null);
  }

  private respond(sequence: number, op: OpValue, payload: Buffer | null): void {
    if (this.closed) return;
    const frame = this.arena.take(FRAME_HEADER_BYTES);
    encodeHeader(frame, 0, {
      op,
      sequence,
      offsetBytes: 0,
      lengthBytes: 0,
      payloadLength: payload?.length ?? 0,
      flags: 0,
    });
    this.socket.write(frame);
    if (payload !== null && payload.length > 0) this.socket.write(payload);
  }

  private respondError(sequence: number, error: unknown): void {
    if (!isHornbillError(error)) {
      this.log('error', 'replica request failed unexpectedly', {
        error: (error as Error)?.stack ?? String(error),
      });
    }
    this.respond(sequence, Op.ERROR, encodeError(error));
  }

  /** Sends a frame whose header space (32 bytes) leads `frame`. */
  private writeFrame(frame: Buffer, sequence: number, op: OpValue, payloadLength: number): void {
    if (this.closed) return;
    encodeHeader(frame, 0, { op, sequence, offsetBytes: 0, lengthBytes: 0, payloadLength, flags: 0 });
    this.socket.write(frame);
  }
}
