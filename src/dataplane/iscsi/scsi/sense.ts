import { isHornbillError } from '../../../errors.ts';
import type { ScsiCommand } from './command.ts';
import { AdditionalSense, ScsiStatus, SenseKey } from './constants.ts';

/** Where an invalid field sits (SPC-4 sense-key specific field pointer). */
export interface FieldPointer {
  /** Byte offset of the field in the CDB or parameter list. */
  byte: number;
  /** Highest bit of the field within that byte (0-7), when it is not a whole byte. */
  bit?: number;
  /** true: the field is in the CDB; false: in the parameter list (data-out). */
  inCdb: boolean;
}

export interface SenseDetail {
  /** The INFORMATION field (e.g. the offset of the first miscompare). */
  information?: number;
  fieldPointer?: FieldPointer;
}

/**
 * Ends `command` with CHECK CONDITION and sense data: fixed format (SPC-4 4.5.3, 18 bytes)
 * or descriptor format (4.5.2) when `descriptorFormat` (the D_SENSE bit of the control mode page).
 */
export function checkCondition(
  command: ScsiCommand,
  senseKey: number,
  additionalSense: number,
  descriptorFormat: boolean,
  detail?: SenseDetail,
): void {
  command.status = ScsiStatus.CHECK_CONDITION;
  command.dataInBytes = 0;
  command.senseLength = writeSense(command.sense, senseKey, additionalSense, descriptorFormat, detail);
}

/** Writes sense data into `target` (at least 32 bytes); returns its length. */
export function writeSense(
  target: Buffer,
  senseKey: number,
  additionalSense: number,
  descriptorFormat: boolean,
  detail?: SenseDetail,
): number {
  target.fill(0, 0, 32);
  const information = detail?.information;
  const pointer = detail?.fieldPointer;
  if (!descriptorFormat) {
    target[0] = information === undefined ? 0x70 : 0xf0;
    target[2] = senseKey & 0x0f;
    if (information !== undefined) target.writeUInt32BE(information >>> 0, 3);
    target[7] = 10;
    target[12] = additionalSense >> 8;
    target[13] = additionalSense & 0xff;
    if (pointer !== undefined) writeSenseKeySpecific(target, 15, pointer);
    return 18;
  }
  target[0] = 0x72;
  target[1] = senseKey & 0x0f;
  target[2] = additionalSense >> 8;
  target[3] = additionalSense & 0xff;
  let length = 8;
  if (information !== undefined) {
    target[length] = 0x00; // information descriptor
    target[length + 1] = 0x0a;
    target[length + 2] = 0x80; // VALID
    target.writeUInt32BE(Math.floor(information / 2 ** 32), length + 4);
    target.writeUInt32BE(information >>> 0, length + 8);
    length += 12;
  }
  if (pointer !== undefined) {
    target[length] = 0x02; // sense key specific descriptor
    target[length + 1] = 0x06;
    writeSenseKeySpecific(target, length + 4, pointer);
    length += 8;
  }
  target[7] = length - 8;
  return length;
}

function writeSenseKeySpecific(target: Buffer, offset: number, pointer: FieldPointer): void {
  let flags = 0x80; // SKSV
  if (pointer.inCdb) flags |= 0x40; // C/D
  if (pointer.bit !== undefined) flags |= 0x08 | (pointer.bit & 0x07); // BPV + bit pointer
  target[offset] = flags;
  target.writeUInt16BE(pointer.byte, offset + 1);
}

/** ILLEGAL REQUEST, INVALID FIELD IN CDB, with a field pointer. */
export function invalidFieldInCdb(
  command: ScsiCommand,
  descriptorFormat: boolean,
  byte: number,
  bit?: number,
): void {
  checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB, descriptorFormat, {
    fieldPointer: { byte, bit, inCdb: true },
  });
}

/** ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, with a field pointer into the data-out. */
export function invalidFieldInParameterList(
  command: ScsiCommand,
  descriptorFormat: boolean,
  byte: number,
  bit?: number,
): void {
  checkCondition(
    command,
    SenseKey.ILLEGAL_REQUEST,
    AdditionalSense.INVALID_FIELD_IN_PARAMETER_LIST,
    descriptorFormat,
    { fieldPointer: { byte, bit, inCdb: false } },
  );
}

export function lbaOutOfRange(command: ScsiCommand, descriptorFormat: boolean): void {
  checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.LBA_OUT_OF_RANGE, descriptorFormat);
}

export function reservationConflict(command: ScsiCommand): void {
  command.status = ScsiStatus.RESERVATION_CONFLICT;
  command.dataInBytes = 0;
  command.senseLength = 0;
}

/**
 * Maps an error from a BlockDevice to sense data, exactly as block-device.ts documents:
 * out of range / unaligned / invalid → ILLEGAL REQUEST; checksum mismatch → MEDIUM ERROR,
 * UNRECOVERED READ ERROR; no space → DATA PROTECT, SPACE ALLOCATION FAILED WRITE PROTECT;
 * not ready → NOT READY; anything else → HARDWARE ERROR, INTERNAL TARGET FAILURE.
 */
export function deviceErrorToSense(command: ScsiCommand, error: unknown, descriptorFormat: boolean): void {
  if (isHornbillError(error)) {
    switch (error.code) {
      case 'STORE_OUT_OF_RANGE':
        lbaOutOfRange(command, descriptorFormat);
        return;
      case 'STORE_UNALIGNED':
      case 'INVALID_ARGUMENT':
        checkCondition(
          command,
          SenseKey.ILLEGAL_REQUEST,
          AdditionalSense.INVALID_FIELD_IN_CDB,
          descriptorFormat,
        );
        return;
      case 'STORE_CHECKSUM_MISMATCH':
        checkCondition(
          command,
          SenseKey.MEDIUM_ERROR,
          AdditionalSense.UNRECOVERED_READ_ERROR,
          descriptorFormat,
        );
        return;
      case 'STORE_NO_SPACE':
        checkCondition(
          command,
          SenseKey.DATA_PROTECT,
          AdditionalSense.SPACE_ALLOCATION_FAILED_WRITE_PROTECT,
          descriptorFormat,
        );
        return;
      case 'DEVICE_NOT_READY':
        checkCondition(
          command,
          SenseKey.NOT_READY,
          AdditionalSense.LOGICAL_UNIT_NOT_READY_CAUSE_NOT_REPORTABLE,
          descriptorFormat,
        );
        return;
      default:
        break;
    }
  }
  checkCondition(command, SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE, descriptorFormat);
}
