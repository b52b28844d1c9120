import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { HornbillError } from '../../../errors.ts';
import type { ChapCredentials } from '../chap.ts';
import { Flag, Opcode, opcodeName, PduHeader, RESERVED_TAG, serialLessThan } from '../pdu.ts';
import { PduReceiver, type ReceiveErrorKind, type ReceiverHandler } from '../receiver.ts';
import { PduSender } from '../sender.ts';
import { encodeTextKeys, parseTextKeys, type TextPairs } from '../text.ts';
import {
  applyOperationalAnswers,
  defaultNegotiated,
  InitiatorChap,
  type InitiatorLoginOptions,
  loginError,
  type NegotiatedParameters,
  operationalKeys,
} from './login.ts';
import { ScsiResult } from './scsi-request.ts';

export interface IscsiInitiatorOptions {
  host: string;
  port: number;
  /** The target to log in to; null for a discovery session. */
  targetName: string | null;
  initiatorName?: string;
  lun?: number;
  headerDigest?: boolean;
  dataDigest?: boolean;
  chap?: { initiator: ChapCredentials; target?: ChapCredentials } | null;
  /** Commands in flight at most (further ones wait in order). Default 32. */
  queueDepth?: number;
  /** Largest data segment we accept (bytes). Default 256 KiB. */
  maxRecvDataSegmentLength?: number;
  maxBurstLength?: number;
  firstBurstLength?: number;
  immediateData?: boolean;
  initialR2T?: boolean;
  /** A command (or login step) without an answer for this long fails the connection. Default 30 s. */
  timeoutMs?: number;
}

export type CommandCallback = (error: HornbillError | null, result: ScsiResult) => void;

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
 * The protocol half of the initiator (RFC 7143): one connection, login with negotiation
 * (digests and CHAP optional), pipelined SCSI commands matched by ITT, immediate /
 * unsolicited / R2T-solicited Data-Out, Data-In straight into the caller's buffer, NOP-In
 * answers, text requests, logout. `IscsiInitiator` adds connecting and block commands.
 *
 * Per command it allocates nothing beyond the views of the caller's buffers (commands and
 * results are pooled); the promise helpers add one promise each.
 */
export class InitiatorConnection implements ReceiverHandler {
  readonly lun: number;
  negotiated: NegotiatedParameters = defaultNegotiated();
  readonly queueDepth: number;
  private readonly socket: net.Socket;
  private readonly options: IscsiInitiatorOptions;
  private readonly receiver: PduReceiver;
  private readonly sender: PduSender;
  private readonly header = new PduHeader();
  private readonly isid = randomBytes(6);
  private tsih = 0;
  private cmdSN = 1;
  private expStatSN = 0;
  private maxCmdSN = 1;
  private nextTag = 1;
  private readonly pool: Pending[] = [];
  private readonly inFlight = new Map<number, Pending>();
  private readonly waiting: Waiting[] = [];
  private controlWaiter: ControlWaiter | null = null;
  private closedError: HornbillError | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly timeoutMs: number;

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

  // ---- login and logout ---------------------------------------------------------------------

  private loginOptions(): InitiatorLoginOptions {
    const options = this.options;
    return {
      initiatorName: options.initiatorName ?? 'iqn.2026-11.io.hornbill:initiator',
      targetName: options.targetName,
      headerDigest: options.headerDigest ?? false,
      dataDigest: options.dataDigest ?? false,
      maxRecvDataSegmentLength: options.maxRecvDataSegmentLength ?? 262144,
      maxBurstLength: options.maxBurstLength ?? 1048576,
      firstBurstLength: options.firstBurstLength ?? 262144,
      immediateData: options.immediateData ?? true,
      initialR2T: options.initialR2T ?? false,
      chap: options.chap ?? null,
    };
  }

