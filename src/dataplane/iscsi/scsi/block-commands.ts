import type { ScsiCommand } from './command.ts';
import {
  AdditionalSense,
  LOGICAL_BLOCK_BYTES,
  MAX_COMPARE_AND_WRITE_BLOCKS,
  MAX_CONTROL_DATA_BYTES,
  MAX_UNMAP_BLOCKS,
  MAX_UNMAP_DESCRIPTORS,
  MAX_WRITE_SAME_BLOCKS,
  PHYSICAL_BLOCK_EXPONENT,
  ScsiOpcode,
  SenseKey,
  WRITE_SAME_CHUNK_BYTES,
} from './constants.ts';
import type { LogicalUnit } from './logical-unit.ts';
import { checkCondition, invalidFieldInCdb, invalidFieldInParameterList, lbaOutOfRange } from './sense.ts';

/** Reads a big-endian LBA of 4 or 8 bytes. Values beyond 2^53 lose precision but stay out of range. */
function readLba(cdb: Buffer, offset: number, bytes: 4 | 8): number {
  if (bytes === 4) return cdb.readUInt32BE(offset);
  return cdb.readUInt32BE(offset) * 2 ** 32 + cdb.readUInt32BE(offset + 4);
}

/**
 * Decodes LBA and transfer length of a media command into `command.lba` / `blockCount`.
 * Returns the CDB offset of the transfer length field (for field pointers).
 */
function decodeRange(command: ScsiCommand): number {
  const cdb = command.cdb;
  switch (cdb[0]) {
    case ScsiOpcode.READ_6:
    case ScsiOpcode.WRITE_6:
      command.lba = ((cdb[1] & 0x1f) << 16) | (cdb[2] << 8) | cdb[3];
      command.blockCount = cdb[4] === 0 ? 256 : cdb[4];
      return 4;
    case ScsiOpcode.READ_10:
    case ScsiOpcode.WRITE_10:
    case ScsiOpcode.WRITE_AND_VERIFY_10:
    case ScsiOpcode.VERIFY_10:
    case ScsiOpcode.PRE_FETCH_10:
    case ScsiOpcode.SYNCHRONIZE_CACHE_10:
    case ScsiOpcode.WRITE_SAME_10:
      command.lba = readLba(cdb, 2, 4);
      command.blockCount = cdb.readUInt16BE(7);
      return 7;
    case ScsiOpcode.READ_12:
    case ScsiOpcode.WRITE_12:
    case ScsiOpcode.WRITE_AND_VERIFY_12:
    case ScsiOpcode.VERIFY_12:
      command.lba = readLba(cdb, 2, 4);
      command.blockCount = cdb.readUInt32BE(6);
      return 6;
    case ScsiOpcode.COMPARE_AND_WRITE:
      command.lba = readLba(cdb, 2, 8);
      command.blockCount = cdb[13];
      return 13;
    default:
      command.lba = readLba(cdb, 2, 8);
      command.blockCount = cdb.readUInt32BE(10);
      return 10;
  }
}

/** Checks that [lba, lba + count) lies on the medium. */
function inRange(unit: LogicalUnit, command: ScsiCommand): boolean {
  if (command.lba + command.blockCount > unit.capacityBlocks) {
    lbaOutOfRange(command, unit.descriptorSense);
    return false;
  }
  return true;
}

/**
 * Checks the CDB of a media command and decides its data transfer. Returns false when the
 * command already ended (CHECK CONDITION).
 */
