/**
 * iSCSI PDU basic header segment (RFC 7143 §11.2): 48 bytes, big-endian, then optional
 * additional header segments, an optional header digest, the data segment padded to 4 bytes
 * and an optional data digest.
 *
 * `PduHeader` is a view over one 48-byte buffer with named fields. A connection owns a few
 * and reuses them for every PDU, so parsing and building headers allocates nothing. Fields
 * that share an offset carry the name each direction uses (CmdSN / StatSN at 24, …).
 */

export const BHS_BYTES = 48;
export const DIGEST_BYTES = 4;
/** Largest data segment any PDU may carry (the field is 24 bits). */
export const MAX_DATA_SEGMENT_BYTES = 0xffffff;
export const RESERVED_TAG = 0xffffffff;

export const Opcode = {
  // initiator → target
  NOP_OUT: 0x00,
  SCSI_COMMAND: 0x01,
  TASK_MANAGEMENT_REQUEST: 0x02,
  LOGIN_REQUEST: 0x03,
  TEXT_REQUEST: 0x04,
  DATA_OUT: 0x05,
  LOGOUT_REQUEST: 0x06,
  SNACK_REQUEST: 0x10,
  // target → initiator
  NOP_IN: 0x20,
  SCSI_RESPONSE: 0x21,
  TASK_MANAGEMENT_RESPONSE: 0x22,
  LOGIN_RESPONSE: 0x23,
  TEXT_RESPONSE: 0x24,
  DATA_IN: 0x25,
  LOGOUT_RESPONSE: 0x26,
  READY_TO_TRANSFER: 0x31,
  ASYNC_MESSAGE: 0x32,
  REJECT: 0x3f,
} as const;

/** Flags in byte 1. */
export const Flag = {
  FINAL: 0x80,
  // SCSI Command
  READ: 0x40,
  WRITE: 0x20,
  // Login
  TRANSIT: 0x80,
  CONTINUE: 0x40,
  // Data-In
  ACKNOWLEDGE: 0x40,
  STATUS: 0x01,
  // SCSI Response / Data-In residuals
  BIDIRECTIONAL_OVERFLOW: 0x10,
  BIDIRECTIONAL_UNDERFLOW: 0x08,
  OVERFLOW: 0x04,
  UNDERFLOW: 0x02,
} as const;

/** Reject reasons (RFC 7143 §11.17.1). */
export const RejectReason = {
  DATA_DIGEST_ERROR: 0x02,
  SNACK_REJECT: 0x03,
  PROTOCOL_ERROR: 0x04,
  COMMAND_NOT_SUPPORTED: 0x05,
  IMMEDIATE_COMMAND_REJECT: 0x06,
  TASK_IN_PROGRESS: 0x07,
  INVALID_DATA_ACK: 0x08,
  INVALID_PDU_FIELD: 0x09,
  LONG_OPERATION_REJECT: 0x0a,
  WAITING_FOR_LOGOUT: 0x0c,
} as const;

export function opcodeName(opcode: number): string {
  for (const [name, value] of Object.entries(Opcode)) if (value === opcode) return name;
  return `0x${opcode.toString(16).padStart(2, '0')}`;
}

/** Bytes of a data segment once padded to a 4-byte boundary. */
export function paddedLength(bytes: number): number {
  return (bytes + 3) & ~3;
}

export class PduHeader {
  readonly bytes: Buffer;

  constructor(bytes: Buffer = Buffer.alloc(BHS_BYTES)) {
    if (bytes.length !== BHS_BYTES) throw new RangeError(`a basic header segment is ${BHS_BYTES} bytes`);
    this.bytes = bytes;
  }

  clear(): this {
    this.bytes.fill(0);
    return this;
  }

  /** Copies another header's bytes (e.g. the received header into a reject's data). */
  copyFrom(source: Uint8Array): this {
    this.bytes.set(source.subarray(0, BHS_BYTES));
    return this;
  }

  // ---- byte 0-3 -------------------------------------------------------------------------
  get opcode(): number {
    return this.bytes[0] & 0x3f;
  }
  set opcode(value: number) {
    this.bytes[0] = (this.bytes[0] & 0x40) | (value & 0x3f);
  }
  /** The I bit: an immediate command (initiator → target only). */
  get immediate(): boolean {
    return (this.bytes[0] & 0x40) !== 0;
  }
  set immediate(value: boolean) {
    this.bytes[0] = (this.bytes[0] & 0x3f) | (value ? 0x40 : 0);
  }
  get flags(): number {
    return this.bytes[1];
  }
  set flags(value: number) {
    this.bytes[1] = value;
  }
  get final(): boolean {
    return (this.bytes[1] & Flag.FINAL) !== 0;
  }
  /** Byte 2: response (SCSI/TMF/logout), reject reason, version-max (login). */
  get byte2(): number {
    return this.bytes[2];
  }
  set byte2(value: number) {
    this.bytes[2] = value;
  }
  /** Byte 3: SCSI status, version-active/min (login). */
  get byte3(): number {
    return this.bytes[3];
  }
  set byte3(value: number) {
    this.bytes[3] = value;
  }

