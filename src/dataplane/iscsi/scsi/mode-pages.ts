import type { ScsiCommand } from './command.ts';
import { AdditionalSense, LOGICAL_BLOCK_BYTES, ScsiOpcode, SenseKey } from './constants.ts';
import { checkCondition, invalidFieldInCdb, invalidFieldInParameterList } from './sense.ts';

const CACHING_PAGE = 0x08;
const CONTROL_PAGE = 0x0a;
const ALL_PAGES = 0x3f;
const CACHING_PAGE_BYTES = 20;
const CONTROL_PAGE_BYTES = 12;

const PageControl = { CURRENT: 0, CHANGEABLE: 1, DEFAULT: 2, SAVED: 3 } as const;

/**
 * The mode parameters a Hornbill logical unit keeps (SPC-4 7.5, SBC-3 6.4): the caching
 * page (WCE: the device has a volatile write cache, emptied by SYNCHRONIZE CACHE; turning
 * it off makes every write force unit access) and the control page (D_SENSE: descriptor
 * format sense data). Nothing else is changeable, and nothing can be saved.
 */
export class ModeParameters {
  writeCacheEnabled = true;
  descriptorSense = false;
  /** Bumped on every change, so other nexuses get MODE PARAMETERS CHANGED. */
  version = 0;

  /** MODE SENSE(6) and MODE SENSE(10). */
  sense(command: ScsiCommand, capacityBlocks: number, readOnly: boolean): void {
    const cdb = command.cdb;
    const isTen = cdb[0] === ScsiOpcode.MODE_SENSE_10;
    const disableBlockDescriptors = (cdb[1] & 0x08) !== 0;
    const longLba = isTen && (cdb[1] & 0x10) !== 0;
    const pageControl = cdb[2] >> 6;
    const pageCode = cdb[2] & 0x3f;
    const subpageCode = cdb[3];
    const allocationBytes = isTen ? cdb.readUInt16BE(7) : cdb[4];
    const sense = this.descriptorSense;
    if (pageControl === PageControl.SAVED) {
      checkCondition(
        command,
        SenseKey.ILLEGAL_REQUEST,
        AdditionalSense.SAVING_PARAMETERS_NOT_SUPPORTED,
        sense,
        {
          fieldPointer: { byte: 2, bit: 7, inCdb: true },
        },
      );
      return;
    }
    const wantsAll = pageCode === ALL_PAGES && (subpageCode === 0x00 || subpageCode === 0xff);
    if (!wantsAll && pageCode !== CACHING_PAGE && pageCode !== CONTROL_PAGE) {
      invalidFieldInCdb(command, sense, 2, 5);
      return;
    }
    if (!wantsAll && subpageCode !== 0) {
      invalidFieldInCdb(command, sense, 3);
      return;
    }

    const out = command.buffer!;
    const headerBytes = isTen ? 8 : 4;
    const descriptorBytes = disableBlockDescriptors ? 0 : longLba ? 16 : 8;
    let offset = headerBytes;
    out.fill(0, 0, headerBytes + descriptorBytes);
    if (descriptorBytes === 8) {
      out.writeUInt32BE(Math.min(capacityBlocks, 0xffffffff), offset);
      out.writeUInt32BE(LOGICAL_BLOCK_BYTES, offset + 4); // byte 4 reserved, 5-7 block length
    } else if (descriptorBytes === 16) {
      out.writeBigUInt64BE(BigInt(capacityBlocks), offset);
      out.writeUInt32BE(LOGICAL_BLOCK_BYTES, offset + 12);
    }
    offset += descriptorBytes;
    if (wantsAll || pageCode === CACHING_PAGE) offset = this.cachingPage(out, offset, pageControl);
    if (wantsAll || pageCode === CONTROL_PAGE) offset = this.controlPage(out, offset, pageControl);

    const deviceSpecific = (readOnly ? 0x80 : 0) | 0x10; // WP, DPOFUA
    if (isTen) {
      out.writeUInt16BE(offset - 2, 0);
      out[3] = deviceSpecific;
      out[4] = longLba ? 0x01 : 0;
      out.writeUInt16BE(descriptorBytes, 6);
    } else {
      out[0] = Math.min(offset - 1, 0xff);
      out[2] = deviceSpecific;
      out[3] = descriptorBytes;
    }
    command.dataInBytes = Math.min(offset, allocationBytes);
  }

  private cachingPage(out: Buffer, offset: number, pageControl: number): number {
    out.fill(0, offset, offset + CACHING_PAGE_BYTES);
    out[offset] = CACHING_PAGE;
    out[offset + 1] = CACHING_PAGE_BYTES - 2;
    if (pageControl === PageControl.CHANGEABLE) out[offset + 2] = 0x04;
    else if (pageControl === PageControl.DEFAULT) out[offset + 2] = 0x04;
    else out[offset + 2] = this.writeCacheEnabled ? 0x04 : 0;
    return offset + CACHING_PAGE_BYTES;
  }