export function planBlockCommand(unit: LogicalUnit, command: ScsiCommand): boolean {
  const cdb = command.cdb;
  const opcode = cdb[0];
  const sense = unit.descriptorSense;
  const lengthField = decodeRange(command);
  const protectField = cdb[1] >> 5;
  const bytes = command.blockCount * LOGICAL_BLOCK_BYTES;
  switch (opcode) {
    case ScsiOpcode.READ_6:
    case ScsiOpcode.READ_10:
    case ScsiOpcode.READ_12:
    case ScsiOpcode.READ_16:
      if (opcode !== ScsiOpcode.READ_6 && protectField !== 0)
        return fail(invalidFieldInCdb(command, sense, 1, 7));
      if (!inRange(unit, command)) return false;
      if (command.blockCount > unit.maxTransferBlocks)
        return fail(invalidFieldInCdb(command, sense, lengthField));
      command.dataInBufferBytes = bytes;
      return true;
    case ScsiOpcode.WRITE_6:
    case ScsiOpcode.WRITE_10:
    case ScsiOpcode.WRITE_12:
    case ScsiOpcode.WRITE_16:
    case ScsiOpcode.WRITE_AND_VERIFY_10:
    case ScsiOpcode.WRITE_AND_VERIFY_12:
    case ScsiOpcode.WRITE_AND_VERIFY_16:
      if (opcode !== ScsiOpcode.WRITE_6 && protectField !== 0)
        return fail(invalidFieldInCdb(command, sense, 1, 7));
      if (!inRange(unit, command)) return false;
      if (command.blockCount > unit.maxTransferBlocks)
        return fail(invalidFieldInCdb(command, sense, lengthField));
      if (!writable(unit, command)) return false;
      command.forceUnitAccess = opcode !== ScsiOpcode.WRITE_6 && (cdb[1] & 0x08) !== 0;
      command.dataOutBytes = bytes;
      return true;
    case ScsiOpcode.VERIFY_10:
    case ScsiOpcode.VERIFY_12:
    case ScsiOpcode.VERIFY_16: {
      if (protectField !== 0) return fail(invalidFieldInCdb(command, sense, 1, 7));
      const byteCheck = (cdb[1] >> 1) & 0x03;
      if (byteCheck === 2 || byteCheck === 3) return fail(invalidFieldInCdb(command, sense, 1, 2));
      if (!inRange(unit, command)) return false;
      if (command.blockCount > unit.maxTransferBlocks)
        return fail(invalidFieldInCdb(command, sense, lengthField));
      command.dataOutBytes = byteCheck === 1 ? bytes : 0;
      return true;
    }
    case ScsiOpcode.COMPARE_AND_WRITE:
      if (protectField !== 0) return fail(invalidFieldInCdb(command, sense, 1, 7));
      if (command.blockCount > MAX_COMPARE_AND_WRITE_BLOCKS)
        return fail(invalidFieldInCdb(command, sense, 13));
      if (!inRange(unit, command)) return false;
      if (command.dataOutAnnounced && command.expectedTransferBytes !== 2 * bytes) {
        return fail(invalidFieldInCdb(command, sense, 13));
      }
      if (!writable(unit, command)) return false;
      command.forceUnitAccess = (cdb[1] & 0x08) !== 0;
      command.dataOutBytes = 2 * bytes;
      return true;
    case ScsiOpcode.WRITE_SAME_10:
    case ScsiOpcode.WRITE_SAME_16:
      return planWriteSame(unit, command, lengthField);
    case ScsiOpcode.PRE_FETCH_10:
    case ScsiOpcode.PRE_FETCH_16:
      return inRange(unit, command);
    case ScsiOpcode.SYNCHRONIZE_CACHE_10:
    case ScsiOpcode.SYNCHRONIZE_CACHE_16:
      return inRange(unit, command);
    case ScsiOpcode.UNMAP: {
      if (cdb[1] & 0x01) return fail(invalidFieldInCdb(command, sense, 1, 0)); // ANCHOR: not supported
      const parameterBytes = cdb.readUInt16BE(7);
      if (parameterBytes > MAX_CONTROL_DATA_BYTES) return fail(invalidFieldInCdb(command, sense, 7));
      if (!writable(unit, command)) return false;
      command.dataOutBytes = parameterBytes;
      return true;
    }
    default:
      return fail(invalidFieldInCdb(command, sense, 0));
  }
}

function planWriteSame(unit: LogicalUnit, command: ScsiCommand, lengthField: number): boolean {
  const cdb = command.cdb;
  const sense = unit.descriptorSense;
  if (cdb[1] >> 5 !== 0) return fail(invalidFieldInCdb(command, sense, 1, 7));
  if (cdb[1] & 0x10) return fail(invalidFieldInCdb(command, sense, 1, 4)); // ANCHOR: not supported
  const noDataOutBuffer = cdb[0] === ScsiOpcode.WRITE_SAME_16 && (cdb[1] & 0x01) !== 0;
  if (command.lba > unit.capacityBlocks) return fail(lbaOutOfRange(command, sense));
  // A count of zero means "to the end of the medium" (WSNZ is 0).
  if (command.blockCount === 0) command.blockCount = unit.capacityBlocks - command.lba;
  if (!inRange(unit, command)) return false;
  if (command.blockCount > MAX_WRITE_SAME_BLOCKS) return fail(invalidFieldInCdb(command, sense, lengthField));
  if (!noDataOutBuffer && command.expectedTransferBytes !== LOGICAL_BLOCK_BYTES) {
    return fail(invalidFieldInCdb(command, sense, lengthField));
  }
  if (!writable(unit, command)) return false;
  command.dataOutBytes = noDataOutBuffer ? 0 : LOGICAL_BLOCK_BYTES;
  return true;
}

