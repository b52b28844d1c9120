import { BufferPool } from './buffer-pool.ts';
import { Flag, Opcode, PduHeader, RESERVED_TAG, RejectReason } from './pdu.ts';
import type { PduReceiver } from './receiver.ts';
import { ScsiStatus } from './scsi/constants.ts';
import type { LogicalUnit } from './scsi/logical-unit.ts';
import type { PduSender } from './sender.ts';
import type { IscsiSession } from './session.ts';
import { IscsiTask, TaskState } from './task.ts';

/** Immediate SCSI commands (I bit) allowed in flight besides the CmdSN window. */
const IMMEDIATE_TASK_SLOTS = 4;

/** What the command flow needs from its connection. */
export interface FlowHost {
  readonly sender: PduSender;
  readonly receiver: PduReceiver;
  readonly session: IscsiSession;
  /** Returns the StatSN for a status-bearing PDU and advances it. */
  takeStatSN(): number;
  currentStatSN(): number;
  /** MaxCmdSN to put in an outgoing PDU (never lower than the last one sent). */
  maxCmdSN(): number;
  /** A protocol violation: Reject the PDU and close the connection. */
  protocolError(header: PduHeader, rejectReason: number, reason: string): void;
  /** Reject the PDU, keep the connection. */
  reject(header: PduHeader, rejectReason: number, reason: string): void;
  /** A command passed the CmdSN check? 'accept' or 'ignore' (the caller logs). */
  checkCmdSN(header: PduHeader): 'accept' | 'ignore';
  /** A task slot or buffer came free (reading may resume). */
  taskReleased(): void;
}

/**
 * SCSI command handling on one connection (RFC 7143 §4.2.4, §11.3-11.8): intake of SCSI
 * Command PDUs, immediate and unsolicited data, R2T and Data-Out, execution in the logical
 * unit, Data-In with residuals and the SCSI Response. Task objects and data buffers are
 * pooled; the CmdSN window bounds both.
 */
export class CommandFlow {
  readonly pool: BufferPool;
  readonly window: number;
  private readonly host: FlowHost;
  private readonly unit: LogicalUnit;
  private readonly tasks = new Map<number, IscsiTask>();
  private readonly freeTasks: IscsiTask[] = [];
  /** Every task object this connection created (bounded by the buffer pool's count). */
  private readonly allTasks: IscsiTask[] = [];
  /** Non-immediate tasks not yet answered (they hold CmdSN window slots). */
  private windowTasks = 0;
  private immediateTasks = 0;
  /** Tasks holding a buffer or still running (includes aborted ones on the device). */
  private liveTasks = 0;
  private readonly outgoing = new PduHeader();
  private currentDataTask: IscsiTask | null = null;
  private currentDataSolicited = false;
  private nextTransferTag = 1;
  private closed = false;
  private drainWaiters: (() => void)[] = [];

  constructor(host: FlowHost, unit: LogicalUnit, window: number) {
    this.host = host;
    this.unit = unit;
    this.window = window;
    // A finished task keeps its buffer until the response is written, while its window slot
    // is already free: twice the window bounds the buffers lent.
    this.pool = new BufferPool(unit.maxBufferBytes, 2 * window + IMMEDIATE_TASK_SLOTS);
  }

  get windowUsed(): number {
    return this.windowTasks;
  }

  get liveTaskCount(): number {
    return this.liveTasks;
  }

  // ---- SCSI Command -----------------------------------------------------------------------

