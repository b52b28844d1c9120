import type { Socket } from 'node:net';
import { assert } from '../../assert.ts';
import { Handshake, type HandshakeHost, type OptionOutcome } from './handshake.ts';
import type { NbdLogger } from './logger.ts';
import type { NbdExport } from './nbd-export.ts';
import type { PayloadPool, PayloadWaiter } from './payload-pool.ts';
import {
  CLIENT_FLAGS_BYTES,
  ClientFlag,
  GREETING_BYTES,
  HandshakeFlag,
  INIT_MAGIC,
  KNOWN_CLIENT_FLAGS,
  OPTION_DATA_LIMIT_BYTES,
  OPTION_HEADER_BYTES,
  OPTION_MAGIC,
  OPTIONS_PER_HANDSHAKE_LIMIT,
  Option,
  REQUEST_BYTES,
  SKIPPED_OPTION_BYTES_LIMIT,
} from './protocol.ts';
import { Next, type NextValue, Transmission } from './transmission.ts';

/** What a connection needs from its server. */
export interface ConnectionHost extends HandshakeHost {
  readonly pool: PayloadPool;
  readonly log: NbdLogger;
  readonly maxInFlightPerConnection: number;
  readonly closeGraceMs: number;
  /** How long requests in flight may take once the connection is being ended. */
  readonly drainTimeoutMs: number;
  /** The handshake chose `entry`: the connection now belongs to it (removeExport drains it). */
  attached(connection: NbdConnection, entry: NbdExport): void;
  /** The client broke the protocol (counted in the server's stats). */
  violated(connection: NbdConnection, reason: string): void;
  closed(connection: NbdConnection): void;
}

/** What the reader does with the next bytes. */
const Read = {
  CLIENT_FLAGS: 0,
  OPTION_HEADER: 1,
  OPTION_DATA: 2,
  /** Discard an oversized option, then refuse it. */
  OPTION_SKIP: 3,
  REQUEST_HEADER: 4,
  PAYLOAD: 5,
  /** Discard the payload of a refused WRITE. */
  PAYLOAD_SKIP: 6,
  /** Blocked until the pool has a buffer for the current request. */
  WAIT_BUFFER: 7,
  /** Discard everything (after DISC, ABORT, EOF, a violation). */
  IGNORE: 8,
} as const;
type ReadValue = (typeof Read)[keyof typeof Read];

const GREETING = (() => {
  const greeting = Buffer.alloc(GREETING_BYTES);
  greeting.writeBigUInt64BE(INIT_MAGIC, 0);
  greeting.writeBigUInt64BE(OPTION_MAGIC, 8);
  greeting.writeUInt16BE(HandshakeFlag.FIXED_NEWSTYLE | HandshakeFlag.NO_ZEROES, 16);
  return greeting;
})();
const OPTION_MAGIC_HIGH = Number(OPTION_MAGIC >> 32n);
const OPTION_MAGIC_LOW = Number(OPTION_MAGIC & 0xffffffffn);
const EMPTY = Buffer.alloc(0);

let nextConnectionId = 1;

/**
 * One client connection: greets, runs the handshake, then the transmission phase. Bytes are
 * parsed as they arrive with no buffering beyond one reused 28-byte header buffer and the
 * payload buffer of the request being received. When every request slot is taken or the
 * payload pool is exhausted, the rest of the current chunk is kept and the socket paused:
 * back-pressure reaches the client through TCP.
 */
export class NbdConnection implements PayloadWaiter {
  readonly id = nextConnectionId++;
  readonly socket: Socket;
  readonly remote: string;
  private readonly host: ConnectionHost;
  private readState: ReadValue = Read.CLIENT_FLAGS;
  private readonly header = Buffer.alloc(REQUEST_BYTES);
  private headerFill = 0;
  private optionCode = 0;
  private optionData: Buffer = EMPTY;
  private optionFill = 0;
  private skipRemaining = 0;
  private payloadFill = 0;
  private optionsSeen = 0;
  private skippedOptionBytes = 0;
  private handshake: Handshake | null = null;
  private transmission: Transmission | null = null;
  /** Unread rest of a chunk while blocked, and chunks that came while it was kept. */
  private keptChunk: Buffer | null = null;
  private keptPosition = 0;
  private readonly laterChunks: Buffer[] = [];
  private consuming = false;
  /** The client half-closed: once kept input is consumed, no more bytes come. */
  private inputEnded = false;
  /** End the socket as soon as no request is in flight. */
  private finishing = false;
  private ended = false;
  private isClosed = false;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private graceTimer: NodeJS.Timeout | null = null;

