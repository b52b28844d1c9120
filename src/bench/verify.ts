import { randomBytes, randomInt } from 'node:crypto';
import { assert } from '../assert.ts';
import { HornbillError } from '../errors.ts';
import { crc32cRange } from '../native.ts';

/**
 * `--verify crc32c`: every unit (the job's smallest block size) written carries a header
 * and a pattern; every unit read is checked (docs/bench.md, "Verify"). Header, little-endian:
 *
 *   0  u32 magic 0x31564248 ("HBV1")    16 u32 run id (random per run)
 *   4  u32 unit bytes                    20 u32 generation (per write, increasing)
 *   8  u64 byte offset of the unit       24 u32 CRC32C of bytes 0-23 and 28-end
 *                                        28 u32 zero; 32… pattern
 *
 * Per unit, the state remembers the oldest generation the storage may hold (the floor):
 * a read that returns an older generation of this run is a lost write, one with another
 * offset a misdirected write, a bad CRC a torn or damaged block.
 */

export const VERIFY_MAGIC = 0x31564248;
export const VERIFY_HEADER_BYTES = 32;
/** The state costs 10 bytes per unit; this bounds it to 80 MiB (32 GiB of 4 KiB units). */
export const MAXIMUM_VERIFY_UNITS = 8 * 1024 * 1024;
/** Corrupted blocks remembered with their offset (all are counted). */
export const MAXIMUM_REPORTED_CORRUPTIONS = 100;
/** Floor value of a unit whose content is unknown (a write to it failed). */
const UNKNOWN = 0xffffffff;

export type CorruptionReason =
  | 'no header (zeros)'
  | 'no header'
  | 'written with another block size'
  | 'wrong offset (misdirected write)'
  | 'checksum mismatch'
  | 'stale data (lost write)';

export interface Corruption {
  offsetBytes: number;
  reason: CorruptionReason;
  job: string;
}

export class VerifyState {
  readonly unitBytes: number;
  readonly baseOffsetBytes: number;
  readonly unitCount: number;
  readonly runId: number;
  /** Read jobs expect every unit to carry a header (written by an earlier --verify run). */
  readonly requireHeader: boolean;
  readonly jobName: string;
  private nextGeneration = 1;
  /** Oldest generation the storage may hold for each unit; 0: not written in this run. */
  private readonly floor: Uint32Array;
  /** Generation of the first write of the current overlapping batch of writes to a unit. */
  private readonly batchFloor: Uint32Array;
  /** Writes in flight per unit. */
  private readonly writesInFlight: Uint16Array;
  /** Writes started per unit (wrapping): tells a read that a write overlapped it. */
  private readonly writesStarted: Uint16Array;
  private readonly pattern: Buffer;
  private readonly zeros: Buffer;
  checkedUnits = 0;
  /** Units that read as zeros and were never written (accepted in mixed jobs). */
  unwrittenUnits = 0;
  /** Units not checked because a write to them ran at the same time or had failed. */
  skippedUnits = 0;
  corruptedUnits = 0;
  readonly corruptions: Corruption[] = [];
  /** Offset of the first corrupted unit found by the last checkRead. */
  lastCorruptionOffsetBytes = -1;

  constructor(options: {
    unitBytes: number;
    baseOffsetBytes: number;
    lengthBytes: number;
    requireHeader: boolean;
    jobName: string;
  }) {
    const { unitBytes, baseOffsetBytes, lengthBytes } = options;
    assert(unitBytes >= 512 && unitBytes % 512 === 0, 'verify unit is a multiple of 512 bytes');
    assert(baseOffsetBytes % unitBytes === 0, 'verify region starts on a unit');
    const unitCount = Math.floor(lengthBytes / unitBytes);
    if (unitCount > MAXIMUM_VERIFY_UNITS) {
      throw new HornbillError(
        'CLI_USAGE',
        `--verify covers at most ${MAXIMUM_VERIFY_UNITS} blocks of ${unitBytes} bytes; make --size smaller`,
      );
    }
    this.unitBytes = unitBytes;
    this.baseOffsetBytes = baseOffsetBytes;
    this.unitCount = unitCount;
    this.requireHeader = options.requireHeader;
    this.jobName = options.jobName;
    this.runId = randomInt(1, 0xffffffff);
    this.floor = new Uint32Array(unitCount);
    this.batchFloor = new Uint32Array(unitCount);
    this.writesInFlight = new Uint16Array(unitCount);
    this.writesStarted = new Uint16Array(unitCount);
    this.pattern = randomBytes(unitBytes + 256);
    this.zeros = Buffer.alloc(unitBytes);
  }

  private unitOf(offsetBytes: number): number {
    const unit = (offsetBytes - this.baseOffsetBytes) / this.unitBytes;
    assert(Number.isInteger(unit) && unit >= 0 && unit < this.unitCount, 'I/O inside the verify region');
    return unit;
  }

  /** Fills `data` (to be written at `offsetBytes`) with headers and pattern; returns its generation. */
  prepareWrite(offsetBytes: number, data: Buffer): number {
    const generation = this.nextGeneration++;
    assert(generation < UNKNOWN, 'verify generations exhausted');
    const unitBytes = this.unitBytes;
    const first = this.unitOf(offsetBytes);
    const shift = generation & 255;
    for (let position = 0, unit = first; position < data.length; position += unitBytes, unit++) {
      this.pattern.copy(data, position + VERIFY_HEADER_BYTES, shift, shift + unitBytes - VERIFY_HEADER_BYTES);
      const unitOffset = offsetBytes + position;
      data.writeUInt32LE(VERIFY_MAGIC, position);
      data.writeUInt32LE(unitBytes, position + 4);
      data.writeUInt32LE(unitOffset % 2 ** 32, position + 8);
      data.writeUInt32LE(Math.floor(unitOffset / 2 ** 32), position + 12);
      data.writeUInt32LE(this.runId, position + 16);
      data.writeUInt32LE(generation, position + 20);
      data.writeUInt32LE(0, position + 28);
      const checksum = crc32cRange(data, position + 28, unitBytes - 28, crc32cRange(data, position, 24));
      data.writeUInt32LE(checksum, position + 24);
      if (this.writesInFlight[unit]++ === 0) this.batchFloor[unit] = generation;
      this.writesStarted[unit]++;
    }
    return generation;
  }