  /** At the header of a SCSI Command PDU: create the task and direct its immediate data. */
  commandHeader(header: PduHeader): boolean {
    const host = this.host;
    const parameters = host.session.parameters;
    const flags = header.flags;
    const final = (flags & Flag.FINAL) !== 0;
    const write = (flags & Flag.WRITE) !== 0;
    const read = (flags & Flag.READ) !== 0;
    const immediateBytes = header.dataSegmentLength;
    const expectedLength = header.expectedDataTransferLength;
    const itt = header.initiatorTaskTag;
    this.currentDataTask = null;
    if (itt === RESERVED_TAG) return this.violation(header, RejectReason.INVALID_PDU_FIELD, 'ITT 0xffffffff');
    if (immediateBytes > 0) {
      if (!write)
        return this.violation(header, RejectReason.PROTOCOL_ERROR, 'immediate data without the W bit');
      if (!parameters.immediateData)
        return this.violation(header, RejectReason.PROTOCOL_ERROR, 'ImmediateData=No');
      if (immediateBytes > parameters.firstBurstLength || immediateBytes > expectedLength) {
        return this.violation(
          header,
          RejectReason.PROTOCOL_ERROR,
          'immediate data beyond FirstBurstLength or EDTL',
        );
      }
    }
    if (!final && (!write || parameters.initialR2T)) {
      return this.violation(
        header,
        RejectReason.PROTOCOL_ERROR,
        'unsolicited data not allowed (F bit clear)',
      );
    }
    if (this.tasks.has(itt)) {
      host.reject(header, RejectReason.TASK_IN_PROGRESS, `ITT 0x${itt.toString(16)} already in use`);
      this.host.receiver.directData(null, 0, 0);
      return true;
    }
    if (host.checkCmdSN(header) === 'ignore') {
      this.host.receiver.directData(null, 0, 0);
      return true;
    }
    const immediate = header.immediate;
    if (immediate && this.immediateTasks >= IMMEDIATE_TASK_SLOTS) {
      this.respondBusy(header, ScsiStatus.TASK_SET_FULL);
      this.host.receiver.directData(null, 0, 0);
      return true;
    }
    const task = this.freeTasks.pop() ?? this.createTask();
    task.reset();
    task.state = TaskState.RECEIVING;
    task.initiatorTaskTag = itt;
    task.cmdSN = header.cmdSN;
    task.immediate = immediate;
    task.readFlag = read;
    task.writeFlag = write;
    task.expectedLength = expectedLength;
    task.countsInWindow = true;
    if (immediate) this.immediateTasks++;
    else this.windowTasks++;
    this.liveTasks++;
    this.tasks.set(itt, task);

    const command = task.command;
    header.bytes.copy(command.cdb, 0, 32, 48);
    command.lun = header.lunIsComplex ? 0xffff : header.lun;
    command.nexus = host.session.nexus;
    command.expectedTransferBytes = expectedLength;
    command.dataOutAnnounced = write;
    command.dataInAnnounced = read;
    if (!this.unit.plan(command)) {
      task.endedEarly = true;
    } else {
      task.dataOutExpected = write ? Math.min(expectedLength, command.dataOutBytes) : 0;
      const bufferBytes = Math.max(task.dataOutExpected, command.dataInBufferBytes);
      if (bufferBytes > 0) {
        const buffer = this.pool.take(bufferBytes);
        if (buffer === null) {
          command.status = ScsiStatus.TASK_SET_FULL;
          task.endedEarly = true;
        } else {
          command.buffer = buffer;
        }
      }
    }
    task.unsolicitedBytes = immediateBytes;
    task.unsolicitedDone = final;
    task.nextSolicitOffset = immediateBytes;
    this.currentDataTask = task;
    if (task.endedEarly || command.buffer === null) this.host.receiver.directData(null, 0, 0);
    else this.host.receiver.directData(command.buffer, 0, Math.min(immediateBytes, task.dataOutExpected));
    return true;
  }

  /** The SCSI Command PDU (with its immediate data) has fully arrived. */
  commandComplete(): void {
    const task = this.currentDataTask;
    this.currentDataTask = null;
    if (task === null || task.state !== TaskState.RECEIVING) return;
    task.contiguousBytes = task.unsolicitedBytes;
    this.progress(task);
  }

  // ---- Data-Out ---------------------------------------------------------------------------

