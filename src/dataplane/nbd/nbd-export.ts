import { HornbillError } from '../../errors.ts';
import type { BlockDevice } from '../block-device.ts';
import { MINIMUM_BLOCK_BYTES, STRING_LIMIT_BYTES, TransmissionFlag } from './protocol.ts';

/** How a volume is offered over NBD. */
export interface NbdExportOptions {
  /** Refuse writes, trims and write-zeroes with EPERM and advertise NBD_FLAG_READ_ONLY. Default false. */
  readOnly?: boolean;
  /**
   * Advertise NBD_FLAG_CAN_MULTI_CONN. Default true, which is safe for any BlockDevice that
   * keeps its contract: one device per export, shared by every connection, and `flush()`
   * makes every write completed before the call durable, whichever connection sent it
   * (docs/nbd.md, "Multiple connections"). Set false for a device whose flush is per caller.
   */
  multiConnection?: boolean;
  /** Text for NBD_INFO_DESCRIPTION. Default "Hornbill volume <name>". */
  description?: string;
}

/** One export: a volume name and the device that serves it. */
export interface NbdExport {
  readonly name: string;
  readonly nameBytes: Buffer;
  readonly device: BlockDevice;
  readonly readOnly: boolean;
  readonly multiConnection: boolean;
  readonly description: string;
}

export function createExport(name: string, device: BlockDevice, options: NbdExportOptions = {}): NbdExport {
  const nameBytes = Buffer.from(typeof name === 'string' ? name : '', 'utf8');
  if (nameBytes.length === 0 || nameBytes.length > STRING_LIMIT_BYTES) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `an export name must be 1-${STRING_LIMIT_BYTES} bytes of UTF-8`,
      {
        name,
      },
    );
  }
  if (name.includes('\0') || nameBytes.toString('utf8') !== name) {
    throw new HornbillError('INVALID_ARGUMENT', 'an export name must be valid UTF-8 without NUL', { name });
  }
  if (device.sectorSize !== MINIMUM_BLOCK_BYTES || device.sizeBytes % MINIMUM_BLOCK_BYTES !== 0) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `the NBD server serves devices of ${MINIMUM_BLOCK_BYTES}-byte sectors whose size is a multiple of them`,
      { name, sectorSize: device.sectorSize, sizeBytes: device.sizeBytes },
    );
  }
  const description = options.description ?? `Hornbill volume ${name}`;
  if (Buffer.byteLength(description, 'utf8') > STRING_LIMIT_BYTES) {
    throw new HornbillError('INVALID_ARGUMENT', 'an export description is limited to 4096 bytes', { name });
  }
  return {
    name,
    nameBytes,
    device,
    readOnly: options.readOnly ?? false,
    multiConnection: options.multiConnection ?? true,
    description,
  };
}

/** The transmission flags a client is told for `entry` (structured replies enable NBD_FLAG_SEND_DF). */
export function transmissionFlagsFor(entry: NbdExport, structuredReplies: boolean): number {
  let flags = TransmissionFlag.HAS_FLAGS | TransmissionFlag.SEND_FLUSH;
  if (entry.readOnly) {
    flags |= TransmissionFlag.READ_ONLY;
  } else {
    flags |=
      TransmissionFlag.SEND_FUA |
      TransmissionFlag.SEND_TRIM |
      TransmissionFlag.SEND_WRITE_ZEROES |
      TransmissionFlag.SEND_FAST_ZERO;
  }
  if (structuredReplies) flags |= TransmissionFlag.SEND_DF;
  if (entry.multiConnection) flags |= TransmissionFlag.CAN_MULTI_CONN;
  return flags;
}
