import type { MappingRun } from '../storage/replica-store.ts';

/**
 * The contract between a frontend (iSCSI target, NBD server) and whatever serves the
 * volume's blocks: the engine (replicated) or, for development and tests, one replica
 * store (`StoreBlockDevice`).
 *
 * Offsets and lengths are bytes, multiples of `sectorSize` (512). Errors are
 * HornbillErrors whose codes the frontends map to protocol errors:
 *   STORE_OUT_OF_RANGE, STORE_UNALIGNED, INVALID_ARGUMENT → ILLEGAL REQUEST (SCSI) / EINVAL (NBD)
 *   STORE_CHECKSUM_MISMATCH (no good copy left)            → MEDIUM ERROR, unrecovered read error / EIO
 *   STORE_NO_SPACE                                         → DATA PROTECT, space allocation failed / ENOSPC
 *   DEVICE_NOT_READY (no healthy replica, engine stopping)  → NOT READY / EIO
 *   anything else                                          → HARDWARE ERROR / EIO
 */
export interface BlockDevice {
  /** Volume size in bytes (may grow while attached: expansion). */
  readonly sizeBytes: number;
  /** Logical block size reported to initiators. */
  readonly sectorSize: number;
  /** Physical block size (4096: the checksum and copy-on-write unit). */
  readonly physicalBlockSize: number;
  /** A stable identifier for the device (the volume name), used in SCSI device identification. */
  readonly name: string;

  read(offsetBytes: number, target: Uint8Array): Promise<void>;
  /** `fua`: the write is durable (as after flush) when the promise resolves. */
  write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void>;
  /** Afterwards the range reads as zeros; whole 4 KiB blocks give their space back. */
  unmap(offsetBytes: number, lengthBytes: number): Promise<void>;
  /** Every write completed before the call is durable when the promise resolves. */
  flush(): Promise<void>;
  /**
   * Provisioning status of the blocks from `offsetBytes`: runs of mapped (holding data) and
   * deallocated (reading zeros without stored data) ranges, covering at least one byte and at
   * most `lengthBytes`. Used for SCSI GET LBA STATUS and NBD block status.
   */
  mappingStatus(offsetBytes: number, lengthBytes: number): Promise<MappingRun[]>;
}

export type { MappingRun };