  private controlPage(out: Buffer, offset: number, pageControl: number): number {
    out.fill(0, offset, offset + CONTROL_PAGE_BYTES);
    out[offset] = CONTROL_PAGE;
    out[offset + 1] = CONTROL_PAGE_BYTES - 2;
    if (pageControl === PageControl.CHANGEABLE) {
      out[offset + 2] = 0x04; // D_SENSE
      return offset + CONTROL_PAGE_BYTES;
    }
    if (pageControl === PageControl.CURRENT && this.descriptorSense) out[offset + 2] = 0x04;
    out[offset + 3] = 0x10; // queue algorithm modifier 1: unrestricted reordering
    out.writeUInt16BE(0xffff, offset + 8); // busy timeout period: unlimited
    return offset + CONTROL_PAGE_BYTES;
  }

  /** MODE SELECT(6) and MODE SELECT(10), once the parameter list has arrived. */
  select(command: ScsiCommand): boolean {
    const cdb = command.cdb;
    const isTen = cdb[0] === ScsiOpcode.MODE_SELECT_10;
    const sense = this.descriptorSense;
    const list = command.dataOut();
    if (list.length === 0) return false;
    if ((cdb[1] & 0x10) === 0) {
      invalidFieldInCdb(command, sense, 1, 4); // PF: only the standard page format is understood
      return false;
    }
    const headerBytes = isTen ? 8 : 4;
    if (list.length < headerBytes) {
      checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR, sense);
      return false;
    }
    const descriptorBytes = isTen ? list.readUInt16BE(6) : list[3];
    let offset = headerBytes;
    if (descriptorBytes !== 0) {
      const long = isTen && (list[4] & 0x01) !== 0;
      if (descriptorBytes !== (long ? 16 : 8) || offset + descriptorBytes > list.length) {
        invalidFieldInParameterList(command, sense, isTen ? 6 : 3);
        return false;
      }
      const blockLength = long ? list.readUInt32BE(offset + 12) : list.readUIntBE(offset + 5, 3);
      if (blockLength !== LOGICAL_BLOCK_BYTES) {
        invalidFieldInParameterList(command, sense, offset + (long ? 12 : 5));
        return false;
      }
      offset += descriptorBytes;
    }
    let writeCacheEnabled = this.writeCacheEnabled;
    let descriptorSense = this.descriptorSense;
    while (offset < list.length) {
      if (offset + 2 > list.length) {
        checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR, sense);
        return false;
      }
      const pageCode = list[offset] & 0x3f;
      const subpageFormat = (list[offset] & 0x40) !== 0;
      const pageBytes = list[offset + 1] + 2;
      if (subpageFormat) {
        invalidFieldInParameterList(command, sense, offset, 6);
        return false;
      }
      if (offset + pageBytes > list.length) {
        checkCondition(command, SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR, sense);
        return false;
      }
      const page = list.subarray(offset, offset + pageBytes);
      if (pageCode === CACHING_PAGE && pageBytes === CACHING_PAGE_BYTES) {
        const invalid = firstDifference(page, this.cachingTemplate(), 0x04);
        if (invalid >= 0) {
          invalidFieldInParameterList(command, sense, offset + invalid);
          return false;
        }
        writeCacheEnabled = (page[2] & 0x04) !== 0;
      } else if (pageCode === CONTROL_PAGE && pageBytes === CONTROL_PAGE_BYTES) {
        const invalid = firstDifference(page, this.controlTemplate(), 0x04);
        if (invalid >= 0) {
          invalidFieldInParameterList(command, sense, offset + invalid);
          return false;
        }
        descriptorSense = (page[2] & 0x04) !== 0;
      } else {
        invalidFieldInParameterList(command, sense, offset);
        return false;
      }
      offset += pageBytes;
    }
    const changed = writeCacheEnabled !== this.writeCacheEnabled || descriptorSense !== this.descriptorSense;
    this.writeCacheEnabled = writeCacheEnabled;
    this.descriptorSense = descriptorSense;
    if (changed) this.version++;
    return changed;
  }

  private cachingTemplate(): Buffer {
    const page = Buffer.alloc(CACHING_PAGE_BYTES);
    this.cachingPage(page, 0, PageControl.CURRENT);
    return page;
  }

  private controlTemplate(): Buffer {
    const page = Buffer.alloc(CONTROL_PAGE_BYTES);
    this.controlPage(page, 0, PageControl.CURRENT);
    return page;
  }
}

/**
 * The first byte (from 2: after code and length) where `page` differs from `current` in a bit
 * that is not changeable; byte 2 may differ only in the bits of `changeableByteTwo`. -1 if none.
 */
function firstDifference(page: Buffer, current: Buffer, changeableByteTwo: number): number {
  for (let index = 2; index < page.length; index++) {
    const mask = index === 2 ? ~changeableByteTwo & 0xff : 0xff;
    if ((page[index] & mask) !== (current[index] & mask)) return index;
  }
  return -1;
}