  dataOutHeader(header: PduHeader): boolean {
    this.currentDataTask = null;
    const task = this.tasks.get(header.initiatorTaskTag);
    const receiver = this.host.receiver;
    if (task === undefined || task.state !== TaskState.RECEIVING) {
      // Data for a task that ended early or was aborted: drop it.
      receiver.directData(null, 0, 0);
      return true;
    }
    const parameters = this.host.session.parameters;
    const offset = header.bufferOffset;
    const bytes = header.dataSegmentLength;
    const transferTag = header.targetTransferTag;
    if (offset + bytes > task.expectedLength) {
      return this.violation(
        header,
        RejectReason.PROTOCOL_ERROR,
        'Data-Out beyond the expected data transfer length',
      );
    }
    if (transferTag === RESERVED_TAG) {
      if (task.unsolicitedDone || parameters.initialR2T) {
        return this.violation(header, RejectReason.PROTOCOL_ERROR, 'unsolicited Data-Out not expected');
      }
      if (offset !== task.unsolicitedBytes)
        return this.violation(header, RejectReason.PROTOCOL_ERROR, 'Data-Out offset out of order');
      if (header.dataSN !== task.nextUnsolicitedDataSN) {
        return this.violation(
          header,
          RejectReason.PROTOCOL_ERROR,
          `DataSN ${header.dataSN} where ${task.nextUnsolicitedDataSN} was due`,
        );
      }
      if (offset + bytes > parameters.firstBurstLength) {
        return this.violation(
          header,
          RejectReason.PROTOCOL_ERROR,
          'unsolicited data beyond FirstBurstLength',
        );
      }
      this.currentDataSolicited = false;
    } else {
      if (!task.r2tActive || transferTag !== task.r2tTag) {
        return this.violation(header, RejectReason.INVALID_PDU_FIELD, 'Data-Out for no outstanding R2T');
      }
      if (offset !== task.r2tOffset + task.r2tReceived) {
        return this.violation(header, RejectReason.PROTOCOL_ERROR, 'Data-Out offset out of order');
      }
      if (header.dataSN !== task.r2tNextDataSN) {
        return this.violation(
          header,
          RejectReason.PROTOCOL_ERROR,
          `DataSN ${header.dataSN} where ${task.r2tNextDataSN} was due`,
        );
      }
      if (task.r2tReceived + bytes > task.r2tLength) {
        return this.violation(
          header,
          RejectReason.PROTOCOL_ERROR,
          'Data-Out beyond the R2T (MaxBurstLength)',
        );
      }
      this.currentDataSolicited = true;
    }
    this.currentDataTask = task;
    const buffer = task.command.buffer;
    if (buffer === null || offset >= task.dataOutExpected || task.endedEarly) receiver.directData(null, 0, 0);
    else receiver.directData(buffer, offset, task.dataOutExpected - offset);
    return true;
  }

  dataOutComplete(header: PduHeader): boolean {
    const task = this.currentDataTask;
    this.currentDataTask = null;
    if (task === null || task.state !== TaskState.RECEIVING) return true;
    const bytes = header.dataSegmentLength;
    const final = header.final;
    if (!this.currentDataSolicited) {
      task.unsolicitedBytes += bytes;
      task.nextUnsolicitedDataSN++;
      task.contiguousBytes = task.unsolicitedBytes;
      if (final) {
        task.unsolicitedDone = true;
        task.nextSolicitOffset = task.unsolicitedBytes;
      }
    } else {
      task.r2tReceived += bytes;
      task.r2tNextDataSN++;
      if (final) {
        if (task.r2tReceived !== task.r2tLength) {
          return this.violation(
            header,
            RejectReason.PROTOCOL_ERROR,
            'final Data-Out before the R2T was satisfied',
          );
        }
        task.r2tActive = false;
        task.contiguousBytes = task.r2tOffset + task.r2tLength;
      }
    }
    this.progress(task);
    return true;
  }

  // ---- progress, execution, response -------------------------------------------------------

  private progress(task: IscsiTask): void {
    if (task.state !== TaskState.RECEIVING || !task.unsolicitedDone || task.r2tActive) return;
    if (task.endedEarly) {
      this.respond(task);
      return;
    }
    if (task.contiguousBytes < task.dataOutExpected) {
      this.sendReadyToTransfer(task);
      return;
    }
    task.command.receivedDataOutBytes = Math.min(task.contiguousBytes, task.dataOutExpected);
    task.state = TaskState.EXECUTING;
    this.unit.execute(task.command).then(task.onExecuted);
  }

  private sendReadyToTransfer(task: IscsiTask): void {
    const parameters = this.host.session.parameters;
    const offset = Math.max(task.nextSolicitOffset, task.contiguousBytes);
    const length = Math.min(parameters.maxBurstLength, task.dataOutExpected - offset);
    task.r2tActive = true;
    task.r2tTag = this.nextTransferTag;
    this.nextTransferTag = this.nextTransferTag >= 0x7fffffff ? 1 : this.nextTransferTag + 1;
    task.r2tOffset = offset;
    task.r2tLength = length;
    task.r2tReceived = 0;
    task.r2tNextDataSN = 0;
    task.nextSolicitOffset = offset + length;
    const header = this.outgoing.clear();
    header.opcode = Opcode.READY_TO_TRANSFER;
    header.flags = Flag.FINAL;
    header.lun = task.command.lun === 0xffff ? 0 : task.command.lun;
    header.initiatorTaskTag = task.initiatorTaskTag;
    header.targetTransferTag = task.r2tTag;
    header.statSN = this.host.currentStatSN();
    header.expCmdSN = this.host.session.expCmdSN;
    header.maxCmdSN = this.host.maxCmdSN();
    header.dataSN = task.r2tCount++;
    header.bufferOffset = offset;
    header.desiredDataTransferLength = length;
    this.host.sender.send(header, null);
  }