function writable(unit: LogicalUnit, command: ScsiCommand): boolean {
  if (!unit.readOnly) return true;
  checkCondition(command, SenseKey.DATA_PROTECT, AdditionalSense.WRITE_PROTECTED, unit.descriptorSense);
  return false;
}

/** Marks a plan step that already ended the command (its argument is the sense call). */
function fail(_ended: unknown): false {
  return false;
}

/** Executes a planned media command. Device errors propagate to the caller, which maps them. */
export async function executeBlockCommand(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  switch (command.cdb[0]) {
    case ScsiOpcode.READ_6:
    case ScsiOpcode.READ_10:
    case ScsiOpcode.READ_12:
    case ScsiOpcode.READ_16:
      return read(unit, command);
    case ScsiOpcode.WRITE_6:
    case ScsiOpcode.WRITE_10:
    case ScsiOpcode.WRITE_12:
    case ScsiOpcode.WRITE_16:
      return write(unit, command, false);
    case ScsiOpcode.WRITE_AND_VERIFY_10:
    case ScsiOpcode.WRITE_AND_VERIFY_12:
    case ScsiOpcode.WRITE_AND_VERIFY_16:
      return write(unit, command, true);
    case ScsiOpcode.VERIFY_10:
    case ScsiOpcode.VERIFY_12:
    case ScsiOpcode.VERIFY_16:
      return verify(unit, command);
    case ScsiOpcode.COMPARE_AND_WRITE:
      return compareAndWrite(unit, command);
    case ScsiOpcode.WRITE_SAME_10:
    case ScsiOpcode.WRITE_SAME_16:
      return writeSame(unit, command);
    case ScsiOpcode.UNMAP:
      return unmap(unit, command);
    case ScsiOpcode.SYNCHRONIZE_CACHE_10:
    case ScsiOpcode.SYNCHRONIZE_CACHE_16:
      return unit.device.flush();
    default:
      // PRE-FETCH: the device has no read cache to fill; the range was checked by plan.
      return;
  }
}

async function read(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  const bytes = command.blockCount * LOGICAL_BLOCK_BYTES;
  if (bytes === 0) return;
  const lock = await unit.locks.acquire(command.lba, command.blockCount, false);
  try {
    await unit.device.read(command.lba * LOGICAL_BLOCK_BYTES, command.buffer!.subarray(0, bytes));
  } finally {
    unit.locks.release(lock);
  }
  command.dataInBytes = bytes;
}

async function write(unit: LogicalUnit, command: ScsiCommand, verifyAfter: boolean): Promise<void> {
  // When the initiator sent less than the CDB asked for, only whole blocks received are written.
  const blocks = Math.min(command.blockCount, Math.floor(command.receivedDataOutBytes / LOGICAL_BLOCK_BYTES));
  if (blocks === 0) return;
  const bytes = blocks * LOGICAL_BLOCK_BYTES;
  const data = command.buffer!.subarray(0, bytes);
  const offsetBytes = command.lba * LOGICAL_BLOCK_BYTES;
  const fua = command.forceUnitAccess || !unit.mode.writeCacheEnabled;
  const lock = await unit.locks.acquire(command.lba, blocks, false);
  try {
    await unit.device.write(offsetBytes, data, fua ? FUA : NO_FUA);
    if (!verifyAfter) return;
    const readBack = unit.borrowScratch(bytes);
    try {
      await unit.device.read(offsetBytes, readBack.subarray(0, bytes));
      const mismatch = firstMismatch(readBack, data, bytes);
      if (mismatch >= 0) miscompare(unit, command, mismatch);
    } finally {
      unit.returnScratch(readBack);
    }
  } finally {
    unit.locks.release(lock);
  }
}

const FUA = { fua: true };
const NO_FUA = { fua: false };