  protected async login(): Promise<void> {
    const options = this.loginOptions();
    const names: TextPairs = [
      ['InitiatorName', options.initiatorName],
      ['SessionType', options.targetName === null ? 'Discovery' : 'Normal'],
    ];
    if (options.targetName !== null) names.push(['TargetName', options.targetName]);
    // Security stage.
    const chap = options.chap === null ? null : new InitiatorChap(options.chap);
    let answer = await this.loginStep(0, 1, true, [
      ...names,
      ['AuthMethod', chap === null ? 'None' : 'CHAP,None'],
    ]);
    if (chap !== null) {
      if (answer.keys.get('AuthMethod') !== 'CHAP') throw loginError('the target did not choose CHAP');
      answer = await this.loginStep(0, 1, false, [['CHAP_A', '5']]);
      answer = await this.loginStep(0, 1, true, chap.respond(answer.keys));
      chap.verifyTarget(answer.keys);
    }
    for (let step = 0; !answer.transit; step++) {
      if (step > 8) throw loginError('the target never left the security stage');
      answer = await this.loginStep(0, 1, true, []);
    }
    // Operational stage.
    const parameters = defaultNegotiated();
    answer = await this.loginStep(1, 3, true, operationalKeys(options));
    applyOperationalAnswers(parameters, answer.keys, options);
    for (let step = 0; !answer.transit; step++) {
      if (step > 8) throw loginError('the target never finished the operational stage');
      answer = await this.loginStep(1, 3, true, []);
      applyOperationalAnswers(parameters, answer.keys, options);
    }
    this.negotiated = parameters;
    this.receiver.headerDigest = parameters.headerDigest;
    this.receiver.dataDigest = parameters.dataDigest;
    this.sender.headerDigest = parameters.headerDigest;
    this.sender.dataDigest = parameters.dataDigest;
  }

  private async loginStep(
    currentStage: number,
    nextStage: number,
    transit: boolean,
    keys: TextPairs,
  ): Promise<{ keys: Map<string, string>; transit: boolean }> {
    const header = this.header.clear();
    header.opcode = Opcode.LOGIN_REQUEST;
    header.immediate = true;
    header.flags = (transit ? Flag.TRANSIT : 0) | (currentStage << 2) | (transit ? nextStage : 0);
    header.bytes.set(this.isid, 8);
    header.tsih = this.tsih;
    header.initiatorTaskTag = this.takeTag();
    header.connectionId = 1;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    const { header: response, data } = await this.control(
      Opcode.LOGIN_RESPONSE,
      header,
      encodeTextKeys(keys),
    );
    const status = response.loginStatus;
    if (status !== 0) {
      throw loginError(`login refused with status 0x${status.toString(16).padStart(4, '0')}`, { status });
    }
    this.tsih = response.tsih;
    const parsed = parseTextKeys(data);
    if (!parsed.ok) throw loginError(`unreadable login response: ${parsed.reason}`);
    return { keys: new Map(parsed.pairs), transit: (response.flags & Flag.TRANSIT) !== 0 };
  }

  /** Text request/response, following continuations (RFC 7143 §11.10). */
  async text(keys: TextPairs): Promise<TextPairs> {
    const parts: Buffer[] = [];
    let transferTag = RESERVED_TAG;
    let payload: Buffer | null = encodeTextKeys(keys);
    for (let round = 0; round < 64; round++) {
      const header = this.header.clear();
      header.opcode = Opcode.TEXT_REQUEST;
      header.immediate = true;
      header.flags = Flag.FINAL;
      header.initiatorTaskTag = this.takeTag();
      header.targetTransferTag = transferTag;
      header.cmdSN = this.cmdSN;
      header.expStatSN = this.expStatSN;
      const { header: response, data } = await this.control(Opcode.TEXT_RESPONSE, header, payload);
      parts.push(data);
      payload = null;
      if ((response.flags & 0x40) === 0) {
        const parsed = parseTextKeys(Buffer.concat(parts));
        if (!parsed.ok)
          throw new HornbillError('ISCSI_PROTOCOL_ERROR', `unreadable text response: ${parsed.reason}`);
        return parsed.pairs;
      }
      transferTag = response.targetTransferTag;
    }
    throw new HornbillError('ISCSI_PROTOCOL_ERROR', 'text response never ended');
  }

  /** Logs out (closing the session) and closes the socket. */
  async logout(): Promise<void> {
    if (this.isClosed) return;
    const header = this.header.clear();
    header.opcode = Opcode.LOGOUT_REQUEST;
    header.immediate = true;
    header.flags = Flag.FINAL; // reason 0: close the session
    header.initiatorTaskTag = this.takeTag();
    header.connectionId = 1;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    try {
      await this.control(Opcode.LOGOUT_RESPONSE, header, null);
    } finally {
      this.destroy();
    }
  }

  /** Drops the connection without logging out (what a crashed initiator looks like). */
  destroy(): void {
    this.fail(new HornbillError('ISCSI_CONNECTION_CLOSED', 'the initiator closed the connection'));
    this.socket.destroy();
  }

