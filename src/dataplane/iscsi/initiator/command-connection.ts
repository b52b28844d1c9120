/**
 * The base of the initiator connection: its state and lifecycle (deadlines, failure, closing)
 * and the SCSI command pipeline — pooled commands matched by ITT, the CmdSN window, waiting
 * commands, immediate / unsolicited / R2T-solicited Data-Out.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { HornbillError } from '../../../errors.ts';
import { Flag, Opcode, PduHeader, RESERVED_TAG, serialLessThan } from '../pdu.ts';
import { PduReceiver, type ReceiveErrorKind, type ReceiverHandler } from '../receiver.ts';
import { PduSender } from '../sender.ts';
import type { CommandCallback, IscsiInitiatorOptions } from './connection-options.ts';
import { defaultNegotiated, type NegotiatedParameters } from './login.ts';
import { ScsiResult } from './scsi-request.ts';

/** Commands waiting for a slot, at most (a caller that ignores queueDepth gets an error past this). */
const MAX_WAITING_COMMANDS = 4096;

class Pending {
  readonly result = new ScsiResult();
  readonly cdb = Buffer.alloc(16);
  cdbLength = 0;
  initiatorTaskTag = 0;
  dataOut: Buffer | null = null;
  dataIn: Buffer | null = null;
  callback: CommandCallback | null = null;
  deadlineMs = 0;
  active = false;
}

interface Waiting {
  cdb: Buffer;
  cdbLength: number;
  dataOut: Buffer | null;
  dataIn: Buffer | null;
  callback: CommandCallback;
}

interface ControlWaiter {
  opcode: number;
  resolve: (answer: { header: PduHeader; data: Buffer }) => void;
  reject: (error: HornbillError) => void;
  deadlineMs: number;
}

/**
 * State, lifecycle and SCSI commands of `InitiatorConnection`; `ControlConnection` adds login,
 * text and logout, `InitiatorConnection` the receiving side.
 */
export abstract class CommandConnection implements ReceiverHandler {
  readonly lun: number;
  negotiated: NegotiatedParameters = defaultNegotiated();
  readonly queueDepth: number;
  protected readonly socket: net.Socket;
  protected readonly options: IscsiInitiatorOptions;
  protected readonly receiver: PduReceiver;
  protected readonly sender: PduSender;
  protected readonly header = new PduHeader();
  protected readonly isid = randomBytes(6);
  protected tsih = 0;
  protected cmdSN = 1;
  protected expStatSN = 0;
  protected maxCmdSN = 1;
  private nextTag = 1;
  private readonly pool: Pending[] = [];
  protected readonly inFlight = new Map<number, Pending>();
  private readonly waiting: Waiting[] = [];
  protected controlWaiter: ControlWaiter | null = null;
  protected closedError: HornbillError | null = null;
  private readonly timer: NodeJS.Timeout;
  protected readonly timeoutMs: number;

