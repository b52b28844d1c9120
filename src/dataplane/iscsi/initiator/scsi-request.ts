import { HornbillError } from '../../../errors.ts';
import { ScsiStatus } from '../scsi/constants.ts';

/** The outcome of one SCSI command. Objects handed to callbacks are reused afterwards. */
export class ScsiResult {
  status = 0;
  /** Sense data as received (fixed or descriptor format), `senseLength` bytes valid. */
  readonly sense = Buffer.alloc(252);
  senseLength = 0;
  /** Data-in bytes received. */
  dataInBytes = 0;
  overflow = false;
  underflow = false;
  residual = 0;

  get senseKey(): number {
    if (this.senseLength === 0) return 0;
    return (this.sense[0] & 0x7f) >= 0x72 ? this.sense[1] & 0x0f : this.sense[2] & 0x0f;
  }

  /** (ASC << 8) | ASCQ. */
  get additionalSense(): number {
    if (this.senseLength === 0) return 0;
    if ((this.sense[0] & 0x7f) >= 0x72) return (this.sense[2] << 8) | this.sense[3];
    return (this.sense[12] << 8) | this.sense[13];
  }

  /** The INFORMATION field of fixed-format sense data (e.g. the miscompare offset), or null. */
  get information(): number | null {
    if (this.senseLength === 0 || (this.sense[0] & 0x80) === 0 || (this.sense[0] & 0x7f) >= 0x72) return null;
    return this.sense.readUInt32BE(3);
  }

  reset(): void {
    this.status = 0;
    this.senseLength = 0;
    this.dataInBytes = 0;
    this.overflow = false;
    this.underflow = false;
    this.residual = 0;
  }

  /** A detached copy (for promise-based callers). */
  clone(): ScsiResult {
    const copy = new ScsiResult();
    copy.status = this.status;
    this.sense.copy(copy.sense, 0, 0, this.senseLength);
    copy.senseLength = this.senseLength;
    copy.dataInBytes = this.dataInBytes;
    copy.overflow = this.overflow;
    copy.underflow = this.underflow;
    copy.residual = this.residual;
    return copy;
  }

  /** Throws ISCSI_SCSI_ERROR unless the status is GOOD (or CONDITION MET). */
  expectGood(what: string): void {
    if (this.status === ScsiStatus.GOOD || this.status === ScsiStatus.CONDITION_MET) return;
    throw scsiError(what, this);
  }
}

export function scsiError(what: string, result: ScsiResult): HornbillError {
  const senseKey = result.senseKey;
  const additionalSense = result.additionalSense;
  return new HornbillError(
    'ISCSI_SCSI_ERROR',
    `${what}: SCSI status 0x${result.status.toString(16)}` +
      (result.senseLength > 0
        ? `, sense key 0x${senseKey.toString(16)}, ASC/ASCQ 0x${additionalSense.toString(16).padStart(4, '0')}`
        : ''),
    { status: result.status, senseKey, additionalSense, information: result.information },
  );
}

/** CDB builders (SBC-3). Each writes into `cdb` (16 bytes, zeroed first) and returns the CDB length. */
export const Cdb = {
  read10(cdb: Buffer, lba: number, blocks: number, fua = false): number {
    cdb.fill(0);
    cdb[0] = 0x28;
    cdb[1] = fua ? 0x08 : 0;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(blocks, 7);
    return 10;
  },
  read16(cdb: Buffer, lba: number, blocks: number, fua = false): number {
    cdb.fill(0);
    cdb[0] = 0x88;
    cdb[1] = fua ? 0x08 : 0;
    writeLba64(cdb, 2, lba);
    cdb.writeUInt32BE(blocks, 10);
    return 16;
  },
  write10(cdb: Buffer, lba: number, blocks: number, fua = false): number {
    Cdb.read10(cdb, lba, blocks, fua);
    cdb[0] = 0x2a;
    return 10;
  },
  write16(cdb: Buffer, lba: number, blocks: number, fua = false): number {
    Cdb.read16(cdb, lba, blocks, fua);
    cdb[0] = 0x8a;
    return 16;
  },
  synchronizeCache10(cdb: Buffer): number {
    cdb.fill(0);
    cdb[0] = 0x35;
    return 10;
  },
  unmap(cdb: Buffer, parameterBytes: number): number {
    cdb.fill(0);
    cdb[0] = 0x42;
    cdb.writeUInt16BE(parameterBytes, 7);
    return 10;
  },
  inquiry(cdb: Buffer, page: number | null, allocationBytes: number): number {
    cdb.fill(0);
    cdb[0] = 0x12;
    if (page !== null) {
      cdb[1] = 0x01;
      cdb[2] = page;
    }
    cdb.writeUInt16BE(allocationBytes, 3);
    return 6;
  },
  readCapacity16(cdb: Buffer, allocationBytes: number): number {
    cdb.fill(0);
    cdb[0] = 0x9e;
    cdb[1] = 0x10;
    cdb.writeUInt32BE(allocationBytes, 10);
    return 16;
  },
  testUnitReady(cdb: Buffer): number {
    cdb.fill(0);
    return 6;
  },
};

function writeLba64(cdb: Buffer, offset: number, lba: number): void {
  cdb.writeUInt32BE(Math.floor(lba / 2 ** 32), offset);
  cdb.writeUInt32BE(lba >>> 0, offset + 4);
}

/** The UNMAP parameter list (SBC-3 5.28) for a set of block ranges. */
export function unmapParameterList(ranges: readonly { lba: number; blocks: number }[]): Buffer {
  const list = Buffer.alloc(8 + 16 * ranges.length);
  list.writeUInt16BE(list.length - 2, 0);
  list.writeUInt16BE(16 * ranges.length, 2);
  ranges.forEach((range, index) => {
    writeLba64(list, 8 + index * 16, range.lba);
    list.writeUInt32BE(range.blocks, 8 + index * 16 + 8);
  });
  return list;
}

export interface Capacity {
  /** Number of logical blocks. */
  blocks: number;
  blockBytes: number;
  /** log2(physical block / logical block). */
  physicalBlockExponent: number;
  thinProvisioned: boolean;
  unmappedReadsZero: boolean;
}

export function parseReadCapacity16(data: Buffer): Capacity {
  const lastLba = data.readUInt32BE(0) * 2 ** 32 + data.readUInt32BE(4);
  return {
    blocks: lastLba + 1,
    blockBytes: data.readUInt32BE(8),
    physicalBlockExponent: data[13] & 0x0f,
    thinProvisioned: (data[14] & 0x80) !== 0,
    unmappedReadsZero: (data[14] & 0x40) !== 0,
  };
}
