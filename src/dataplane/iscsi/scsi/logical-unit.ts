import { assert } from '../../../assert.ts';
import { HornbillError } from '../../../errors.ts';
import type { BlockDevice } from '../../block-device.ts';
import { executeBlockCommand, getLbaStatus, planBlockCommand, readCapacity } from './block-commands.ts';
import type { ScsiCommand, ScsiNexus } from './command.ts';
import { hasServiceAction, lookupCommand } from './command-table.ts';
import {
  AdditionalSense,
  LOGICAL_BLOCK_BYTES,
  MAX_CONTROL_DATA_BYTES,
  MAX_UNIT_ATTENTIONS,
  ScsiOpcode,
  ScsiStatus,
  SenseKey,
  ServiceAction,
} from './constants.ts';
import { deriveIdentity, inquiry, type UnitIdentity } from './inquiry.ts';
import { ModeParameters } from './mode-pages.ts';
import { PersistentReservations } from './persistent-reservations.ts';
import { RangeLockTable } from './range-lock.ts';
import { reportSupportedOperationCodes } from './report-opcodes.ts';
import {
  checkCondition,
  deviceErrorToSense,
  invalidFieldInCdb,
  reservationConflict,
  writeSense,
} from './sense.ts';

export interface LogicalUnitOptions {
  /** Largest READ/WRITE transfer (bytes), reported as MAXIMUM TRANSFER LENGTH. Default 1 MiB. */
  maxTransferBytes?: number;
  /** The iSCSI target name, for the target port designators of VPD page 83h. */
  targetName?: string | null;
  portalGroupTag?: number;
  /** Refuse every write with DATA PROTECT, WRITE PROTECTED. Default false. */
  readOnly?: boolean;
}

export const DEFAULT_MAX_TRANSFER_BYTES = 1024 * 1024;
/** Scratch buffers kept for reuse (verify, compare and write, write same). */
const MAX_SPARE_SCRATCH_BUFFERS = 8;

/**
 * A SCSI block device (SBC-3) over a BlockDevice: LUN 0 of one iSCSI target. Independent of
 * the transport, so tests can drive it directly: `plan` checks a command and says what data
 * it needs, `execute` runs it. Errors from the device become sense data; an execute never
 * throws. Errors may take as long as the device takes (the engine's replica timeout); every
 * command completes with a status.
 */
export class LogicalUnit {
  readonly device: BlockDevice;
  readonly identity: UnitIdentity;
  readonly mode = new ModeParameters();
  readonly reservations: PersistentReservations;
  readonly locks = new RangeLockTable();
  readonly maxTransferBlocks: number;
  readonly readOnly: boolean;
  /** Pending unit attention conditions per attached nexus (oldest first). */
  private readonly unitAttentions = new Map<string, number[]>();
  /** Sessions attached per nexus key. */
  private readonly attached = new Map<string, number>();
  private stopped = false;
  private capacityBytesSeen: number;
  private readonly spareScratch: Buffer[] = [];
  /**
   * Where synchronous data-in producers (INQUIRY, MODE SENSE, PRIN, …) build their answer
   * before it is clipped to the lent buffer (allocation length): one per unit, never shared
   * across an await.
   */
  private readonly controlScratch = Buffer.alloc(MAX_CONTROL_DATA_BYTES);
  private taskAborter: ((nexusKeys: string[]) => void) | null = null;