  protected constructor(socket: net.Socket, options: IscsiInitiatorOptions) {
    this.socket = socket;
    this.options = options;
    this.lun = options.lun ?? 0;
    this.queueDepth = options.queueDepth ?? 32;
    this.timeoutMs = options.timeoutMs ?? 30000;
    this.isid[0] = 0x80; // ISID type "random" (RFC 7143 §11.12.5)
    this.isid[1] = 0;
    for (let index = 0; index < this.queueDepth; index++) this.pool.push(new Pending());
    this.receiver = new PduReceiver(this, Math.max(options.maxRecvDataSegmentLength ?? 262144, 8192));
    this.sender = new PduSender(socket);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receiver.push(chunk));
    socket.on('error', (error) => this.fail(new HornbillError('ISCSI_CONNECTION_CLOSED', error.message)));
    socket.on('close', () =>
      this.fail(new HornbillError('ISCSI_CONNECTION_CLOSED', 'the connection closed')),
    );
    this.timer = setInterval(() => this.checkDeadlines(), 1000);
    this.timer.unref();
  }

  get isClosed(): boolean {
    return this.closedError !== null;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  /** Drops the connection without logging out (what a crashed initiator looks like). */
  destroy(): void {
    this.fail(new HornbillError('ISCSI_CONNECTION_CLOSED', 'the initiator closed the connection'));
    this.socket.destroy();
  }

  // ---- SCSI commands -----------------------------------------------------------------------

  /**
   * Sends one SCSI command. `dataIn` receives data-in (its length is the expected transfer);
   * `dataOut` is sent. The callback gets a pooled result, valid until the callback returns.
   */
  command(
    cdb: Buffer,
    cdbLength: number,
    dataOut: Buffer | null,
    dataIn: Buffer | null,
    callback: CommandCallback,
  ): void {
    if (this.closedError !== null) {
      const result = new ScsiResult();
      queueMicrotask(() => callback(this.closedError, result));
      return;
    }
    const pending = this.pool.pop();
    if (pending === undefined || !this.windowOpen()) {
      if (pending !== undefined) this.pool.push(pending);
      if (this.waiting.length >= MAX_WAITING_COMMANDS) {
        throw new HornbillError('INVALID_ARGUMENT', `more than ${MAX_WAITING_COMMANDS} commands queued`);
      }
      this.waiting.push({
        cdb: Buffer.from(cdb.subarray(0, cdbLength)),
        cdbLength,
        dataOut,
        dataIn,
        callback,
      });
      return;
    }
    cdb.copy(pending.cdb, 0, 0, cdbLength);
    pending.cdb.fill(0, cdbLength);
    this.start(pending, cdbLength, dataOut, dataIn, callback);
  }

  /** Promise form of `command` (the result is a detached copy). */
  commandAsync(
    cdb: Buffer,
    cdbLength: number,
    dataOut: Buffer | null,
    dataIn: Buffer | null,
  ): Promise<ScsiResult> {
    return new Promise((resolve, reject) => {
      this.command(cdb, cdbLength, dataOut, dataIn, (error, result) => {
        if (error !== null) reject(error);
        else resolve(result.clone());
      });
    });
  }

  private windowOpen(): boolean {
    return !serialLessThan(this.maxCmdSN, this.cmdSN);
  }

  private start(
    pending: Pending,
    cdbLength: number,
    dataOut: Buffer | null,
    dataIn: Buffer | null,
    callback: CommandCallback,
  ): void {
    const negotiated = this.negotiated;
    pending.cdbLength = cdbLength;
    pending.dataOut = dataOut;
    pending.dataIn = dataIn;
    pending.callback = callback;
    pending.result.reset();
    pending.initiatorTaskTag = this.takeTag();
    pending.deadlineMs = Date.now() + this.timeoutMs;
    pending.active = true;
    this.inFlight.set(pending.initiatorTaskTag, pending);
    const outBytes = dataOut?.length ?? 0;
    const firstBurst = Math.min(outBytes, negotiated.firstBurstLength);
    const immediateBytes = negotiated.immediateData
      ? Math.min(firstBurst, negotiated.targetMaxRecvDataSegmentLength)
      : 0;
    const unsolicitedEnd = negotiated.initialR2T ? immediateBytes : firstBurst;
    const header = this.header.clear();
    header.opcode = Opcode.SCSI_COMMAND;
    header.flags =
      (unsolicitedEnd > immediateBytes ? 0 : Flag.FINAL) |
      (dataIn !== null ? Flag.READ : 0) |
      (dataOut !== null ? Flag.WRITE : 0) |
      0x01; // task attribute SIMPLE
    header.lun = this.lun;
    header.initiatorTaskTag = pending.initiatorTaskTag;
    header.expectedDataTransferLength = dataOut !== null ? outBytes : (dataIn?.length ?? 0);
    header.cmdSN = this.cmdSN;
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    header.expStatSN = this.expStatSN;
    pending.cdb.copy(header.bytes, 32, 0, 16);
    this.sender.cork();
    this.sender.send(header, immediateBytes > 0 ? dataOut!.subarray(0, immediateBytes) : null);
    if (unsolicitedEnd > immediateBytes) {
      this.sendDataOut(pending, RESERVED_TAG, immediateBytes, unsolicitedEnd - immediateBytes);
    }
    this.sender.uncork();
  }

  protected sendDataOut(pending: Pending, transferTag: number, offset: number, length: number): void {
    const dataOut = pending.dataOut!;
    const segmentBytes = this.negotiated.targetMaxRecvDataSegmentLength;
    let dataSN = 0;
    for (let position = offset; position < offset + length; ) {
      const bytes = Math.min(segmentBytes, offset + length - position);
      const header = this.header.clear();
      header.opcode = Opcode.DATA_OUT;
      header.flags = position + bytes === offset + length ? Flag.FINAL : 0;
      header.lun = this.lun;
      header.initiatorTaskTag = pending.initiatorTaskTag;
      header.targetTransferTag = transferTag;
      header.expStatSN = this.expStatSN;
      header.dataSN = dataSN++;
      header.bufferOffset = position;
      this.sender.send(header, dataOut.subarray(position, position + bytes));
      position += bytes;
    }
  }

  protected finish(pending: Pending, error: HornbillError | null): void {
    if (!pending.active) return;
    pending.active = false;
    this.inFlight.delete(pending.initiatorTaskTag);
    const callback = pending.callback!;
    pending.callback = null;
    pending.dataIn = null;
    pending.dataOut = null;
    try {
      callback(error, pending.result);
    } finally {
      this.pool.push(pending);
      this.startWaiting();
    }
  }

  protected startWaiting(): void {
    while (
      this.waiting.length > 0 &&
      this.pool.length > 0 &&
      this.windowOpen() &&
      this.closedError === null
    ) {
      const next = this.waiting.shift()!;
      const pending = this.pool.pop()!;
      next.cdb.copy(pending.cdb, 0, 0, next.cdbLength);
      pending.cdb.fill(0, next.cdbLength);
      this.start(pending, next.cdbLength, next.dataOut, next.dataIn, next.callback);
    }
  }

  // ---- receiving (InitiatorConnection) -------------------------------------------------------

  abstract headerReceived(header: PduHeader): boolean;

  abstract pduReceived(header: PduHeader, data: Buffer | null): boolean;

  abstract receiveError(kind: ReceiveErrorKind, header: PduHeader, reason: string): void;

  // ---- tags, deadlines, failure --------------------------------------------------------------

  protected takeTag(): number {
    const tag = this.nextTag;
    this.nextTag = this.nextTag >= 0x7fffffff ? 1 : this.nextTag + 1;
    return tag;
  }

  private checkDeadlines(): void {
    const now = Date.now();
    let late = this.controlWaiter !== null && this.controlWaiter.deadlineMs < now;
    for (const pending of this.inFlight.values()) if (pending.deadlineMs < now) late = true;
    if (!late) return;
    this.fail(new HornbillError('ISCSI_TIMEOUT', `no answer from the target within ${this.timeoutMs} ms`));
    this.socket.destroy();
  }

  protected protocolFailure(reason: string): void {
    this.fail(new HornbillError('ISCSI_PROTOCOL_ERROR', reason));
    this.socket.destroy();
  }

  /** Fails everything outstanding; the initiator is unusable afterwards. */
  protected fail(error: HornbillError): void {
    if (this.closedError !== null) return;
    this.closedError = error;
    clearInterval(this.timer);
    this.receiver.stop();
    const waiter = this.controlWaiter;
    this.controlWaiter = null;
    waiter?.reject(error);
    for (const pending of [...this.inFlight.values()]) this.finish(pending, error);
    const waiting = this.waiting.splice(0);
    for (const entry of waiting) entry.callback(error, new ScsiResult());
  }
}
