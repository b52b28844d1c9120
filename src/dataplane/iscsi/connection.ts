import type { Socket } from 'node:net';
import type { LogLevel } from '../../logging.ts';
import type { ChapOptions } from './chap.ts';
import { CommandFlow, type FlowHost } from './command-flow.ts';
import {
  type ControlContext,
  handleLogout,
  handleNopOut,
  handleTaskManagement,
  handleText,
} from './control.ts';
import type { SessionParameters, TargetLoginLimits } from './login.ts';
import { LOGIN_DATA_SEGMENT_BYTES, LoginPhase } from './login-phase.ts';
import { Flag, Opcode, opcodeName, PduHeader, RESERVED_TAG, RejectReason, serialLessOrEqual } from './pdu.ts';
import { PduReceiver, type ReceiveErrorKind, type ReceiverHandler } from './receiver.ts';
import { PduSender } from './sender.ts';
import type { IscsiSession, SessionConnection, VolumeEntry } from './session.ts';

/** HORNBILL_ISCSI_TRACE=1 logs every received header at debug level (for debugging initiators). */
const TRACE = process.env.HORNBILL_ISCSI_TRACE === '1';
/** Log lines per connection before it goes quiet (a summary follows at close). */
const MAX_LOG_LINES_PER_CONNECTION = 20;

export interface ConnectionSettings {
  readonly portalGroupTag: number;
  readonly chap: ChapOptions | null;
  readonly limits: TargetLoginLimits;
  readonly commandWindow: number;
  readonly nopIntervalMs: number;
  readonly nopTimeoutMs: number;
  readonly loginTimeoutMs: number;
  readonly maxQueuedWriteBytes: number;
}

/** What a connection needs from its target. */
export interface ConnectionHost {
  readonly settings: ConnectionSettings;
  readonly clockMs: number;
  log(level: LogLevel, message: string, fields: Record<string, unknown>): void;
  findVolume(targetName: string): VolumeEntry | undefined;
  volumes(): Iterable<VolumeEntry>;
  portalAddress(): string;
  openSession(
    connection: IscsiConnection,
    parameters: SessionParameters,
    isid: string,
    tsih: number,
    cmdSN: number,
  ): IscsiSession | { status: number; reason: string };
  sessionEnded(session: IscsiSession): void;
  connectionClosed(connection: IscsiConnection): void;
  resetLogicalUnit(volume: VolumeEntry): Promise<void>;
  clearTaskSet(volume: VolumeEntry): Promise<void>;
  resetTarget(volume: VolumeEntry): Promise<void>;
}

const Phase = { LOGIN: 0, FULL_FEATURE: 1, LOGOUT: 2, CLOSED: 3 } as const;

/**
 * One iSCSI connection (RFC 7143): login phase, then full feature phase with one session.
 * Bad input never throws out of here: framing and digest errors close the connection, PDUs
 * that break the protocol get a Reject (and, when the stream can no longer be trusted, the
 * connection is closed), and every close is logged with its reason.
 */
export class IscsiConnection implements ReceiverHandler, FlowHost, SessionConnection {
  readonly id: number;
  readonly sender: PduSender;
  readonly receiver: PduReceiver;
  private readonly socket: Socket;
  private readonly host: ConnectionHost;
  private readonly response = new PduHeader();
  private phase: number = Phase.LOGIN;
  private sessionValue: IscsiSession | null = null;
  flow: CommandFlow | null = null;
  private statSN = 0;
  private readonly loginPhase: LoginPhase;
  private readonly createdMs: number;
  private lastReceiveMs: number;
  private pingOutstanding = false;
  private pingSentMs = 0;
  pingTag = 0;
  private pendingChunk: Buffer | null = null;
  private pendingOffset = 0;
  private logLines = 0;
  private closeReason = '';
  private closedPromise: Promise<void> | null = null;
  private readonly control: ControlContext;
  readonly textState = {
    pending: null as Buffer | null,
    pendingTag: 0,
    request: [] as Buffer[],
    requestBytes: 0,
  };

