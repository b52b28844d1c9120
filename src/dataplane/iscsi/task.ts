import { ScsiCommand } from './scsi/command.ts';
import type { WriteCompletion } from './sender.ts';

export const TaskState = {
  FREE: 0,
  /** Collecting data-out (immediate, unsolicited, or solicited by R2T). */
  RECEIVING: 1,
  /** Running in the logical unit. */
  EXECUTING: 2,
  /** Response queued on the socket; the buffer is released when it is written. */
  RESPONDING: 3,
} as const;

/**
 * One SCSI task of a connection: the SCSI command plus the iSCSI transfer state (RFC 7143
 * §4.2.4 / §11.7, §11.8): immediate and unsolicited data, the R2T in flight, Data-In.
 * Task objects are pooled per connection and reused, with their bound callbacks.
 */
export class IscsiTask implements WriteCompletion {
  readonly command = new ScsiCommand();
  state: number = TaskState.FREE;
  initiatorTaskTag = 0;
  cmdSN = 0;
  immediate = false;
  readFlag = false;
  writeFlag = false;
  /** Expected Data Transfer Length from the SCSI Command PDU. */
  expectedLength = 0;
  /** Data-out bytes the command will use: min(EDTL, the CDB's transfer length). */
  dataOutExpected = 0;
  /** Unsolicited data (immediate + unsolicited Data-Out) received so far, in bytes. */
  unsolicitedBytes = 0;
  unsolicitedDone = true;
  nextUnsolicitedDataSN = 0;
  /** Next buffer offset to solicit with an R2T. */
  nextSolicitOffset = 0;
  /** The R2T in flight (at most one per task). */
  r2tActive = false;
  r2tTag = 0;
  r2tOffset = 0;
  r2tLength = 0;
  r2tReceived = 0;
  r2tNextDataSN = 0;
  r2tCount = 0;
  /** Data-out bytes received contiguously from offset 0. */
  contiguousBytes = 0;
  /** The command already ended in plan (status set): only draining unsolicited data. */
  endedEarly = false;
  aborted = false;
  /** Counts towards the CmdSN window (non-immediate) until its response is queued. */
  countsInWindow = false;
  dataInCount = 0;
  readonly abortWaiters: (() => void)[] = [];
  /** Bound once: called when the logical unit finishes. */
  onExecuted: () => void = () => {};
  /** Bound once: called when the response has been written. */
  onWritten: () => void = () => {};

  written(): void {
    this.onWritten();
  }

  reset(): void {
    this.command.reset();
    this.state = TaskState.FREE;
    this.initiatorTaskTag = 0;
    this.cmdSN = 0;
    this.immediate = false;
    this.readFlag = false;
    this.writeFlag = false;
    this.expectedLength = 0;
    this.dataOutExpected = 0;
    this.unsolicitedBytes = 0;
    this.unsolicitedDone = true;
    this.nextUnsolicitedDataSN = 0;
    this.nextSolicitOffset = 0;
    this.r2tActive = false;
    this.r2tTag = 0;
    this.r2tOffset = 0;
    this.r2tLength = 0;
    this.r2tReceived = 0;
    this.r2tNextDataSN = 0;
    this.r2tCount = 0;
    this.contiguousBytes = 0;
    this.endedEarly = false;
    this.aborted = false;
    this.countsInWindow = false;
    this.dataInCount = 0;
    this.abortWaiters.length = 0;
  }
}