  private executed(task: IscsiTask): void {
    if (task.aborted || this.closed) {
      this.release(task);
      return;
    }
    this.respond(task);
  }

  private respond(task: IscsiTask): void {
    const command = task.command;
    task.state = TaskState.RESPONDING;
    this.tasks.delete(task.initiatorTaskTag);
    this.leaveWindow(task);
    const sender = this.host.sender;
    // Residuals (RFC 7143 §11.4.5): against the data the CDB moves in each direction.
    let overflow = 0;
    let underflow = 0;
    let sendBytes = 0;
    if (command.dataOutBytes > 0) {
      const allowed = task.writeFlag ? task.expectedLength : 0;
      if (command.dataOutBytes > allowed) overflow = command.dataOutBytes - allowed;
      else underflow = allowed - command.dataOutBytes;
    } else if (command.status === ScsiStatus.GOOD && (command.dataInBytes > 0 || task.readFlag)) {
      const allowed = task.readFlag ? task.expectedLength : 0;
      sendBytes = Math.min(command.dataInBytes, allowed);
      if (command.dataInBytes > allowed) overflow = command.dataInBytes - allowed;
      else underflow = allowed - command.dataInBytes;
    } else if (task.expectedLength > 0) {
      underflow = task.expectedLength;
    }
    const residualFlags = overflow > 0 ? Flag.OVERFLOW : underflow > 0 ? Flag.UNDERFLOW : 0;
    const residual = overflow > 0 ? overflow : underflow;
    sender.holdUntilTickEnd();
    sender.cork();
    if (sendBytes > 0 && command.senseLength === 0 && command.status === ScsiStatus.GOOD) {
      this.sendDataIn(task, sendBytes, residualFlags, residual);
    } else {
      if (sendBytes > 0) this.sendDataIn(task, sendBytes, 0, 0, false);
      this.sendResponse(task, residualFlags, residual);
    }
    sender.uncork();
  }

  /** Data-In PDUs of at most the initiator's MaxRecvDataSegmentLength; the last carries status. */
  private sendDataIn(
    task: IscsiTask,
    bytes: number,
    residualFlags: number,
    residual: number,
    withStatus = true,
  ): void {
    const parameters = this.host.session.parameters;
    const segmentBytes = parameters.initiatorMaxRecvDataSegmentLength;
    const buffer = task.command.buffer!;
    let offset = 0;
    let burstRemaining = parameters.maxBurstLength;
    while (offset < bytes) {
      const length = Math.min(segmentBytes, bytes - offset, burstRemaining);
      const last = offset + length === bytes;
      burstRemaining -= length;
      const endsSequence = last || burstRemaining === 0;
      if (burstRemaining === 0) burstRemaining = parameters.maxBurstLength;
      const header = this.outgoing.clear();
      header.opcode = Opcode.DATA_IN;
      let flags = endsSequence ? Flag.FINAL : 0;
      if (last && withStatus) flags |= Flag.STATUS | residualFlags;
      header.flags = flags;
      if (last && withStatus) header.byte3 = task.command.status;
      header.lun = task.command.lun === 0xffff ? 0 : task.command.lun;
      header.initiatorTaskTag = task.initiatorTaskTag;
      header.targetTransferTag = RESERVED_TAG;
      header.statSN = last && withStatus ? this.host.takeStatSN() : 0;
      header.expCmdSN = this.host.session.expCmdSN;
      header.maxCmdSN = this.host.maxCmdSN();
      header.dataSN = task.dataInCount++;
      header.bufferOffset = offset;
      header.residualCount = last && withStatus ? residual : 0;
      this.host.sender.send(
        header,
        buffer.subarray(offset, offset + length),
        last && withStatus ? task : null,
      );
      offset += length;
    }
  }