async function verify(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  const bytes = command.blockCount * LOGICAL_BLOCK_BYTES;
  if (bytes === 0) return;
  const compare = command.dataOutBytes > 0;
  if (compare && command.receivedDataOutBytes < bytes) {
    checkCondition(
      command,
      SenseKey.ILLEGAL_REQUEST,
      AdditionalSense.INVALID_FIELD_IN_CDB,
      unit.descriptorSense,
    );
    return;
  }
  const scratch = unit.borrowScratch(bytes);
  const lock = await unit.locks.acquire(command.lba, command.blockCount, false);
  try {
    // The read checks every block against its checksum: that is the medium verification.
    await unit.device.read(command.lba * LOGICAL_BLOCK_BYTES, scratch.subarray(0, bytes));
    if (compare) {
      const mismatch = firstMismatch(scratch, command.buffer!, bytes);
      if (mismatch >= 0) miscompare(unit, command, mismatch);
    }
  } finally {
    unit.locks.release(lock);
    unit.returnScratch(scratch);
  }
}

async function compareAndWrite(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  const bytes = command.blockCount * LOGICAL_BLOCK_BYTES;
  if (bytes === 0) return;
  if (command.receivedDataOutBytes < 2 * bytes) {
    checkCondition(
      command,
      SenseKey.ILLEGAL_REQUEST,
      AdditionalSense.INVALID_FIELD_IN_CDB,
      unit.descriptorSense,
      {
        fieldPointer: { byte: 13, inCdb: true },
      },
    );
    return;
  }
  const data = command.buffer!;
  const scratch = unit.borrowScratch(bytes);
  const lock = await unit.locks.acquire(command.lba, command.blockCount, true);
  try {
    const offsetBytes = command.lba * LOGICAL_BLOCK_BYTES;
    await unit.device.read(offsetBytes, scratch.subarray(0, bytes));
    const mismatch = firstMismatch(scratch, data, bytes);
    if (mismatch >= 0) {
      miscompare(unit, command, mismatch);
      return;
    }
    const fua = command.forceUnitAccess || !unit.mode.writeCacheEnabled;
    await unit.device.write(offsetBytes, data.subarray(bytes, 2 * bytes), fua ? FUA : NO_FUA);
  } finally {
    unit.locks.release(lock);
    unit.returnScratch(scratch);
  }
}

async function writeSame(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  if (command.blockCount === 0) return;
  const cdb = command.cdb;
  const unmapRequested = (cdb[1] & 0x08) !== 0;
  const noDataOutBuffer = command.dataOutBytes === 0;
  const block = noDataOutBuffer ? null : command.buffer!.subarray(0, LOGICAL_BLOCK_BYTES);
  const offsetBytes = command.lba * LOGICAL_BLOCK_BYTES;
  const totalBytes = command.blockCount * LOGICAL_BLOCK_BYTES;
  const lock = await unit.locks.acquire(command.lba, command.blockCount, false);
  try {
    if (unmapRequested) {
      // With UNMAP set the blocks are deallocated and read zeros afterwards (LBPRZ), whatever
      // the data-out block holds; this is what Linux LIO does and what libiscsi checks.
      await unit.device.unmap(offsetBytes, totalBytes);
      return;
    }
    const chunkBytes = Math.min(WRITE_SAME_CHUNK_BYTES, totalBytes);
    const chunk = unit.borrowScratch(chunkBytes);
    try {
      if (block === null) chunk.fill(0, 0, chunkBytes);
      else
        for (let position = 0; position < chunkBytes; position += LOGICAL_BLOCK_BYTES)
          block.copy(chunk, position);
      for (let done = 0; done < totalBytes; ) {
        const length = Math.min(chunkBytes, totalBytes - done);
        await unit.device.write(offsetBytes + done, chunk.subarray(0, length), NO_FUA);
        done += length;
      }
    } finally {
      unit.returnScratch(chunk);
    }
  } finally {
    unit.locks.release(lock);
  }
}

async function unmap(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  const sense = unit.descriptorSense;
  const list = command.dataOut();
  if (command.dataOutBytes === 0) return;
  if (list.length < 8) {
    checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR, sense);
    return;
  }
  const descriptorBytes = Math.min(list.readUInt16BE(2), list.length - 8);
  const count = Math.floor(descriptorBytes / 16);
  if (count > MAX_UNMAP_DESCRIPTORS) return invalidFieldInParameterList(command, sense, 2);
  // Check every descriptor before unmapping anything.
  for (let index = 0; index < count; index++) {
    const offset = 8 + index * 16;
    const lba = readLba(list, offset, 8);
    const blocks = list.readUInt32BE(offset + 8);
    if (blocks > MAX_UNMAP_BLOCKS) return invalidFieldInParameterList(command, sense, offset + 8);
    if (lba + blocks > unit.capacityBlocks) return lbaOutOfRange(command, sense);
  }
  for (let index = 0; index < count; index++) {
    const offset = 8 + index * 16;
    const lba = readLba(list, offset, 8);
    const blocks = list.readUInt32BE(offset + 8);
    if (blocks === 0) continue;
    const lock = await unit.locks.acquire(lba, blocks, false);
    try {
      await unit.device.unmap(lba * LOGICAL_BLOCK_BYTES, blocks * LOGICAL_BLOCK_BYTES);
    } finally {
      unit.locks.release(lock);
    }
  }
}