  constructor(id: number, socket: Socket, host: ConnectionHost) {
    this.id = id;
    this.socket = socket;
    this.host = host;
    this.createdMs = host.clockMs;
    this.lastReceiveMs = host.clockMs;
    this.sender = new PduSender(socket);
    this.receiver = new PduReceiver(this, LOGIN_DATA_SEGMENT_BYTES);
    this.control = this.createControlContext();
    this.loginPhase = new LoginPhase({
      settings: host.settings,
      sender: this.sender,
      findVolume: (name) => host.findVolume(name),
      openSession: (parameters, isid, tsih, cmdSN) => host.openSession(this, parameters, isid, tsih, cmdSN),
      setStatSN: (value) => {
        this.statSN = value >>> 0;
      },
      takeStatSN: () => this.takeStatSN(),
    });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.resumeReading());
    socket.on('error', (error) => this.close(`socket error: ${error.message}`));
    socket.on('end', () => {
      if (this.phase === Phase.FULL_FEATURE || this.phase === Phase.LOGIN) this.phase = Phase.LOGOUT;
      this.close('initiator closed the connection');
    });
    socket.on('close', () => {
      this.close('socket closed');
      this.host.connectionClosed(this);
    });
  }

  get session(): IscsiSession {
    return this.sessionValue!;
  }

  get isOpen(): boolean {
    return this.phase !== Phase.CLOSED;
  }

  get remoteAddress(): string {
    return `${this.socket.remoteAddress}:${this.socket.remotePort}`;
  }

  // ---- receiving ----------------------------------------------------------------------------

  private onData(chunk: Buffer): void {
    this.lastReceiveMs = this.host.clockMs;
    this.pingOutstanding = false;
    this.consume(chunk, 0);
  }

  private consume(chunk: Buffer, start: number): void {
    if (this.phase === Phase.CLOSED) return;
    const consumed = this.receiver.push(chunk, start);
    if (this.receiver.isStopped && this.phase !== Phase.CLOSED && start + consumed < chunk.length) {
      // Back-pressure: keep the rest of the chunk and stop reading until the socket drains.
      this.pendingChunk = chunk;
      this.pendingOffset = start + consumed;
      this.socket.pause();
    } else if (this.receiver.isStopped && this.phase !== Phase.CLOSED) {
      this.socket.pause();
    }
  }

  private resumeReading(): void {
    if (this.phase !== Phase.FULL_FEATURE || !this.receiver.isStopped) return;
    if (this.sender.queuedBytes > this.host.settings.maxQueuedWriteBytes) return;
    this.receiver.resume();
    const chunk = this.pendingChunk;
    this.pendingChunk = null;
    if (chunk !== null) this.consume(chunk, this.pendingOffset);
    if (!this.receiver.isStopped) this.socket.resume();
  }

  headerReceived(header: PduHeader): boolean {
    if (TRACE) {
      this.host.log('debug', 'pdu', {
        connection: this.id,
        opcode: opcodeName(header.opcode),
        immediate: header.immediate,
        flags: header.flags,
        itt: header.initiatorTaskTag,
        ttt: header.targetTransferTag,
        cmdSN: header.cmdSN,
        dataSN: header.dataSN,
        offset: header.bufferOffset,
        length: header.dataSegmentLength,
      });
    }
    if (this.phase === Phase.LOGIN) {
      if (header.opcode !== Opcode.LOGIN_REQUEST) {
        this.close(`${opcodeName(header.opcode)} received during login`);
        return false;
      }
      return true;
    }
    if (this.phase !== Phase.FULL_FEATURE) return false;
    const opcode = header.opcode;
    if (opcode === Opcode.SCSI_COMMAND || opcode === Opcode.DATA_OUT) {
      if (this.flow === null) {
        this.protocolError(header, RejectReason.PROTOCOL_ERROR, 'SCSI traffic in a discovery session');
        return false;
      }
      return opcode === Opcode.SCSI_COMMAND
        ? this.flow.commandHeader(header)
        : this.flow.dataOutHeader(header);
    }
    return true;
  }

  pduReceived(header: PduHeader, data: Buffer | null): boolean {
    if (this.phase === Phase.LOGIN) {
      this.handleLogin(header, data);
    } else if (this.phase === Phase.FULL_FEATURE) {
      this.dispatch(header, data);
    }
    if (this.phase === Phase.CLOSED || this.phase === Phase.LOGOUT) return false;
    // Back-pressure: stop reading while the initiator is not reading our responses.
    return this.sender.queuedBytes <= this.host.settings.maxQueuedWriteBytes;
  }

  receiveError(kind: ReceiveErrorKind, header: PduHeader, reason: string): void {
    if (kind === 'data-digest' && this.phase === Phase.FULL_FEATURE) {
      this.sendReject(header, RejectReason.DATA_DIGEST_ERROR);
    } else if (kind === 'too-long' && this.phase === Phase.FULL_FEATURE) {
      this.sendReject(header, RejectReason.PROTOCOL_ERROR);
    }
    this.close(`${reason} (${opcodeName(header.opcode)})`);
  }

  private dispatch(header: PduHeader, data: Buffer | null): void {
    switch (header.opcode) {
      case Opcode.SCSI_COMMAND:
        this.flow?.commandComplete();
        return;
      case Opcode.DATA_OUT:
        this.flow?.dataOutComplete(header);
        return;
      case Opcode.NOP_OUT:
        handleNopOut(this.control, header, data);
        return;
      case Opcode.TEXT_REQUEST:
        handleText(this.control, header, data);
        return;
      case Opcode.TASK_MANAGEMENT_REQUEST:
        handleTaskManagement(this.control, header);
        return;
      case Opcode.LOGOUT_REQUEST:
        // Nothing is read after a logout that closes the connection.
        if (
          handleLogout(this.control, header, this.loginPhase.connectionId) &&
          this.phase === Phase.FULL_FEATURE
        ) {
          this.phase = Phase.LOGOUT;
        }
        return;
      case Opcode.LOGIN_REQUEST:
        this.reject(header, RejectReason.PROTOCOL_ERROR, 'Login Request in full feature phase');
        return;
      case Opcode.SNACK_REQUEST:
        this.reject(header, RejectReason.PROTOCOL_ERROR, 'SNACK needs ErrorRecoveryLevel > 0');
        return;
      default:
        this.reject(header, RejectReason.COMMAND_NOT_SUPPORTED, `opcode ${opcodeName(header.opcode)}`);
        return;
    }
  }

  // ---- login -------------------------------------------------------------------------------

  private handleLogin(header: PduHeader, data: Buffer | null): void {
    const outcome = this.loginPhase.handle(header, data);
    if (outcome.kind === 'failed') {
      this.close(outcome.reason);
      return;
    }
    if (outcome.kind !== 'complete') return;
    const { session, parameters } = outcome;
    this.sessionValue = session;
    session.connection = this;
    // The new parameters apply from the first PDU after the final login response.
    this.receiver.headerDigest = parameters.headerDigest;
    this.receiver.dataDigest = parameters.dataDigest;
    this.receiver.setMaxDataSegmentBytes(
      Math.max(parameters.targetMaxRecvDataSegmentLength, LOGIN_DATA_SEGMENT_BYTES),
    );
    this.sender.headerDigest = parameters.headerDigest;
    this.sender.dataDigest = parameters.dataDigest;
    if (session.volume !== null) {
      this.flow = new CommandFlow(this, session.volume.unit, this.host.settings.commandWindow);
    }
    this.phase = Phase.FULL_FEATURE;
    this.logLine('info', 'logged in', {
      initiator: parameters.initiatorName,
      target: parameters.targetName || '(discovery)',
      tsih: session.tsih,
      headerDigest: parameters.headerDigest,
      dataDigest: parameters.dataDigest,
    });
  }

  // ---- FlowHost ------------------------------------------------------------------------------

  takeStatSN(): number {
    const value = this.statSN;
    this.statSN = (this.statSN + 1) >>> 0;
    return value;
  }

  currentStatSN(): number {
    return this.statSN;
  }

  maxCmdSN(): number {
    const session = this.session;
    const used = this.flow?.windowUsed ?? 0;
    const computed = (session.expCmdSN + this.host.settings.commandWindow - 1 - used) >>> 0;
    if (serialLessOrEqual(session.maxCmdSNAdvertised, computed)) session.maxCmdSNAdvertised = computed;
    return session.maxCmdSNAdvertised;
  }

  checkCmdSN(header: PduHeader): 'accept' | 'ignore' {
    if (header.immediate) return 'accept';
    const session = this.session;
    const cmdSN = header.cmdSN;
    if (cmdSN === session.expCmdSN && serialLessOrEqual(cmdSN, this.maxCmdSN())) {
      session.expCmdSN = (session.expCmdSN + 1) >>> 0;
      return 'accept';
    }
    this.logLine('info', 'command outside the CmdSN window ignored', {
      opcode: opcodeName(header.opcode),
      cmdSN,
      expCmdSN: session.expCmdSN,
      maxCmdSN: session.maxCmdSNAdvertised,
    });
    return 'ignore';
  }

  protocolError(header: PduHeader, rejectReason: number, reason: string): void {
    if (this.phase === Phase.CLOSED) return;
    this.sendReject(header, rejectReason);
    this.close(`protocol error: ${reason} (${opcodeName(header.opcode)})`);
  }

  reject(header: PduHeader, rejectReason: number, reason: string): void {
    this.logLine('info', 'PDU rejected', { reason, opcode: opcodeName(header.opcode), rejectReason });
    this.sendReject(header, rejectReason);
  }

  taskReleased(): void {
    if (this.receiver.isStopped && this.phase === Phase.FULL_FEATURE) this.resumeReading();
  }

  private sendReject(rejected: PduHeader, rejectReason: number): void {
    if (this.phase === Phase.CLOSED || this.sessionValue === null) return;
    const data = Buffer.from(rejected.bytes);
    const header = this.responseHeader(Opcode.REJECT, true);
    header.flags = Flag.FINAL;
    header.byte2 = rejectReason;
    header.initiatorTaskTag = RESERVED_TAG;
    this.sender.send(header, data);
  }

  /** A response header with StatSN, ExpCmdSN and MaxCmdSN (session must exist). */
  responseHeader(opcode: number, takeStatSN: boolean): PduHeader {
    const header = this.response.clear();
    header.opcode = opcode;
    header.statSN = takeStatSN ? this.takeStatSN() : this.statSN;
    header.expCmdSN = this.session.expCmdSN;
    header.maxCmdSN = this.maxCmdSN();
    return header;
  }

  // ---- liveness --------------------------------------------------------------------------------

  /** Called about once a second by the target: login timeout and NOP-In pings. */
  tick(nowMs: number): void {
    const settings = this.host.settings;
    if (this.phase === Phase.LOGIN) {
      if (nowMs - this.createdMs > settings.loginTimeoutMs) {
        this.close('login did not finish in time');
        return;
      }
    }
    if (this.phase !== Phase.FULL_FEATURE || settings.nopIntervalMs <= 0) return;
    if (this.pingOutstanding) {
      if (nowMs - this.pingSentMs > settings.nopTimeoutMs) {
        this.close('no answer to NOP-In ping: initiator presumed dead');
      }
      return;
    }
    if (nowMs - this.lastReceiveMs >= settings.nopIntervalMs) this.sendPing(nowMs);
  }

  private sendPing(nowMs: number): void {
    this.pingTag = (this.pingTag + 1) & 0x7fffffff || 1;
    this.pingOutstanding = true;
    this.pingSentMs = nowMs;
    const header = this.responseHeader(Opcode.NOP_IN, false);
    header.flags = Flag.FINAL;
    header.initiatorTaskTag = RESERVED_TAG;
    header.targetTransferTag = this.pingTag;
    this.sender.send(header, null);
  }

  // ---- closing ---------------------------------------------------------------------------------

  /** Closes the connection: tasks are aborted, the session ends unless it moved on. */
  close(reason: string): void {
    if (this.phase === Phase.CLOSED) return;
    const graceful = this.phase === Phase.LOGOUT;
    this.phase = Phase.CLOSED;
    this.closeReason = reason;
    this.receiver.stop();
    this.pendingChunk = null;
    this.logLine(graceful ? 'info' : 'warn', 'connection closed', { reason });
    if (this.logLines > MAX_LOG_LINES_PER_CONNECTION) {
      this.host.log('warn', 'connection log lines suppressed', {
        connection: this.id,
        suppressed: this.logLines - MAX_LOG_LINES_PER_CONNECTION,
      });
    }
    // Let queued responses (a reject, a login failure) go out, then make sure the socket dies.
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 1000);
    timer.unref();
    const flowDone = this.flow?.shutdown() ?? Promise.resolve();
    this.closedPromise = flowDone;
    const session = this.sessionValue;
    if (session !== null && session.connection === this) {
      session.connection = null;
      this.host.sessionEnded(session);
    }
  }

  /** Resolves when no task of this connection runs on the device anymore. */
  whenDrained(): Promise<void> {
    return this.closedPromise ?? Promise.resolve();
  }

  destroy(): void {
    this.close('target closing');
    this.socket.destroy();
  }

  abortAllTasks(reason: string): Promise<void> {
    this.logLine('info', 'aborting all tasks', { reason });
    return this.flow?.abortAll() ?? Promise.resolve();
  }

  abortTasksOnLun(lun: number): Promise<void> {
    return this.flow?.abortAll(lun) ?? Promise.resolve();
  }

  logLine(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    this.logLines++;
    if (this.logLines > MAX_LOG_LINES_PER_CONNECTION && level !== 'warn') return;
    if (this.logLines > MAX_LOG_LINES_PER_CONNECTION * 2) return;
    this.host.log(level, message, { connection: this.id, remote: this.remoteAddress, ...fields });
  }

  get lastCloseReason(): string {
    return this.closeReason;
  }

  private createControlContext(): ControlContext {
    const connection = this;
    return {
      get session() {
        return connection.session;
      },
      get flow() {
        return connection.flow;
      },
      get pingTag() {
        return connection.pingTag;
      },
      textState: this.textState,
      responseHeader: (opcode, take) => this.responseHeader(opcode, take),
      send: (header, data) => this.sender.send(header, data),
      reject: (header, rejectReason, reason) => this.reject(header, rejectReason, reason),
      checkCmdSN: (header) => this.checkCmdSN(header),
      pingAnswered: () => {
        this.pingOutstanding = false;
      },
      logout: () => {
        if (this.phase === Phase.FULL_FEATURE) this.phase = Phase.LOGOUT;
        this.close('logged out');
      },
      isOpen: () => this.phase !== Phase.CLOSED,
      log: (message, fields) => this.logLine('info', message, fields),
      targets: () => this.host.volumes(),
      portalAddress: () => this.host.portalAddress(),
      resetLogicalUnit: (volume) => this.host.resetLogicalUnit(volume),
      clearTaskSet: (volume) => this.host.clearTaskSet(volume),
      resetTarget: (volume) => this.host.resetTarget(volume),
    };
  }
}
