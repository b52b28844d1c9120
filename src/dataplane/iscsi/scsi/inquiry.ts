import { createHash } from 'node:crypto';
import type { ScsiCommand } from './command.ts';
import {
  MAX_COMPARE_AND_WRITE_BLOCKS,
  MAX_UNMAP_BLOCKS,
  MAX_UNMAP_DESCRIPTORS,
  MAX_WRITE_SAME_BLOCKS,
  PHYSICAL_BLOCK_EXPONENT,
} from './constants.ts';
import { invalidFieldInCdb } from './sense.ts';

/** How the logical unit names itself in INQUIRY data and the device identification page. */
export interface UnitIdentity {
  /** T10 vendor identification (8 ASCII characters, space padded). */
  readonly vendor: string;
  /** Product identification (16 ASCII characters). */
  readonly product: string;
  /** Product revision level (4 ASCII characters). */
  readonly revision: string;
  /** Unit serial number (VPD 80h): hex digits derived from the volume name. */
  readonly serial: string;
  /** NAA 3h (locally assigned) designator, 8 bytes, derived from the volume name. */
  readonly naaDesignator: Buffer;
  /** The volume name, used in the T10 vendor ID designator. */
  readonly volumeName: string;
  /** The iSCSI target name and portal group tag, for the target port designators. */
  readonly targetName: string | null;
  readonly portalGroupTag: number;
}

export interface BlockLimits {
  readonly maxTransferBlocks: number;
}

export function deriveIdentity(
  volumeName: string,
  targetName: string | null,
  portalGroupTag: number,
): UnitIdentity {
  const digest = createHash('sha256').update(`hornbill-volume:${volumeName}`).digest();
  const naaDesignator = Buffer.from(digest.subarray(0, 8));
  naaDesignator[0] = 0x30 | (naaDesignator[0] & 0x0f); // NAA 3h: locally assigned
  return {
    vendor: 'HORNBILL',
    product: 'VOLUME',
    revision: '0001',
    serial: digest.subarray(8, 24).toString('hex'),
    naaDesignator,
    volumeName,
    targetName,
    portalGroupTag,
  };
}

const SUPPORTED_PAGES = [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2];

/** INQUIRY (SPC-4 6.6): standard data or a vital product data page. */
export function inquiry(
  command: ScsiCommand,
  identity: UnitIdentity,
  limits: BlockLimits,
  descriptorSense: boolean,
  present: boolean,
): void {
  const cdb = command.cdb;
  const enableVitalProductData = (cdb[1] & 0x01) !== 0;
  const pageCode = cdb[2];
  const allocationBytes = cdb.readUInt16BE(3);
  // CMDDT (obsolete) must be zero.
  if (cdb[1] & 0x02) {
    invalidFieldInCdb(command, descriptorSense, 1, 1);
    return;
  }
  const out = command.buffer!;
  let length: number;
  if (!enableVitalProductData) {
    if (pageCode !== 0) {
      invalidFieldInCdb(command, descriptorSense, 2);
      return;
    }
    length = standardInquiry(out, identity, present);
  } else {
    if (!present) {
      invalidFieldInCdb(command, descriptorSense, 1, 0);
      return;
    }
    switch (pageCode) {
      case 0x00:
        length = supportedPages(out);
        break;
      case 0x80:
        length = unitSerialNumber(out, identity);
        break;
      case 0x83:
        length = deviceIdentification(out, identity);
        break;
      case 0xb0:
        length = blockLimits(out, limits);
        break;
      case 0xb1:
        length = blockDeviceCharacteristics(out);
        break;
      case 0xb2:
        length = logicalBlockProvisioning(out);
        break;
      default:
        invalidFieldInCdb(command, descriptorSense, 2);
        return;
    }
  }
  command.dataInBytes = Math.min(length, allocationBytes);
}

function putAscii(out: Buffer, offset: number, width: number, text: string): void {
  out.fill(0x20, offset, offset + width);
  out.write(text.slice(0, width), offset, 'ascii');
}

function standardInquiry(out: Buffer, identity: UnitIdentity, present: boolean): number {
  const length = 96;
  out.fill(0, 0, length);
  out[0] = present ? 0x00 : 0x7f; // peripheral qualifier 0, direct access block device
  out[2] = 0x06; // SPC-4
  out[3] = 0x12; // HISUP, response data format 2
  out[4] = length - 5;
  out[7] = 0x02; // CMDQUE
  putAscii(out, 8, 8, identity.vendor);
  putAscii(out, 16, 16, identity.product);
  putAscii(out, 32, 4, identity.revision);
  // Version descriptors: SAM-5, SPC-4, SBC-3, iSCSI (SPC-4 table 147).
  out.writeUInt16BE(0x00a0, 58);
  out.writeUInt16BE(0x0460, 60);
  out.writeUInt16BE(0x04c0, 62);
  out.writeUInt16BE(0x0960, 64);
  return length;
}