  private sendResponse(task: IscsiTask, residualFlags: number, residual: number): void {
    const command = task.command;
    const header = this.outgoing.clear();
    header.opcode = Opcode.SCSI_RESPONSE;
    header.flags = Flag.FINAL | residualFlags;
    header.byte2 = 0; // command completed at target
    header.byte3 = command.status;
    header.initiatorTaskTag = task.initiatorTaskTag;
    header.statSN = this.host.takeStatSN();
    header.expCmdSN = this.host.session.expCmdSN;
    header.maxCmdSN = this.host.maxCmdSN();
    header.dataSN = task.dataInCount + task.r2tCount; // ExpDataSN
    header.residualCount = residual;
    let data: Buffer | null = null;
    if (command.senseLength > 0) {
      // Sense data travels as a 2-byte length and the sense bytes (errors only, off the hot path).
      data = Buffer.allocUnsafe(2 + command.senseLength);
      data.writeUInt16BE(command.senseLength, 0);
      command.sense.copy(data, 2, 0, command.senseLength);
    }
    this.host.sender.send(header, data, task);
  }

  /** A SCSI Response with a status and no task (BUSY / TASK SET FULL before a task exists). */
  private respondBusy(request: PduHeader, status: number): void {
    const header = this.outgoing.clear();
    header.opcode = Opcode.SCSI_RESPONSE;
    header.flags = Flag.FINAL;
    header.byte3 = status;
    header.initiatorTaskTag = request.initiatorTaskTag;
    header.statSN = this.host.takeStatSN();
    header.expCmdSN = this.host.session.expCmdSN;
    header.maxCmdSN = this.host.maxCmdSN();
    this.host.sender.send(header, null);
  }

  private leaveWindow(task: IscsiTask): void {
    if (!task.countsInWindow) return;
    task.countsInWindow = false;
    if (task.immediate) this.immediateTasks--;
    else this.windowTasks--;
  }

  /** The response was written (or the task was dropped): return buffer and task object. */
  private release(task: IscsiTask): void {
    if (task.state === TaskState.FREE) return;
    this.leaveWindow(task);
    if (this.tasks.get(task.initiatorTaskTag) === task) this.tasks.delete(task.initiatorTaskTag);
    const buffer = task.command.buffer;
    if (buffer !== null && !this.closed) this.pool.give(buffer);
    task.command.buffer = null;
    task.state = TaskState.FREE;
    this.liveTasks--;
    for (const waiter of task.abortWaiters) waiter();
    task.abortWaiters.length = 0;
    this.freeTasks.push(task);
    if (this.liveTasks === 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const waiter of waiters) waiter();
    }
    this.host.taskReleased();
  }

  private createTask(): IscsiTask {
    const task = new IscsiTask();
    this.allTasks.push(task);
    task.onExecuted = () => this.executed(task);
    task.onWritten = () => this.release(task);
    return task;
  }

  private violation(header: PduHeader, rejectReason: number, reason: string): boolean {
    this.host.protocolError(header, rejectReason, reason);
    return false;
  }

  // ---- task management ----------------------------------------------------------------------

  /** ABORT TASK: 'not-found', or a promise that resolves once the task no longer runs. */
  abortTask(initiatorTaskTag: number): 'not-found' | Promise<void> {
    const task = this.tasks.get(initiatorTaskTag);
    if (task === undefined || task.state === TaskState.RESPONDING) return 'not-found';
    return this.abort(task);
  }

  /** Aborts every task (optionally only those for one LUN); resolves when none runs anymore. */
  abortAll(lun: number | null = null): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const task of [...this.tasks.values()]) {
      if (lun !== null && task.command.lun !== lun) continue;
      if (task.state === TaskState.RESPONDING) continue;
      waits.push(this.abort(task));
    }
    return Promise.all(waits).then(() => undefined);
  }

  private abort(task: IscsiTask): Promise<void> {
    task.aborted = true;
    // The task's data may be arriving right now (a reset from another session): drop the rest.
    if (this.currentDataTask === task) {
      this.host.receiver.directData(null, 0, 0);
      this.currentDataTask = null;
    }
    this.tasks.delete(task.initiatorTaskTag);
    this.leaveWindow(task);
    if (task.state !== TaskState.EXECUTING) {
      this.release(task);
      return Promise.resolve();
    }
    return new Promise((resolve) => task.abortWaiters.push(resolve));
  }

  /** The connection is closing: drop everything; resolves when no task runs on the device. */
  shutdown(): Promise<void> {
    const done = this.abortAll();
    this.closed = true;
    // Responses still queued on a dead socket will never be written: release them now.
    for (const task of this.allTasks) if (task.state === TaskState.RESPONDING) this.release(task);
    this.pool.clear();
    return done.then(() =>
      this.liveTasks === 0 ? undefined : new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
    );
  }
}