  constructor(device: BlockDevice, options: LogicalUnitOptions = {}) {
    if (device.sectorSize !== LOGICAL_BLOCK_BYTES) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `the device must have ${LOGICAL_BLOCK_BYTES}-byte sectors`,
        {
          sectorSize: device.sectorSize,
        },
      );
    }
    const maxTransferBytes = options.maxTransferBytes ?? DEFAULT_MAX_TRANSFER_BYTES;
    if (!Number.isSafeInteger(maxTransferBytes) || maxTransferBytes < 4096 || maxTransferBytes % 4096 !== 0) {
      throw new HornbillError('INVALID_ARGUMENT', 'maxTransferBytes must be a positive multiple of 4096', {
        maxTransferBytes,
      });
    }
    this.device = device;
    this.maxTransferBlocks = maxTransferBytes / LOGICAL_BLOCK_BYTES;
    this.readOnly = options.readOnly ?? false;
    this.identity = deriveIdentity(device.name, options.targetName ?? null, options.portalGroupTag ?? 1);
    this.capacityBytesSeen = device.sizeBytes;
    this.reservations = new PersistentReservations(this);
  }

  get capacityBlocks(): number {
    return Math.floor(this.device.sizeBytes / LOGICAL_BLOCK_BYTES);
  }

  get descriptorSense(): boolean {
    return this.mode.descriptorSense;
  }

  /** Largest data buffer any command of this unit asks for (bytes). */
  get maxBufferBytes(): number {
    return Math.max(this.maxTransferBlocks * LOGICAL_BLOCK_BYTES, MAX_CONTROL_DATA_BYTES, 2 * 255 * 512);
  }

  /** Called by the transport with PREEMPT AND ABORT: abort every task of these nexuses. */
  setTaskAborter(aborter: ((nexusKeys: string[]) => void) | null): void {
    this.taskAborter = aborter;
  }

  abortTasksOf(nexusKeys: string[]): void {
    this.taskAborter?.(nexusKeys);
  }

  /** A session of this nexus starts (unit attentions are kept while one is attached). */
  attachNexus(nexus: ScsiNexus): void {
    this.attached.set(nexus.key, (this.attached.get(nexus.key) ?? 0) + 1);
  }

  detachNexus(nexus: ScsiNexus): void {
    const count = this.attached.get(nexus.key) ?? 0;
    if (count <= 1) {
      this.attached.delete(nexus.key);
      this.unitAttentions.delete(nexus.key);
    } else {
      this.attached.set(nexus.key, count - 1);
    }
  }

  get attachedNexusCount(): number {
    return this.attached.size;
  }

  addUnitAttention(nexusKey: string, additionalSense: number): void {
    if (!this.attached.has(nexusKey)) return;
    let queue = this.unitAttentions.get(nexusKey);
    if (queue === undefined) {
      queue = [];
      this.unitAttentions.set(nexusKey, queue);
    }
    if (queue.includes(additionalSense)) return;
    if (queue.length >= MAX_UNIT_ATTENTIONS) queue.shift();
    queue.push(additionalSense);
  }

  private addUnitAttentionToAll(additionalSense: number, except: string | null): void {
    for (const key of this.attached.keys()) if (key !== except) this.addUnitAttention(key, additionalSense);
  }

  /** LOGICAL UNIT RESET / TARGET WARM RESET (the transport aborts the tasks). */
  reset(additionalSense: number = AdditionalSense.BUS_DEVICE_RESET_FUNCTION_OCCURRED): void {
    this.stopped = false;
    this.addUnitAttentionToAll(additionalSense, null);
  }

  borrowScratch(bytes: number): Buffer {
    assert(bytes <= this.maxBufferBytes, 'scratch buffer larger than any command needs');
    const spare = this.spareScratch.pop();
    if (spare !== undefined && spare.length >= bytes) return spare;
    return Buffer.allocUnsafe(Math.max(bytes, 64 * 1024));
  }

  returnScratch(buffer: Buffer): void {
    if (this.spareScratch.length < MAX_SPARE_SCRATCH_BUFFERS) this.spareScratch.push(buffer);
  }

  /**
   * Checks a command before any data moves and decides its data transfer: sets
   * `dataOutBytes` (data-out to collect) and `dataInBufferBytes` (buffer to lend). Returns
   * false when the command has already ended (status and sense are set).
   */
  plan(command: ScsiCommand): boolean {
    assert(command.nexus !== null, 'a command needs its I_T nexus');
    const cdb = command.cdb;
    const opcode = cdb[0];
    const sense = this.mode.descriptorSense;
    command.status = ScsiStatus.GOOD;
    if (command.lun !== 0) return this.planAbsentUnit(command);
    this.noticeCapacityChange();
    if (
      opcode !== ScsiOpcode.INQUIRY &&
      opcode !== ScsiOpcode.REPORT_LUNS &&
      opcode !== ScsiOpcode.REQUEST_SENSE
    ) {
      const pending = this.unitAttentions.get(command.nexus.key);
      if (pending !== undefined && pending.length > 0) {
        const additionalSense = pending.shift()!;
        if (pending.length === 0) this.unitAttentions.delete(command.nexus.key);
        checkCondition(command, SenseKey.UNIT_ATTENTION, additionalSense, sense);
        return false;
      }
    }
    const descriptor = lookupCommand(opcode, cdb[1]);
    if (descriptor === undefined) {
      if (hasServiceAction(opcode)) invalidFieldInCdb(command, sense, 1, 4);
      else {
        checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_OPERATION_CODE, sense, {
          fieldPointer: { byte: 0, inCdb: true },
        });
      }
      return false;
    }
    let access = descriptor.access;
    if (opcode === ScsiOpcode.START_STOP_UNIT && (cdb[4] & 0x01) === 0) access = 'write';
    if (this.reservations.conflicts(command.nexus.key, access)) {
      reservationConflict(command);
      return false;
    }
    const mediaAccess = access !== 'always' || opcode === ScsiOpcode.TEST_UNIT_READY;
    if (this.stopped && mediaAccess && opcode !== ScsiOpcode.START_STOP_UNIT) {
      checkCondition(
        command,
        SenseKey.NOT_READY,
        AdditionalSense.LOGICAL_UNIT_NOT_READY_INITIALIZING_COMMAND_REQUIRED,
        sense,
      );
      return false;
    }
    return this.planCommand(command);
  }

  private planCommand(command: ScsiCommand): boolean {
    const cdb = command.cdb;
    const sense = this.mode.descriptorSense;
    switch (cdb[0]) {
      case ScsiOpcode.TEST_UNIT_READY:
      case ScsiOpcode.START_STOP_UNIT:
        return true;
      case ScsiOpcode.REQUEST_SENSE:
        command.dataInBufferBytes = cdb[4];
        return true;
      case ScsiOpcode.INQUIRY:
        command.dataInBufferBytes = Math.min(cdb.readUInt16BE(3), MAX_CONTROL_DATA_BYTES);
        return true;
      case ScsiOpcode.MODE_SENSE_6:
        command.dataInBufferBytes = cdb[4];
        return true;
      case ScsiOpcode.MODE_SENSE_10:
        command.dataInBufferBytes = cdb.readUInt16BE(7);
        return true;
      case ScsiOpcode.MODE_SELECT_6:
      case ScsiOpcode.MODE_SELECT_10:
        if (cdb[1] & 0x01) return invalidAt(command, sense, 1, 0); // SP: saving is not supported
        command.dataOutBytes = cdb[0] === ScsiOpcode.MODE_SELECT_6 ? cdb[4] : cdb.readUInt16BE(7);
        return true;
      case ScsiOpcode.READ_CAPACITY_10:
        command.dataInBufferBytes = 8;
        return true;
      case ScsiOpcode.SERVICE_ACTION_IN_16:
        command.dataInBufferBytes = Math.min(cdb.readUInt32BE(10), MAX_CONTROL_DATA_BYTES);
        if ((cdb[1] & 0x1f) === ServiceAction.READ_CAPACITY_16) command.dataInBufferBytes = 32;
        return true;
      case ScsiOpcode.REPORT_LUNS:
        return this.planReportLuns(command);
      case ScsiOpcode.MAINTENANCE_IN:
        command.dataInBufferBytes = Math.min(cdb.readUInt32BE(6), MAX_CONTROL_DATA_BYTES);
        return true;
      case ScsiOpcode.PERSISTENT_RESERVE_IN:
        command.dataInBufferBytes = cdb.readUInt16BE(7);
        return true;
      case ScsiOpcode.PERSISTENT_RESERVE_OUT:
        return this.reservations.planReserveOut(command);
      default:
        return planBlockCommand(this, command);
    }
  }

  private planReportLuns(command: ScsiCommand): boolean {
    const cdb = command.cdb;
    const selectReport = cdb[2];
    if (selectReport > 0x02) return invalidAt(command, this.descriptorSense, 2);
    const allocationBytes = cdb.readUInt32BE(6);
    if (allocationBytes < 16) return invalidAt(command, this.descriptorSense, 6);
    command.dataInBufferBytes = 16;
    return true;
  }

  /** Commands to a LUN that does not exist (SPC-4 5.9). */
  private planAbsentUnit(command: ScsiCommand): boolean {
    const opcode = command.cdb[0];
    if (opcode === ScsiOpcode.INQUIRY) {
      command.dataInBufferBytes = Math.min(command.cdb.readUInt16BE(3), MAX_CONTROL_DATA_BYTES);
      return true;
    }
    if (opcode === ScsiOpcode.REPORT_LUNS) return this.planReportLuns(command);
    if (opcode === ScsiOpcode.REQUEST_SENSE) {
      command.dataInBufferBytes = command.cdb[4];
      return true;
    }
    checkCondition(
      command,
      SenseKey.ILLEGAL_REQUEST,
      AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED,
      this.descriptorSense,
    );
    return false;
  }

  /** A changed capacity (volume expansion) is a unit attention for every nexus. */
  private noticeCapacityChange(): void {
    const sizeBytes = this.device.sizeBytes;
    if (sizeBytes === this.capacityBytesSeen) return;
    this.capacityBytesSeen = sizeBytes;
    this.addUnitAttentionToAll(AdditionalSense.CAPACITY_DATA_HAS_CHANGED, null);
  }

  /** Runs a planned command; its data-out (if any) is in `command.buffer`. Never throws. */
  async execute(command: ScsiCommand): Promise<void> {
    try {
      assert(command.dataInBufferBytes === 0 || command.buffer !== null, 'data-in needs a buffer');
      assert(
        command.buffer === null || command.buffer.length >= command.dataInBufferBytes,
        'buffer too small',
      );
      if (command.lun !== 0) {
        this.executeAbsentUnit(command);
        return;
      }
      // Re-check the reservation: it may have changed while data-out was moving.
      const descriptor = lookupCommand(command.cdb[0], command.cdb[1])!;
      if (this.reservations.conflicts(command.nexus!.key, descriptor.access)) {
        reservationConflict(command);
        return;
      }
      await this.executeCommand(command);
    } catch (error) {
      deviceErrorToSense(command, error, this.mode.descriptorSense);
    }
  }

  private async executeCommand(command: ScsiCommand): Promise<void> {
    const cdb = command.cdb;
    if (producesControlData(cdb)) {
      this.produceControlData(command, true);
      return;
    }
    switch (cdb[0]) {
      case ScsiOpcode.TEST_UNIT_READY:
        return;
      case ScsiOpcode.MODE_SELECT_6:
      case ScsiOpcode.MODE_SELECT_10:
        if (this.mode.select(command)) {
          this.addUnitAttentionToAll(AdditionalSense.MODE_PARAMETERS_CHANGED, command.nexus!.key);
        }
        return;
      case ScsiOpcode.START_STOP_UNIT:
        return this.startStopUnit(command);
      case ScsiOpcode.SERVICE_ACTION_IN_16:
        return getLbaStatus(this, command);
      case ScsiOpcode.PERSISTENT_RESERVE_OUT:
        this.reservations.reserveOut(command);
        return;
      default:
        return executeBlockCommand(this, command);
    }
  }

  /**
   * INQUIRY, MODE SENSE, PRIN and the like build their whole answer in the unit's scratch
   * buffer (synchronously, so no other command can interleave), then as much as the
   * allocation length allows is copied into the lent buffer.
   */
  private produceControlData(command: ScsiCommand, present: boolean): void {
    const lent = command.buffer;
    const sense = this.mode.descriptorSense;
    command.buffer = this.controlScratch;
    try {
      switch (command.cdb[0]) {
        case ScsiOpcode.REQUEST_SENSE:
          this.requestSense(command);
          break;
        case ScsiOpcode.INQUIRY:
          inquiry(command, this.identity, this, sense, present);
          break;
        case ScsiOpcode.MODE_SENSE_6:
        case ScsiOpcode.MODE_SENSE_10:
          this.mode.sense(command, this.capacityBlocks, this.readOnly);
          break;
        case ScsiOpcode.READ_CAPACITY_10:
        case ScsiOpcode.SERVICE_ACTION_IN_16:
          readCapacity(this, command);
          break;
        case ScsiOpcode.REPORT_LUNS:
          reportLuns(command);
          break;
        case ScsiOpcode.MAINTENANCE_IN:
          reportSupportedOperationCodes(command, sense);
          break;
        default:
          this.reservations.reserveIn(command);
          break;
      }
    } finally {
      command.buffer = lent;
    }
    const bytes = Math.min(command.dataInBytes, lent?.length ?? 0);
    if (lent !== null && bytes > 0) this.controlScratch.copy(lent, 0, 0, bytes);
    command.dataInBytes = bytes;
  }

  private executeAbsentUnit(command: ScsiCommand): void {
    this.produceControlData(command, false);
  }

  private requestSense(command: ScsiCommand): void {
    const cdb = command.cdb;
    const descriptorFormat = (cdb[1] & 0x01) !== 0;
    const allocationBytes = cdb[4];
    const out = command.buffer ?? Buffer.alloc(0);
    const scratch = Buffer.alloc(32);
    let length: number;
    const pending = command.lun === 0 ? this.unitAttentions.get(command.nexus!.key) : undefined;
    if (command.lun !== 0) {
      length = writeSense(
        scratch,
        SenseKey.ILLEGAL_REQUEST,
        AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED,
        descriptorFormat,
      );
    } else if (pending !== undefined && pending.length > 0) {
      const additionalSense = pending.shift()!;
      if (pending.length === 0) this.unitAttentions.delete(command.nexus!.key);
      length = writeSense(scratch, SenseKey.UNIT_ATTENTION, additionalSense, descriptorFormat);
    } else if (this.stopped) {
      length = writeSense(
        scratch,
        SenseKey.NOT_READY,
        AdditionalSense.LOGICAL_UNIT_NOT_READY_INITIALIZING_COMMAND_REQUIRED,
        descriptorFormat,
      );
    } else {
      length = writeSense(scratch, SenseKey.NO_SENSE, AdditionalSense.NO_ADDITIONAL_SENSE, descriptorFormat);
    }
    const bytes = Math.min(length, allocationBytes, out.length);
    scratch.copy(out, 0, 0, bytes);
    command.dataInBytes = bytes;
  }

  private async startStopUnit(command: ScsiCommand): Promise<void> {
    const cdb = command.cdb;
    const powerCondition = cdb[4] >> 4;
    const loadEject = (cdb[4] & 0x02) !== 0;
    const start = (cdb[4] & 0x01) !== 0;
    if (powerCondition !== 0) return; // power conditions are accepted and have no effect
    if (loadEject) return invalidFieldInCdb(command, this.descriptorSense, 4, 1); // the medium is not removable
    if (!start) await this.device.flush();
    this.stopped = !start;
  }
}