  /** A write finished: once no write to a unit is in flight, its floor moves up. */
  completeWrite(offsetBytes: number, lengthBytes: number, succeeded: boolean): void {
    const first = this.unitOf(offsetBytes);
    const last = first + lengthBytes / this.unitBytes;
    for (let unit = first; unit < last; unit++) {
      assert(this.writesInFlight[unit] > 0, 'a write completes that was started');
      if (!succeeded) this.batchFloor[unit] = UNKNOWN;
      if (--this.writesInFlight[unit] === 0) this.floor[unit] = this.batchFloor[unit];
    }
  }

  /** Before a read: what each unit must hold, into `expectation` (two words per unit). */
  prepareRead(offsetBytes: number, lengthBytes: number, expectation: Uint32Array): void {
    const first = this.unitOf(offsetBytes);
    const units = lengthBytes / this.unitBytes;
    assert(expectation.length >= units * 2, 'expectation array holds every unit of the read');
    for (let index = 0; index < units; index++) {
      const unit = first + index;
      expectation[index * 2] = this.writesInFlight[unit] > 0 ? UNKNOWN : this.floor[unit];
      expectation[index * 2 + 1] = this.writesStarted[unit];
    }
  }

  /** After a read: checks every unit of `data`; returns the number of corrupted units. */
  checkRead(offsetBytes: number, data: Buffer, expectation: Uint32Array): number {
    const unitBytes = this.unitBytes;
    const first = this.unitOf(offsetBytes);
    let corrupted = 0;
    this.lastCorruptionOffsetBytes = -1;
    for (let position = 0, index = 0; position < data.length; position += unitBytes, index++) {
      const unit = first + index;
      const floor = expectation[index * 2];
      if (floor === UNKNOWN || this.writesStarted[unit] !== expectation[index * 2 + 1]) {
        this.skippedUnits++;
        continue;
      }
      this.checkedUnits++;
      const reason = this.checkUnit(data, position, offsetBytes + position, floor);
      if (reason === null) continue;
      if (corrupted++ === 0) this.lastCorruptionOffsetBytes = offsetBytes + position;
      this.corruptedUnits++;
      if (this.corruptions.length < MAXIMUM_REPORTED_CORRUPTIONS)
        this.corruptions.push({ offsetBytes: offsetBytes + position, reason, job: this.jobName });
    }
    return corrupted;
  }

  private checkUnit(
    data: Buffer,
    position: number,
    unitOffset: number,
    floor: number,
  ): CorruptionReason | null {
    const unitBytes = this.unitBytes;
    if (data.readUInt32LE(position) !== VERIFY_MAGIC) {
      const zero = data.compare(this.zeros, 0, unitBytes, position, position + unitBytes) === 0;
      if (zero && floor === 0 && !this.requireHeader) {
        this.unwrittenUnits++;
        return null;
      }
      return zero ? 'no header (zeros)' : 'no header';
    }
    if (data.readUInt32LE(position + 4) !== unitBytes) return 'written with another block size';
    const offset = data.readUInt32LE(position + 8) + data.readUInt32LE(position + 12) * 2 ** 32;
    const checksum = crc32cRange(data, position + 28, unitBytes - 28, crc32cRange(data, position, 24));
    if (checksum !== data.readUInt32LE(position + 24)) return 'checksum mismatch';
    if (offset !== unitOffset) return 'wrong offset (misdirected write)';
    if (floor !== 0) {
      const runId = data.readUInt32LE(position + 16);
      const generation = data.readUInt32LE(position + 20);
      if (runId !== this.runId || generation < floor || generation >= this.nextGeneration)
        return 'stale data (lost write)';
    }
    return null;
  }

  /**
   * The next contiguous run of units written in this run, from `cursor.unit` up to
   * `cursor.endUnit`, at most `maximumBytes` long (the read-back after the writes). Sets
   * `cursor.offsetBytes` and `cursor.lengthBytes` and moves `cursor.unit` past it; false
   * when no written unit is left.
   */
  nextWrittenRun(cursor: ReadBackCursor, maximumBytes: number): boolean {
    const perRun = Math.max(1, Math.floor(maximumBytes / this.unitBytes));
    const end = Math.min(cursor.endUnit, this.unitCount);
    let unit = cursor.unit;
    while (unit < end && !this.isWritten(unit)) unit++;
    if (unit >= end) {
      cursor.unit = end;
      return false;
    }
    const start = unit;
    while (unit < end && unit - start < perRun && this.isWritten(unit)) unit++;
    cursor.unit = unit;
    cursor.offsetBytes = this.baseOffsetBytes + start * this.unitBytes;
    cursor.lengthBytes = (unit - start) * this.unitBytes;
    return true;
  }

  private isWritten(unit: number): boolean {
    return this.floor[unit] !== 0 && this.floor[unit] !== UNKNOWN;
  }
}

export interface ReadBackCursor {
  unit: number;
  endUnit: number;
  offsetBytes: number;
  lengthBytes: number;
}
