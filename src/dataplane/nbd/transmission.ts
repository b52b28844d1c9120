import type { Socket } from 'node:net';
import { assert } from '../../assert.ts';
import type { MappingRun } from '../block-device.ts';
import { TickCork } from '../tick-cork.ts';
import { errorMessageFor, isExpectedDeviceError, nbdErrorFor } from './error-mapping.ts';
import type { NbdLogger } from './logger.ts';
import type { NbdExport } from './nbd-export.ts';
import type { PayloadPool } from './payload-pool.ts';
import {
  AllocationState,
  BASE_ALLOCATION_CONTEXT_ID,
  BLOCK_STATUS_DESCRIPTORS_LIMIT,
  BLOCK_STATUS_RANGE_LIMIT_BYTES,
  Command,
  CommandFlag,
  MAXIMUM_PAYLOAD_BYTES,
  MINIMUM_BLOCK_BYTES,
  NbdErrno,
  REQUEST_MAGIC,
  ReplyType,
  STRING_LIMIT_BYTES,
  ZERO_RANGE_PIECE_BYTES,
} from './protocol.ts';
import { RequestSlot, type SlotOwner, SlotState } from './request-slot.ts';

/** What the connection's reader does after a request header (`Transmission.begin`). */
export const Next = {
  /** Read the next request header. */
  HEADER: 0,
  /** Copy `payloadTarget.length` payload bytes into `payloadTarget`, then call `payloadReceived`. */
  PAYLOAD: 1,
  /** Discard `skipBytes` payload bytes of a refused WRITE (its error reply is already queued). */
  SKIP: 2,
  /** Wait for the pool (`pendingBufferBytes`), then call `resumeWaiting`. */
  WAIT_BUFFER: 3,
  /** Read no more requests; end the connection once in-flight requests are answered. */
  STOP: 4,
  /** Hard disconnect now (`violation` says why). */
  VIOLATION: 5,
} as const;
export type NextValue = (typeof Next)[keyof typeof Next];

/** Zeros for WRITE_ZEROES with NO_HOLE; never written to. */
const ZEROS = Buffer.alloc(1024 * 1024);
const FUA = Object.freeze({ fua: true });
const BLOCK_STATUS_BUFFER_BYTES = 4 + 8 * BLOCK_STATUS_DESCRIPTORS_LIMIT;
/** Offsets are exact in a double below 2^53: the high word of a valid offset is below 2^21. */
const OFFSET_HIGH_LIMIT = 2 ** 21;

export interface TransmissionOptions {
  socket: Socket;
  entry: NbdExport;
  pool: PayloadPool;
  structuredReplies: boolean;
  baseAllocation: boolean;
  maxInFlight: number;
  log: NbdLogger;
  logContext: Record<string, unknown>;
  /** A slot was freed (reading may go on). */
  onSlotFreed: () => void;
  /** No request is in flight any more. */
  onIdle: () => void;
}

/**
 * The transmission phase of one connection: validates each request, runs it on the export's
 * device with up to `maxInFlight` requests at once, and answers each with a simple or
 * structured reply matched by handle, in completion order. Slots and their reply headers are
 * preallocated; payloads come from the shared pool and go back once their reply is written.
 */
export class Transmission implements SlotOwner {
  readonly entry: NbdExport;
  private readonly socket: Socket;
  /** Replies completed in one batch leave in one writev. */
  private readonly cork: TickCork;
  private readonly pool: PayloadPool;
  private readonly structuredReplies: boolean;
  private readonly baseAllocation: boolean;
  private readonly allowedFua: number;
  private readonly log: NbdLogger;
  private readonly logContext: Record<string, unknown>;
  private readonly onSlotFreed: () => void;
  private readonly onIdle: () => void;
  private readonly freeSlots: RequestSlot[] = [];
  private inFlightCount = 0;
  /** The export or the server is going away: new requests are answered ESHUTDOWN. */
  private shuttingDown = false;
  private connectionClosed = false;
  /** The slot whose WRITE payload is being received, or which waits for a buffer. */
  private current: RequestSlot | null = null;
  /** For Next.SKIP. */
  skipBytes = 0;
  /** For Next.VIOLATION. */
  violation = '';