/** Commands whose data-in is built synchronously in the unit's scratch buffer. */
const PRODUCES_CONTROL_DATA = new Set<number>([
  ScsiOpcode.REQUEST_SENSE,
  ScsiOpcode.INQUIRY,
  ScsiOpcode.MODE_SENSE_6,
  ScsiOpcode.MODE_SENSE_10,
  ScsiOpcode.READ_CAPACITY_10,
  ScsiOpcode.REPORT_LUNS,
  ScsiOpcode.MAINTENANCE_IN,
  ScsiOpcode.PERSISTENT_RESERVE_IN,
]);

function producesControlData(cdb: Buffer): boolean {
  if (cdb[0] === ScsiOpcode.SERVICE_ACTION_IN_16) return (cdb[1] & 0x1f) === ServiceAction.READ_CAPACITY_16;
  return PRODUCES_CONTROL_DATA.has(cdb[0]);
}

function invalidAt(command: ScsiCommand, descriptorSense: boolean, byte: number, bit?: number): false {
  invalidFieldInCdb(command, descriptorSense, byte, bit);
  return false;
}

function reportLuns(command: ScsiCommand): void {
  const out = command.buffer!;
  const selectReport = command.cdb[2];
  const allocationBytes = command.cdb.readUInt32BE(6);
  out.fill(0, 0, 16);
  // Select report 1 asks for well-known logical units only: there are none.
  const lunCount = selectReport === 0x01 ? 0 : 1;
  out.writeUInt32BE(lunCount * 8, 0);
  command.dataInBytes = Math.min(8 + lunCount * 8, allocationBytes);
}