  private control(
    opcode: number,
    header: PduHeader,
    data: Buffer | null,
  ): Promise<{ header: PduHeader; data: Buffer }> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    if (this.controlWaiter !== null) {
      return Promise.reject(new HornbillError('ISCSI_PROTOCOL_ERROR', 'one control request at a time'));
    }
    return new Promise((resolve, reject) => {
      this.controlWaiter = { opcode, resolve, reject, deadlineMs: Date.now() + this.timeoutMs };
      this.sender.send(header, data !== null && data.length > 0 ? data : null);
    });
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

  private sendDataOut(pending: Pending, transferTag: number, offset: number, length: number): void {
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

  private finish(pending: Pending, error: HornbillError | null): void {
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

  private startWaiting(): void {
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

  // ---- receiving -----------------------------------------------------------------------------

  headerReceived(header: PduHeader): boolean {
    if (header.opcode === Opcode.DATA_IN) {
      const pending = this.inFlight.get(header.initiatorTaskTag);
      const target = pending?.dataIn ?? null;
      const offset = header.bufferOffset;
      if (target === null || offset + header.dataSegmentLength > target.length) {
        this.protocolFailure(`Data-In outside the buffer of ITT 0x${header.initiatorTaskTag.toString(16)}`);
        return false;
      }
      this.receiver.directData(target, offset, header.dataSegmentLength);
    }
    return true;
  }

  pduReceived(header: PduHeader, data: Buffer | null): boolean {
    this.updateSequenceNumbers(header);
    switch (header.opcode) {
      case Opcode.DATA_IN:
        this.dataIn(header);
        break;
      case Opcode.SCSI_RESPONSE:
        this.scsiResponse(header, data);
        break;
      case Opcode.READY_TO_TRANSFER: {
        const pending = this.inFlight.get(header.initiatorTaskTag);
        if (pending?.dataOut == null) {
          this.protocolFailure('R2T for a command without data-out');
          return false;
        }
        const offset = header.bufferOffset;
        const length = header.desiredDataTransferLength;
        if (offset + length > pending.dataOut.length) {
          this.protocolFailure('R2T beyond the data-out buffer');
          return false;
        }
        this.sendDataOut(pending, header.targetTransferTag, offset, length);
        break;
      }
      case Opcode.NOP_IN:
        if (header.targetTransferTag !== RESERVED_TAG) this.answerPing(header);
        break;
      case Opcode.REJECT: {
        const rejected = data !== null && data.length >= 48 ? data.readUInt32BE(16) : RESERVED_TAG;
        const pending = this.inFlight.get(rejected);
        const error = new HornbillError(
          'ISCSI_PROTOCOL_ERROR',
          `the target rejected a PDU (reason 0x${header.byte2.toString(16)})`,
          {
            reason: header.byte2,
          },
        );
        if (pending !== undefined) this.finish(pending, error);
        else if (this.controlWaiter !== null) this.resolveControl(header, data, error);
        break;
      }
      case Opcode.ASYNC_MESSAGE:
        if (header.bytes[36] >= 1 && header.bytes[36] <= 3) {
          this.fail(
            new HornbillError(
              'ISCSI_CONNECTION_CLOSED',
              `the target asked to end the connection (event ${header.bytes[36]})`,
            ),
          );
          this.socket.destroy();
          return false;
        }
        break;
      case Opcode.LOGIN_RESPONSE:
      case Opcode.TEXT_RESPONSE:
      case Opcode.LOGOUT_RESPONSE:
      case Opcode.TASK_MANAGEMENT_RESPONSE:
        this.resolveControl(header, data, null);
        break;
      default:
        this.protocolFailure(`unexpected ${opcodeName(header.opcode)} from the target`);
        return false;
    }
    return this.closedError === null;
  }

  receiveError(kind: ReceiveErrorKind, _header: PduHeader, reason: string): void {
    this.fail(new HornbillError('ISCSI_PROTOCOL_ERROR', `${kind}: ${reason}`));
    this.socket.destroy();
  }

  private dataIn(header: PduHeader): void {
    const pending = this.inFlight.get(header.initiatorTaskTag);
    if (pending === undefined) return;
    pending.result.dataInBytes = Math.max(
      pending.result.dataInBytes,
      header.bufferOffset + header.dataSegmentLength,
    );
    if ((header.flags & Flag.STATUS) === 0) return;
    pending.result.status = header.byte3;
    this.applyResidual(pending.result, header);
    this.finish(pending, null);
  }

  private scsiResponse(header: PduHeader, data: Buffer | null): void {
    const pending = this.inFlight.get(header.initiatorTaskTag);
    if (pending === undefined) return;
    const result = pending.result;
    if (header.byte2 !== 0) {
      this.finish(
        pending,
        new HornbillError('ISCSI_PROTOCOL_ERROR', `target failure (response 0x${header.byte2.toString(16)})`),
      );
      return;
    }
    result.status = header.byte3;
    if (data !== null && data.length >= 2) {
      const senseBytes = Math.min(data.readUInt16BE(0), data.length - 2, result.sense.length);
      data.copy(result.sense, 0, 2, 2 + senseBytes);
      result.senseLength = senseBytes;
    }
    this.applyResidual(result, header);
    this.finish(pending, null);
  }

  private applyResidual(result: ScsiResult, header: PduHeader): void {
    result.overflow = (header.flags & Flag.OVERFLOW) !== 0;
    result.underflow = (header.flags & Flag.UNDERFLOW) !== 0;
    result.residual = result.overflow || result.underflow ? header.residualCount : 0;
  }

  private updateSequenceNumbers(header: PduHeader): void {
    const opcode = header.opcode;
    if (opcode === Opcode.LOGIN_RESPONSE && header.loginStatus !== 0) return;
    const statusBearing =
      opcode !== Opcode.READY_TO_TRANSFER &&
      !(opcode === Opcode.DATA_IN && (header.flags & Flag.STATUS) === 0) &&
      !(opcode === Opcode.NOP_IN && header.initiatorTaskTag === RESERVED_TAG);
    if (statusBearing) {
      const next = (header.statSN + 1) >>> 0;
      if (opcode === Opcode.LOGIN_RESPONSE || serialLessThan(this.expStatSN, next)) this.expStatSN = next;
    }
    const expCmdSN = header.expCmdSN;
    const maxCmdSN = header.maxCmdSN;
    // A window with MaxCmdSN < ExpCmdSN - 1 is invalid and ignored (RFC 7143 §4.2.2.1).
    if (serialLessThan(maxCmdSN, (expCmdSN - 1) >>> 0)) return;
    if (opcode === Opcode.LOGIN_RESPONSE) {
      this.cmdSN = expCmdSN;
      this.maxCmdSN = maxCmdSN;
      return;
    }
    if (serialLessThan(this.maxCmdSN, maxCmdSN)) {
      this.maxCmdSN = maxCmdSN;
      this.startWaiting();
    }
  }

  private answerPing(ping: PduHeader): void {
    const header = this.header.clear();
    header.opcode = Opcode.NOP_OUT;
    header.immediate = true;
    header.flags = Flag.FINAL;
    header.bytes.set(ping.lunBytes(), 8);
    header.initiatorTaskTag = RESERVED_TAG;
    header.targetTransferTag = ping.targetTransferTag;
    header.cmdSN = this.cmdSN;
    header.expStatSN = this.expStatSN;
    this.sender.send(header, null);
  }

  private resolveControl(header: PduHeader, data: Buffer | null, error: HornbillError | null): void {
    const waiter = this.controlWaiter;
    if (waiter === null) return;
    if (error === null && header.opcode !== waiter.opcode) {
      this.protocolFailure(`${opcodeName(header.opcode)} where ${opcodeName(waiter.opcode)} was expected`);
      return;
    }
    this.controlWaiter = null;
    if (error !== null) waiter.reject(error);
    else
      waiter.resolve({
        header: new PduHeader(Buffer.from(header.bytes)),
        data: data === null ? Buffer.alloc(0) : Buffer.from(data),
      });
  }

  private takeTag(): number {
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

  private protocolFailure(reason: string): void {
    this.fail(new HornbillError('ISCSI_PROTOCOL_ERROR', reason));
    this.socket.destroy();
  }

  /** Fails everything outstanding; the initiator is unusable afterwards. */
  private fail(error: HornbillError): void {
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

export function openSocket(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new HornbillError('ISCSI_TIMEOUT', `connecting to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new HornbillError('ISCSI_CONNECTION_CLOSED', `cannot connect to ${host}:${port}: ${error.message}`),
      );
    });
  });
}