  constructor(options: TransmissionOptions) {
    assert(
      Number.isSafeInteger(options.maxInFlight) && options.maxInFlight > 0,
      'maxInFlight must be positive',
    );
    this.socket = options.socket;
    this.cork = new TickCork(options.socket);
    this.entry = options.entry;
    this.pool = options.pool;
    this.structuredReplies = options.structuredReplies;
    this.baseAllocation = options.baseAllocation;
    this.allowedFua = options.entry.readOnly ? 0 : CommandFlag.FUA;
    this.log = options.log;
    this.logContext = options.logContext;
    this.onSlotFreed = options.onSlotFreed;
    this.onIdle = options.onIdle;
    for (let index = 0; index < options.maxInFlight; index++) this.freeSlots.push(new RequestSlot(this));
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  hasFreeSlot(): boolean {
    return this.freeSlots.length > 0;
  }

  /** Where a WRITE payload goes (Next.PAYLOAD). */
  get payloadTarget(): Buffer {
    assert(this.current !== null && this.current.view !== null, 'no payload expected');
    return this.current.view;
  }

  /** Bytes the waiting request needs from the pool (Next.WAIT_BUFFER). */
  get pendingBufferBytes(): number {
    assert(this.current !== null && this.current.state === SlotState.WAITING_BUFFER, 'no request waits');
    return bufferBytesFor(this.current);
  }

  /** From now on requests are answered ESHUTDOWN; those in flight complete normally. */
  shutDown(): void {
    this.shuttingDown = true;
  }

  /** A 28-byte request header has arrived; the caller made sure a slot is free. */
  begin(header: Buffer): NextValue {
    if (header.readUInt32BE(0) !== REQUEST_MAGIC) {
      this.violation = `bad request magic 0x${header.readUInt32BE(0).toString(16)}`;
      return Next.VIOLATION;
    }
    const slot = this.freeSlots.pop();
    assert(slot !== undefined && slot.state === SlotState.FREE, 'begin without a free slot');
    this.inFlightCount++;
    slot.decode(header);
    if (slot.command === Command.DISC) {
      this.freeSlot(slot);
      return Next.STOP;
    }
    const error = this.validate(slot);
    if (slot.command === Command.WRITE) {
      if (error !== 0) {
        this.replyError(slot, error, null);
        if (slot.lengthBytes > MAXIMUM_PAYLOAD_BYTES) {
          this.violation = `WRITE of ${slot.lengthBytes} bytes, beyond the ${MAXIMUM_PAYLOAD_BYTES}-byte maximum`;
          return Next.STOP;
        }
        this.skipBytes = slot.lengthBytes;
        return slot.lengthBytes === 0 ? Next.HEADER : Next.SKIP;
      }
    } else if (error !== 0) {
      this.replyError(slot, error, null);
      return Next.HEADER;
    }
    if (bufferBytesFor(slot) === 0) {
      this.dispatch(slot);
      return Next.HEADER;
    }
    slot.state = SlotState.WAITING_BUFFER;
    this.current = slot;
    return this.resumeWaiting();
  }

  /** Tries to get the current request's buffer; goes on with it when there is one. */
  resumeWaiting(): NextValue {
    const slot = this.current;
    assert(slot !== null && slot.state === SlotState.WAITING_BUFFER, 'no request waits for a buffer');
    const bytes = bufferBytesFor(slot);
    const buffer = this.pool.acquire(bytes);
    if (buffer === null) return Next.WAIT_BUFFER;
    slot.buffer = buffer;
    slot.view =
      slot.command === Command.BLOCK_STATUS || buffer.length === bytes ? buffer : buffer.subarray(0, bytes);
    if (slot.command === Command.WRITE) {
      slot.state = SlotState.RECEIVING;
      return Next.PAYLOAD;
    }
    this.current = null;
    this.dispatch(slot);
    return Next.HEADER;
  }

  /** The WRITE payload is complete. */
  payloadReceived(): void {
    const slot = this.current;
    assert(slot !== null && slot.state === SlotState.RECEIVING, 'no payload was being received');
    this.current = null;
    this.dispatch(slot);
  }

  /** The socket closed: nothing more is written; slots not held by the device are freed now. */
  connectionClosedNow(): void {
    this.connectionClosed = true;
    this.abandonCurrent();
  }

  /** Drops the request whose payload or buffer has not come (the input ended). */
  abandonCurrent(): void {
    const slot = this.current;
    if (slot === null) return;
    this.current = null;
    this.freeSlot(slot);
  }

  // ---- validation and dispatch ----------------------------------------------------------

  /** 0 if the request may run, or the NBD error to answer it with. */
  private validate(slot: RequestSlot): number {
    const { command, flags, lengthBytes } = slot;
    let allowedFlags: number;
    switch (command) {
      case Command.READ:
        allowedFlags = this.allowedFua | (this.structuredReplies ? CommandFlag.DF : 0);
        break;
      case Command.WRITE:
      case Command.FLUSH:
      case Command.TRIM:
        allowedFlags = this.allowedFua;
        break;
      case Command.WRITE_ZEROES:
        allowedFlags = this.allowedFua | CommandFlag.NO_HOLE | CommandFlag.FAST_ZERO;
        break;
      case Command.BLOCK_STATUS:
        allowedFlags = this.allowedFua | CommandFlag.REQ_ONE;
        break;
      default:
        return NbdErrno.EINVAL; // unknown command (NBD_CMD_CACHE is not advertised either)
    }
    if ((flags & ~allowedFlags) !== 0) return NbdErrno.EINVAL;
    if (this.shuttingDown) return NbdErrno.ESHUTDOWN;
    const writes = command === Command.WRITE || command === Command.TRIM || command === Command.WRITE_ZEROES;
    if (writes && this.entry.readOnly) return NbdErrno.EPERM;
    if (command === Command.FLUSH) return slot.offsetBytes === 0 && lengthBytes === 0 ? 0 : NbdErrno.EINVAL;
    if (lengthBytes > MAXIMUM_PAYLOAD_BYTES && command !== Command.TRIM && command !== Command.BLOCK_STATUS) {
      return NbdErrno.EINVAL;
    }
    if (slot.offsetBytes % MINIMUM_BLOCK_BYTES !== 0 || lengthBytes % MINIMUM_BLOCK_BYTES !== 0) {
      return NbdErrno.EINVAL;
    }
    if (
      slot.offsetHigh >= OFFSET_HIGH_LIMIT ||
      slot.offsetBytes + lengthBytes > this.entry.device.sizeBytes
    ) {
      // The protocol asks for ENOSPC on writes beyond the end and EINVAL on everything else.
      return command === Command.WRITE || command === Command.WRITE_ZEROES
        ? NbdErrno.ENOSPC
        : NbdErrno.EINVAL;
    }
    if (command === Command.BLOCK_STATUS && (!this.baseAllocation || lengthBytes === 0))
      return NbdErrno.EINVAL;
    const fastZeroWithNoHole = CommandFlag.FAST_ZERO | CommandFlag.NO_HOLE;
    if (command === Command.WRITE_ZEROES && (flags & fastZeroWithNoHole) === fastZeroWithNoHole) {
      return NbdErrno.ENOTSUP; // writing real zeros is no faster than a WRITE
    }
    return 0;
  }

  private dispatch(slot: RequestSlot): void {
    slot.state = SlotState.DEVICE;
    const device = this.entry.device;
    const fua = (slot.flags & CommandFlag.FUA) !== 0;
    let pending: Promise<unknown>;
    try {
      switch (slot.command) {
        case Command.READ:
          if (slot.lengthBytes === 0) {
            this.deviceDone(slot);
            return;
          }
          pending = device.read(slot.offsetBytes, slot.view!);
          break;
        case Command.WRITE:
          if (slot.lengthBytes === 0) {
            this.deviceDone(slot);
            return;
          }
          pending = device.write(slot.offsetBytes, slot.view!, fua ? FUA : undefined);
          break;
        case Command.FLUSH:
          pending = device.flush();
          break;
        case Command.TRIM:
          pending = this.zeroRange(slot, false, fua);
          break;
        case Command.WRITE_ZEROES:
          pending = this.zeroRange(slot, (slot.flags & CommandFlag.NO_HOLE) !== 0, fua);
          break;
        case Command.BLOCK_STATUS:
          device
            .mappingStatus(slot.offsetBytes, Math.min(slot.lengthBytes, BLOCK_STATUS_RANGE_LIMIT_BYTES))
            .then(slot.onStatus, slot.onDeviceFailed);
          return;
        default:
          assert(false, `dispatch of unvalidated command ${slot.command}`);
      }
    } catch (error) {
      this.deviceFailed(slot, error); // a device that throws instead of rejecting
      return;
    }
    pending.then(slot.onDeviceDone, slot.onDeviceFailed);
  }

  /** TRIM (holes) and WRITE_ZEROES (holes, or real zeros with NO_HOLE), in bounded pieces. */
  private async zeroRange(slot: RequestSlot, provision: boolean, fua: boolean): Promise<void> {
    const device = this.entry.device;
    const end = slot.offsetBytes + slot.lengthBytes;
    const pieceLimit = provision ? ZEROS.length : ZERO_RANGE_PIECE_BYTES;
    for (let position = slot.offsetBytes; position < end; ) {
      const length = Math.min(pieceLimit, end - position);
      if (provision)
        await device.write(position, length === ZEROS.length ? ZEROS : ZEROS.subarray(0, length));
      else await device.unmap(position, length);
      position += length;
    }
    if (fua && slot.lengthBytes > 0) await device.flush();
  }

  // ---- completions and replies ----------------------------------------------------------

  deviceDone(slot: RequestSlot): void {
    assert(slot.state === SlotState.DEVICE, 'device completion for a slot not at the device');
    if (this.connectionClosed) {
      this.freeSlot(slot);
      return;
    }
    slot.state = SlotState.REPLYING;
    const socket = this.socket;
    this.cork.hold();
    if (slot.command !== Command.READ) {
      socket.write(slot.encodeSimpleReply(0), slot.onWritten);
      return;
    }
    if (!this.structuredReplies) {
      if (slot.lengthBytes === 0) {
        socket.write(slot.encodeSimpleReply(0), slot.onWritten);
        return;
      }
      socket.cork();
      socket.write(slot.encodeSimpleReply(0));
      socket.write(slot.view!, slot.onWritten);
      socket.uncork();
      return;
    }
    if (slot.lengthBytes === 0) {
      socket.write(slot.encodeChunkHeader(ReplyType.NONE, 0), slot.onWritten);
      return;
    }
    socket.cork();
    socket.write(slot.encodeDataChunkHeader());
    socket.write(slot.view!, slot.onWritten);
    socket.uncork();
  }

  deviceFailed(slot: RequestSlot, error: unknown): void {
    assert(slot.state === SlotState.DEVICE, 'device failure for a slot not at the device');
    const nbdError = nbdErrorFor(error);
    const level = isExpectedDeviceError(error) ? 'warn' : 'error';
    this.log(level, 'NBD request failed on the device', {
      ...this.logContext,
      command: slot.command,
      offsetBytes: slot.offsetBytes,
      lengthBytes: slot.lengthBytes,
      nbdError,
      error: error instanceof Error ? error.message : String(error),
      code: (error as { code?: unknown } | null)?.code,
    });
    if (this.connectionClosed) {
      this.freeSlot(slot);
      return;
    }
    this.cork.hold();
    this.replyError(slot, nbdError, error);
  }

  statusDone(slot: RequestSlot, runs: MappingRun[]): void {
    assert(slot.state === SlotState.DEVICE, 'status completion for a slot not at the device');
    if (this.connectionClosed) {
      this.freeSlot(slot);
      return;
    }
    const target = slot.buffer!;
    const limit = (slot.flags & CommandFlag.REQ_ONE) !== 0 ? 1 : BLOCK_STATUS_DESCRIPTORS_LIMIT;
    target.writeUInt32BE(BASE_ALLOCATION_CONTEXT_ID, 0);
    let count = 0;
    let expectedOffset = slot.offsetBytes;
    const end = slot.offsetBytes + slot.lengthBytes;
    for (const run of runs) {
      if (count === limit) break;
      const valid =
        run.offsetBytes === expectedOffset &&
        run.lengthBytes > 0 &&
        run.lengthBytes % MINIMUM_BLOCK_BYTES === 0 &&
        run.offsetBytes + run.lengthBytes <= end;
      if (!valid) {
        this.deviceFailed(slot, new Error(`device returned an invalid mapping run at ${run.offsetBytes}`));
        return;
      }
      target.writeUInt32BE(run.lengthBytes, 4 + 8 * count);
      target.writeUInt32BE(run.mapped ? 0 : AllocationState.HOLE | AllocationState.ZERO, 8 + 8 * count);
      expectedOffset += run.lengthBytes;
      count++;
    }
    if (count === 0) {
      this.deviceFailed(slot, new Error('device returned no mapping run'));
      return;
    }
    const payloadBytes = 4 + 8 * count;
    slot.state = SlotState.REPLYING;
    this.socket.cork();
    this.socket.write(slot.encodeChunkHeader(ReplyType.BLOCK_STATUS, payloadBytes));
    this.socket.write(target.subarray(0, payloadBytes), slot.onWritten);
    this.socket.uncork();
  }

  replyWritten(slot: RequestSlot, error: Error | null | undefined): void {
    assert(slot.state === SlotState.REPLYING, 'write callback for a slot not replying');
    if (error && !this.connectionClosed) {
      this.log('info', 'NBD reply could not be written', { ...this.logContext, error: error.message });
    }
    this.freeSlot(slot);
  }

  /** Answers `slot` with `nbdError`: a simple reply, or an error chunk with a message when structured. */
  private replyError(slot: RequestSlot, nbdError: number, cause: unknown): void {
    slot.state = SlotState.REPLYING;
    if (!this.structuredReplies) {
      this.socket.write(slot.encodeSimpleReply(nbdError), slot.onWritten);
      return;
    }
    const message = cause === null ? errorText(nbdError) : errorMessageFor(cause, STRING_LIMIT_BYTES);
    const payload = Buffer.alloc(6 + message.length);
    payload.writeUInt32BE(nbdError, 0);
    payload.writeUInt16BE(message.length, 4);
    message.copy(payload, 6);
    this.socket.cork();
    this.socket.write(slot.encodeChunkHeader(ReplyType.ERROR, payload.length));
    this.socket.write(payload, slot.onWritten);
    this.socket.uncork();
  }

  private freeSlot(slot: RequestSlot): void {
    if (slot.buffer !== null) this.pool.release(slot.buffer);
    slot.reset();
    this.freeSlots.push(slot);
    this.inFlightCount--;
    assert(this.inFlightCount >= 0, 'negative in-flight count');
    this.onSlotFreed();
    if (this.inFlightCount === 0) this.onIdle();
  }
}

/** Pool bytes a request needs: its payload for READ and WRITE, the descriptor list for BLOCK_STATUS. */
function bufferBytesFor(slot: RequestSlot): number {
  switch (slot.command) {
    case Command.READ:
    case Command.WRITE:
      return slot.lengthBytes;
    case Command.BLOCK_STATUS:
      return BLOCK_STATUS_BUFFER_BYTES;
    default:
      return 0;
  }
}

const ERROR_TEXTS = new Map<number, Buffer>([
  [
    NbdErrno.EINVAL,
    Buffer.from('invalid request: unknown command or flag, unaligned, too long or beyond the end'),
  ],
  [NbdErrno.ENOSPC, Buffer.from('write beyond the end of the export')],
  [NbdErrno.EPERM, Buffer.from('the export is read-only')],
  [NbdErrno.ESHUTDOWN, Buffer.from('the export is shutting down; disconnect')],
  [NbdErrno.ENOTSUP, Buffer.from('zeroing with NO_HOLE is not faster than writing')],
]);

function errorText(nbdError: number): Buffer {
  return ERROR_TEXTS.get(nbdError) ?? Buffer.alloc(0);
}