  constructor(socket: Socket, host: ConnectionHost, handshakeTimeoutMs: number) {
    this.socket = socket;
    this.host = host;
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    // A deadline, not an idle timeout: a client trickling bytes cannot hold a handshake open.
    this.handshakeTimer = setTimeout(
      () => this.violation('handshake not finished in time'),
      handshakeTimeoutMs,
    );
    this.handshakeTimer.unref();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (error) =>
      this.host.log('info', 'NBD socket error', { ...this.context(), error: error.message }),
    );
    socket.on('close', () => this.onClose());
    socket.write(GREETING);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  get inFlight(): number {
    return this.transmission?.inFlight ?? 0;
  }

  get exportName(): string | null {
    return this.transmission?.entry.name ?? null;
  }

  /**
   * The export or the server goes away: a client in the handshake is disconnected; one in
   * transmission gets ESHUTDOWN for new requests, its in-flight requests finish, then the
   * connection ends. After `drainTimeoutMs` the socket is destroyed regardless.
   */
  shutDown(drainTimeoutMs: number): void {
    if (this.isClosed) return;
    if (this.transmission === null) {
      this.readState = Read.IGNORE;
      this.endSocket();
      return;
    }
    this.transmission.shutDown();
    this.startDrainTimer(drainTimeoutMs);
    this.finishWhenIdle();
  }

  private startDrainTimer(drainTimeoutMs: number): void {
    if (this.drainTimer !== null || this.isClosed) return;
    this.drainTimer = setTimeout(() => {
      this.host.log('warn', 'NBD connection did not drain in time; destroyed', this.context());
      this.socket.destroy();
    }, drainTimeoutMs);
    this.drainTimer.unref();
  }

  /** Called by the pool when the buffer this connection waits for can be had. */
  onPayloadAvailable(): void {
    if (this.isClosed || this.readState !== Read.WAIT_BUFFER) return;
    this.apply(this.transmission!.resumeWaiting());
    if (!this.consuming) this.resumeInput();
  }