/** GET LBA STATUS (SBC-3 5.6): mapped / deallocated runs from the requested LBA. */
export async function getLbaStatus(unit: LogicalUnit, command: ScsiCommand): Promise<void> {
  const cdb = command.cdb;
  const lba = readLba(cdb, 2, 8);
  const allocationBytes = cdb.readUInt32BE(10);
  if (lba >= unit.capacityBlocks) return lbaOutOfRange(command, unit.descriptorSense);
  const out = command.buffer!;
  const maxDescriptors = Math.max(0, Math.floor((out.length - 8) / 16));
  const remainingBlocks = unit.capacityBlocks - lba;
  // Ask for at most 1 GiB at a time: the answer may cover less, as the standard allows.
  const queryBlocks = Math.min(remainingBlocks, (1 << 30) / LOGICAL_BLOCK_BYTES);
  const runs = await unit.device.mappingStatus(lba * LOGICAL_BLOCK_BYTES, queryBlocks * LOGICAL_BLOCK_BYTES);
  let offset = 8;
  for (let index = 0; index < runs.length && index < maxDescriptors; index++) {
    const run = runs[index];
    out.fill(0, offset, offset + 16);
    const first = Math.floor(run.offsetBytes / LOGICAL_BLOCK_BYTES);
    out.writeUInt32BE(Math.floor(first / 2 ** 32), offset);
    out.writeUInt32BE(first >>> 0, offset + 4);
    out.writeUInt32BE(Math.min(Math.ceil(run.lengthBytes / LOGICAL_BLOCK_BYTES), 0xffffffff), offset + 8);
    out[offset + 12] = run.mapped ? 0x00 : 0x01; // mapped / deallocated
    offset += 16;
  }
  out.writeUInt32BE(offset - 4, 0);
  out.writeUInt32BE(0, 4);
  command.dataInBytes = Math.min(offset, allocationBytes);
}

/** READ CAPACITY(10) and READ CAPACITY(16). */
export function readCapacity(unit: LogicalUnit, command: ScsiCommand): void {
  const cdb = command.cdb;
  const out = command.buffer!;
  const lastLba = unit.capacityBlocks - 1;
  if (cdb[0] === ScsiOpcode.READ_CAPACITY_10) {
    const partialMediumIndicator = (cdb[8] & 0x01) !== 0;
    if (!partialMediumIndicator && cdb.readUInt32BE(2) !== 0) {
      invalidFieldInCdb(command, unit.descriptorSense, 2);
      return;
    }
    out.writeUInt32BE(Math.min(lastLba, 0xffffffff), 0);
    out.writeUInt32BE(LOGICAL_BLOCK_BYTES, 4);
    command.dataInBytes = 8;
    return;
  }
  const allocationBytes = cdb.readUInt32BE(10);
  out.fill(0, 0, 32);
  out.writeUInt32BE(Math.floor(lastLba / 2 ** 32), 0);
  out.writeUInt32BE(lastLba >>> 0, 4);
  out.writeUInt32BE(LOGICAL_BLOCK_BYTES, 8);
  out[13] = PHYSICAL_BLOCK_EXPONENT;
  out[14] = 0x80 | 0x40; // LBPME (thin provisioned), LBPRZ (unmapped blocks read zeros)
  command.dataInBytes = Math.min(32, allocationBytes);
}

function firstMismatch(a: Buffer, b: Buffer, bytes: number): number {
  if (a.compare(b, 0, bytes, 0, bytes) === 0) return -1;
  for (let index = 0; index < bytes; index++) if (a[index] !== b[index]) return index;
  return -1;
}

function miscompare(unit: LogicalUnit, command: ScsiCommand, offset: number): void {
  checkCondition(
    command,
    SenseKey.MISCOMPARE,
    AdditionalSense.MISCOMPARE_DURING_VERIFY,
    unit.descriptorSense,
    {
      information: offset,
    },
  );
}