function supportedPages(out: Buffer): number {
  out.fill(0, 0, 4);
  out.writeUInt16BE(SUPPORTED_PAGES.length, 2);
  for (let index = 0; index < SUPPORTED_PAGES.length; index++) out[4 + index] = SUPPORTED_PAGES[index];
  return 4 + SUPPORTED_PAGES.length;
}

function unitSerialNumber(out: Buffer, identity: UnitIdentity): number {
  out.fill(0, 0, 4);
  out[1] = 0x80;
  const length = out.write(identity.serial, 4, 'ascii');
  out.writeUInt16BE(length, 2);
  return 4 + length;
}

/** Appends one designation descriptor; returns the new offset. */
function designator(
  out: Buffer,
  offset: number,
  codeSet: number,
  association: number,
  designatorType: number,
  value: Buffer,
  protocolIdentifier?: number,
): number {
  const piv = protocolIdentifier !== undefined;
  out[offset] = ((protocolIdentifier ?? 0) << 4) | codeSet;
  out[offset + 1] = (piv ? 0x80 : 0) | (association << 4) | designatorType;
  out[offset + 2] = 0;
  out[offset + 3] = value.length;
  value.copy(out, offset + 4);
  return offset + 4 + value.length;
}

/** SCSI name strings are null terminated and padded to a multiple of 4 bytes. */
function scsiNameString(name: string): Buffer {
  const bytes = Buffer.from(name, 'utf8');
  const padded = Buffer.alloc(Math.ceil((bytes.length + 1) / 4) * 4);
  bytes.copy(padded);
  return padded;
}

const ISCSI_PROTOCOL = 0x5;

function deviceIdentification(out: Buffer, identity: UnitIdentity): number {
  out.fill(0, 0, 4);
  out[1] = 0x83;
  let offset = 4;
  // Logical unit designators: NAA locally assigned (binary) and T10 vendor ID (ASCII).
  offset = designator(out, offset, 0x1, 0, 0x3, identity.naaDesignator);
  const vendorSpecific = Buffer.alloc(8 + Math.min(identity.volumeName.length, 200), 0x20);
  vendorSpecific.write(identity.vendor.padEnd(8, ' '), 0, 'ascii');
  vendorSpecific.write(identity.volumeName.slice(0, 200), 8, 'utf8');
  offset = designator(out, offset, 0x2, 0, 0x1, vendorSpecific);
  if (identity.targetName !== null) {
    // Target port: relative target port identifier and SCSI name string "<iqn>,t,0x<tpgt>".
    const relativePort = Buffer.alloc(4);
    relativePort.writeUInt16BE(1, 2);
    offset = designator(out, offset, 0x1, 1, 0x4, relativePort, ISCSI_PROTOCOL);
    const tag = identity.portalGroupTag.toString(16).padStart(4, '0');
    offset = designator(
      out,
      offset,
      0x3,
      1,
      0x8,
      scsiNameString(`${identity.targetName},t,0x${tag}`),
      ISCSI_PROTOCOL,
    );
    // Target device: the iSCSI target name.
    offset = designator(out, offset, 0x3, 2, 0x8, scsiNameString(identity.targetName), ISCSI_PROTOCOL);
  }
  out.writeUInt16BE(offset - 4, 2);
  return offset;
}

function blockLimits(out: Buffer, limits: BlockLimits): number {
  const length = 64;
  out.fill(0, 0, length);
  out[1] = 0xb0;
  out.writeUInt16BE(length - 4, 2);
  out[5] = MAX_COMPARE_AND_WRITE_BLOCKS;
  out.writeUInt16BE(1 << PHYSICAL_BLOCK_EXPONENT, 6); // optimal transfer length granularity
  out.writeUInt32BE(limits.maxTransferBlocks, 8);
  out.writeUInt32BE(limits.maxTransferBlocks, 12); // optimal transfer length
  out.writeUInt32BE(MAX_UNMAP_BLOCKS, 20);
  out.writeUInt32BE(MAX_UNMAP_DESCRIPTORS, 24);
  out.writeUInt32BE(1 << PHYSICAL_BLOCK_EXPONENT, 28); // optimal unmap granularity
  out.writeUInt32BE(0x80000000, 32); // UGAVALID, unmap granularity alignment 0
  out.writeUInt32BE(0, 36);
  out.writeUInt32BE(MAX_WRITE_SAME_BLOCKS, 40);
  return length;
}

function blockDeviceCharacteristics(out: Buffer): number {
  const length = 64;
  out.fill(0, 0, length);
  out[1] = 0xb1;
  out.writeUInt16BE(length - 4, 2);
  out.writeUInt16BE(1, 4); // medium rotation rate: non-rotating medium
  return length;
}

function logicalBlockProvisioning(out: Buffer): number {
  const length = 8;
  out.fill(0, 0, length);
  out[1] = 0xb2;
  out.writeUInt16BE(length - 4, 2);
  out[5] = 0x80 | 0x40 | 0x20 | 0x04; // LBPU, LBPWS, LBPWS10, LBPRZ (unmapped blocks read zeros)
  out[6] = 0x02; // provisioning type: thin
  return length;
}