  // ---- input ----------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    if (this.keptChunk !== null) {
      this.laterChunks.push(chunk); // only if a chunk was already on its way when the socket paused
      this.socket.pause();
      return;
    }
    this.consume(chunk, 0);
  }

  private consume(chunk: Buffer, start: number): void {
    this.consuming = true;
    try {
      let position = start;
      while (position < chunk.length) {
        if (this.isBlocked()) {
          this.keptChunk = chunk;
          this.keptPosition = position;
          this.socket.pause();
          return;
        }
        position = this.step(chunk, position);
      }
    } finally {
      this.consuming = false;
    }
  }

  private isBlocked(): boolean {
    if (this.readState === Read.WAIT_BUFFER) return true;
    return (
      this.readState === Read.REQUEST_HEADER && this.headerFill === 0 && !this.transmission!.hasFreeSlot()
    );
  }

  /** Goes on with kept input after a slot or buffer became free. */
  private resumeInput(): void {
    if (this.isClosed || this.consuming) return;
    while (!this.isBlocked()) {
      const chunk = this.keptChunk ?? this.laterChunks.shift();
      if (chunk === undefined) {
        if (this.inputEnded) this.finishInput();
        else this.socket.resume();
        return;
      }
      const position = this.keptChunk === null ? 0 : this.keptPosition;
      this.keptChunk = null;
      this.consume(chunk, position);
      if (this.isClosed) return;
    }
  }

  /** Consumes bytes from `chunk` at `position` for the current read state; returns the new position. */
  private step(chunk: Buffer, position: number): number {
    const available = chunk.length - position;
    switch (this.readState) {
      case Read.CLIENT_FLAGS:
      case Read.OPTION_HEADER:
      case Read.REQUEST_HEADER: {
        const needed = this.headerBytesFor(this.readState) - this.headerFill;
        const count = Math.min(needed, available);
        chunk.copy(this.header, this.headerFill, position, position + count);
        this.headerFill += count;
        if (count === needed) {
          this.headerFill = 0;
          this.onHeader();
        }
        return position + count;
      }
      case Read.OPTION_DATA: {
        const count = Math.min(this.optionData.length - this.optionFill, available);
        chunk.copy(this.optionData, this.optionFill, position, position + count);
        this.optionFill += count;
        if (this.optionFill === this.optionData.length) this.onOption(this.optionCode, this.optionData);
        return position + count;
      }
      case Read.PAYLOAD: {
        const target = this.transmission!.payloadTarget;
        const count = Math.min(target.length - this.payloadFill, available);
        chunk.copy(target, this.payloadFill, position, position + count);
        this.payloadFill += count;
        if (this.payloadFill === target.length) {
          this.readState = Read.REQUEST_HEADER;
          this.transmission!.payloadReceived();
        }
        return position + count;
      }
      case Read.OPTION_SKIP:
      case Read.PAYLOAD_SKIP: {
        const count = Math.min(this.skipRemaining, available);
        this.skipRemaining -= count;
        if (this.skipRemaining === 0) {
          if (this.readState === Read.OPTION_SKIP) {
            this.onOption(this.optionCode, null);
          } else {
            this.readState = Read.REQUEST_HEADER;
          }
        }
        return position + count;
      }
      case Read.IGNORE:
        return chunk.length;
      default:
        assert(false, `no bytes are read in state ${this.readState}`);
    }
  }

  private headerBytesFor(state: ReadValue): number {
    if (state === Read.CLIENT_FLAGS) return CLIENT_FLAGS_BYTES;
    if (state === Read.OPTION_HEADER) return OPTION_HEADER_BYTES;
    return REQUEST_BYTES;
  }

  private onHeader(): void {
    const header = this.header;
    switch (this.readState) {
      case Read.CLIENT_FLAGS: {
        const flags = header.readUInt32BE(0);
        if ((flags & ~KNOWN_CLIENT_FLAGS) !== 0) {
          this.violation(`unknown client flags 0x${flags.toString(16)}`);
          return;
        }
        if ((flags & ClientFlag.FIXED_NEWSTYLE) === 0) {
          this.violation('client does not speak fixed newstyle negotiation');
          return;
        }
        this.handshake = new Handshake(this.host, {
          noZeroes: (flags & ClientFlag.NO_ZEROES) !== 0,
          write: (bytes) => this.socket.write(bytes),
        });
        this.readState = Read.OPTION_HEADER;
        return;
      }
      case Read.OPTION_HEADER:
        this.onOptionHeader();
        return;
      case Read.REQUEST_HEADER:
        this.apply(this.transmission!.begin(header));
        return;
      default:
        assert(false, `header in state ${this.readState}`);
    }
  }

  private onOptionHeader(): void {
    const header = this.header;
    if (header.readUInt32BE(0) !== OPTION_MAGIC_HIGH || header.readUInt32BE(4) !== OPTION_MAGIC_LOW) {
      this.violation('bad option magic');
      return;
    }
    const option = header.readUInt32BE(8);
    const length = header.readUInt32BE(12);
    if (++this.optionsSeen > OPTIONS_PER_HANDSHAKE_LIMIT) {
      this.violation(`more than ${OPTIONS_PER_HANDSHAKE_LIMIT} options in one handshake`);
      return;
    }
    this.optionCode = option;
    if (length > OPTION_DATA_LIMIT_BYTES) {
      // NBD_OPT_EXPORT_NAME has no error reply; anything else is skipped and refused.
      if (option === Option.EXPORT_NAME) {
        this.violation(`NBD_OPT_EXPORT_NAME of ${length} bytes`);
        return;
      }
      this.skippedOptionBytes += length;
      if (this.skippedOptionBytes > SKIPPED_OPTION_BYTES_LIMIT) {
        this.violation(`more than ${SKIPPED_OPTION_BYTES_LIMIT} bytes of oversized options`);
        return;
      }
      this.skipRemaining = length;
      this.readState = Read.OPTION_SKIP;
      return;
    }
    if (length === 0) {
      this.onOption(option, EMPTY);
      return;
    }
    this.optionData = Buffer.allocUnsafe(length);
    this.optionFill = 0;
    this.readState = Read.OPTION_DATA;
  }

  /** A whole option has arrived (`data` null: it was too long and has been skipped). */
  private onOption(option: number, data: Buffer | null): void {
    this.optionData = EMPTY;
    this.readState = Read.OPTION_HEADER;
    const handshake = this.handshake!;
    const outcome: OptionOutcome =
      data === null
        ? handshake.refuseTooBig(option, OPTION_DATA_LIMIT_BYTES)
        : handshake.handleOption(option, data);
    switch (outcome.kind) {
      case 'continue':
        return;
      case 'abort':
        this.readState = Read.IGNORE;
        this.endSocket();
        return;
      case 'disconnect':
        this.violation(outcome.reason);
        return;
      case 'transmission':
        this.handshake = null;
        this.clearHandshakeTimer();
        this.transmission = new Transmission({
          socket: this.socket,
          entry: outcome.entry,
          pool: this.host.pool,
          structuredReplies: outcome.structuredReplies,
          baseAllocation: outcome.baseAllocation,
          maxInFlight: this.host.maxInFlightPerConnection,
          log: this.host.log,
          logContext: { connection: this.id, remote: this.remote, export: outcome.entry.name },
          onSlotFreed: () => this.resumeInput(),
          onIdle: () => this.onIdle(),
        });
        this.readState = Read.REQUEST_HEADER;
        this.host.attached(this, outcome.entry);
        this.host.log('info', 'NBD client attached', this.context());
        return;
    }
  }

  /** Follows what the transmission says after a request header or a buffer wait. */
  private apply(next: NextValue): void {
    const transmission = this.transmission!;
    switch (next) {
      case Next.HEADER:
        this.readState = Read.REQUEST_HEADER;
        return;
      case Next.PAYLOAD:
        this.payloadFill = 0;
        this.readState = Read.PAYLOAD;
        return;
      case Next.SKIP:
        this.skipRemaining = transmission.skipBytes;
        this.readState = Read.PAYLOAD_SKIP;
        return;
      case Next.WAIT_BUFFER:
        this.readState = Read.WAIT_BUFFER;
        this.host.pool.waitFor(transmission.pendingBufferBytes, this);
        return;
      case Next.STOP:
        if (transmission.violation !== '') {
          this.violation(transmission.violation);
          return;
        }
        this.finishInput(); // NBD_CMD_DISC
        return;
      case Next.VIOLATION:
        this.violation(transmission.violation);
        return;
    }
  }

  // ---- ending ---------------------------------------------------------------------------

  private onEnd(): void {
    // The client half-closed: consume what it sent, answer it, then end our side.
    this.inputEnded = true;
    if (this.keptChunk === null && this.laterChunks.length === 0) this.finishInput();
  }

  /** No more bytes will come: a request still missing its payload or buffer is dropped. */
  private finishInput(): void {
    this.readState = Read.IGNORE;
    this.host.pool.cancelWait(this);
    this.transmission?.abandonCurrent();
    this.finishWhenIdle();
  }

  private onIdle(): void {
    if (this.finishing) this.endSocket();
  }

  private finishWhenIdle(): void {
    this.finishing = true;
    if (this.inFlight === 0) this.endSocket();
  }

  /** Ends our side once queued replies are written; destroys the socket if the client lingers. */
  private endSocket(): void {
    if (this.ended || this.isClosed) return;
    this.ended = true;
    this.clearHandshakeTimer();
    this.readState = Read.IGNORE;
    this.keptChunk = null;
    this.laterChunks.length = 0;
    this.socket.end();
    this.socket.resume(); // keep reading (and discarding) so the client's close is seen
    this.graceTimer = setTimeout(() => this.socket.destroy(), this.host.closeGraceMs);
    this.graceTimer.unref();
  }

  /**
   * The client broke the protocol: nothing more is read; requests already in flight are
   * answered (bounded by the drain timeout), then the connection ends.
   */
  private violation(reason: string): void {
    this.clearHandshakeTimer();
    this.reportViolation(reason);
    this.finishInput();
    this.keptChunk = null;
    this.laterChunks.length = 0;
    this.socket.resume(); // discard what follows, so that the client's close is seen
    if (this.inFlight > 0) this.startDrainTimer(this.host.drainTimeoutMs);
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer === null) return;
    clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  private reportViolation(reason: string): void {
    this.host.violated(this, reason);
    this.host.log('warn', 'NBD client refused', { ...this.context(), reason });
  }

  private onClose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.readState = Read.IGNORE;
    this.keptChunk = null;
    this.laterChunks.length = 0;
    this.clearHandshakeTimer();
    if (this.drainTimer !== null) clearTimeout(this.drainTimer);
    if (this.graceTimer !== null) clearTimeout(this.graceTimer);
    this.host.pool.cancelWait(this);
    this.transmission?.connectionClosedNow();
    this.host.log('info', 'NBD connection closed', this.context());
    this.host.closed(this);
  }

  private context(): Record<string, unknown> {
    return { connection: this.id, remote: this.remote, export: this.exportName };
  }
}