  // ---- byte 4-7 -------------------------------------------------------------------------
  get totalAhsLength(): number {
    return this.bytes[4];
  }
  set totalAhsLength(words: number) {
    this.bytes[4] = words;
  }
  get dataSegmentLength(): number {
    return this.bytes.readUIntBE(5, 3);
  }
  set dataSegmentLength(value: number) {
    this.bytes.writeUIntBE(value, 5, 3);
  }

  // ---- byte 8-15: LUN, or ISID + TSIH in login PDUs --------------------------------------
  /** The LUN in single-level form (SAM-5 peripheral / flat addressing): bits of bytes 8-9. */
  get lun(): number {
    return ((this.bytes[8] & 0x3f) << 8) | this.bytes[9];
  }
  set lun(value: number) {
    this.bytes.fill(0, 8, 16);
    if (value < 256) this.bytes[9] = value;
    else {
      this.bytes[8] = 0x40 | ((value >> 8) & 0x3f);
      this.bytes[9] = value & 0xff;
    }
  }
  /** True when the LUN field uses a form other than single-level peripheral/flat addressing. */
  get lunIsComplex(): boolean {
    const method = this.bytes[8] >> 6;
    if (method !== 0 && method !== 1) return true;
    for (let index = 10; index < 16; index++) if (this.bytes[index] !== 0) return true;
    return false;
  }
  lunBytes(): Buffer {
    return this.bytes.subarray(8, 16);
  }
  get tsih(): number {
    return this.bytes.readUInt16BE(14);
  }
  set tsih(value: number) {
    this.bytes.writeUInt16BE(value, 14);
  }
  isidBytes(): Buffer {
    return this.bytes.subarray(8, 14);
  }

  // ---- byte 16-47 -----------------------------------------------------------------------
  get initiatorTaskTag(): number {
    return this.bytes.readUInt32BE(16);
  }
  set initiatorTaskTag(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 16);
  }
  /** Byte 20: Target Transfer Tag (Data, R2T, NOP, Text), Referenced Task Tag (TMF). */
  get targetTransferTag(): number {
    return this.bytes.readUInt32BE(20);
  }
  set targetTransferTag(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 20);
  }
  /** Byte 20: Expected Data Transfer Length (SCSI Command). */
  get expectedDataTransferLength(): number {
    return this.bytes.readUInt32BE(20);
  }
  set expectedDataTransferLength(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 20);
  }
  /** Bytes 20-21: CID (login and logout). */
  get connectionId(): number {
    return this.bytes.readUInt16BE(20);
  }
  set connectionId(value: number) {
    this.bytes.writeUInt16BE(value, 20);
  }
  /** Byte 24: CmdSN (initiator → target). */
  get cmdSN(): number {
    return this.bytes.readUInt32BE(24);
  }
  set cmdSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 24);
  }
  /** Byte 24: StatSN (target → initiator). */
  get statSN(): number {
    return this.bytes.readUInt32BE(24);
  }
  set statSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 24);
  }
  /** Byte 28: ExpStatSN (initiator → target). */
  get expStatSN(): number {
    return this.bytes.readUInt32BE(28);
  }
  set expStatSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 28);
  }
  /** Byte 28: ExpCmdSN (target → initiator). */
  get expCmdSN(): number {
    return this.bytes.readUInt32BE(28);
  }
  set expCmdSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 28);
  }
  /** Byte 32: MaxCmdSN (target → initiator), RefCmdSN (TMF request). */
  get maxCmdSN(): number {
    return this.bytes.readUInt32BE(32);
  }
  set maxCmdSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 32);
  }
  get refCmdSN(): number {
    return this.bytes.readUInt32BE(32);
  }
  set refCmdSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 32);
  }
  /** Byte 36: DataSN / R2TSN / ExpDataSN; status class and detail in login responses. */
  get dataSN(): number {
    return this.bytes.readUInt32BE(36);
  }
  set dataSN(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 36);
  }
  get loginStatus(): number {
    return this.bytes.readUInt16BE(36);
  }
  set loginStatus(value: number) {
    this.bytes.writeUInt16BE(value, 36);
  }
  /** Byte 40: Buffer Offset (Data, R2T); Time2Wait (logout response, 16 bits). */
  get bufferOffset(): number {
    return this.bytes.readUInt32BE(40);
  }
  set bufferOffset(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 40);
  }
  /** Byte 44: Residual Count (Data-In, SCSI Response); Desired Data Transfer Length (R2T). */
  get residualCount(): number {
    return this.bytes.readUInt32BE(44);
  }
  set residualCount(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 44);
  }
  get desiredDataTransferLength(): number {
    return this.bytes.readUInt32BE(44);
  }
  set desiredDataTransferLength(value: number) {
    this.bytes.writeUInt32BE(value >>> 0, 44);
  }
  /** Bytes 32-47: the CDB of a SCSI Command. */
  cdb(): Buffer {
    return this.bytes.subarray(32, 48);
  }
}

/** Serial number arithmetic (RFC 1982, 32 bits): is a < b? */
export function serialLessThan(a: number, b: number): boolean {
  return a !== b && (b - a) >>> 0 < 0x80000000;
}

export function serialLessOrEqual(a: number, b: number): boolean {
  return a === b || serialLessThan(a, b);
}
