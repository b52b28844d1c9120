import { ScsiStatus, SENSE_BUFFER_BYTES } from './constants.ts';

/**
 * An I_T nexus: one initiator port talking to one target port. Persistent reservations and
 * unit attention conditions are kept per nexus, so the key must survive reconnection (for
 * iSCSI it is the initiator port name, `<initiator name>,i,0x<ISID>`).
 */
export interface ScsiNexus {
  readonly key: string;
  /** The initiator's TransportID (SPC-4 7.6.4), reported by PERSISTENT RESERVE IN READ FULL STATUS. */
  readonly transportId: Uint8Array;
  /** Relative target port identifier (1-based) of the target port of this nexus. */
  readonly relativeTargetPortId: number;
}

/**
 * One SCSI command as the logical unit sees it, independent of the transport. Objects are
 * pooled by the transport and reused: `reset` prepares one for the next command.
 *
 * Flow: the transport fills `cdb`, `lun`, `nexus` and `expectedTransferBytes`, calls
 * `LogicalUnit.plan` (which decides how much data-out to fetch and how big a data buffer to
 * lend), moves the data-out into `buffer`, calls `LogicalUnit.execute`, then sends
 * `buffer[0, dataInBytes)` (clipped to what the initiator expects) and the status.
 */
export class ScsiCommand {
  /** Command descriptor block; bytes beyond `cdbLength` are zero. */
  readonly cdb: Buffer = Buffer.alloc(16);
  cdbLength = 16;
  lun = 0;
  nexus: ScsiNexus | null = null;
  /** What the initiator said it would transfer (iSCSI Expected Data Transfer Length). */
  expectedTransferBytes = 0;
  /** Set by the transport when the initiator announced a data-out (write) transfer. */
  dataOutAnnounced = false;
  /** Set by the transport when the initiator expects data-in (read) data. */
  dataInAnnounced = false;

  // ---- set by plan() ------------------------------------------------------------------
  /** Bytes of data-out the command takes per its CDB (the SCSI transfer length). */
  dataOutBytes = 0;
  /** Size of the buffer the command needs for data-in (0: no data-in). */
  dataInBufferBytes = 0;
  /** Decoded by plan() for media commands: first logical block, block count, force unit access. */
  lba = 0;
  blockCount = 0;
  forceUnitAccess = false;

  // ---- data ---------------------------------------------------------------------------
  /** The data buffer lent by the transport: data-out before execute, data-in after. */
  buffer: Buffer | null = null;
  /** Bytes of data-out actually received into `buffer` (at most `dataOutBytes`). */
  receivedDataOutBytes = 0;

  // ---- results ------------------------------------------------------------------------
  status: number = ScsiStatus.GOOD;
  /** Bytes of data-in the command returns (already limited by its allocation length). */
  dataInBytes = 0;
  readonly sense: Buffer = Buffer.alloc(SENSE_BUFFER_BYTES);
  senseLength = 0;

  reset(): void {
    this.cdb.fill(0);
    this.cdbLength = 16;
    this.lun = 0;
    this.nexus = null;
    this.expectedTransferBytes = 0;
    this.dataOutAnnounced = false;
    this.dataInAnnounced = false;
    this.dataOutBytes = 0;
    this.dataInBufferBytes = 0;
    this.lba = 0;
    this.blockCount = 0;
    this.forceUnitAccess = false;
    this.buffer = null;
    this.receivedDataOutBytes = 0;
    this.status = ScsiStatus.GOOD;
    this.dataInBytes = 0;
    this.senseLength = 0;
  }

  get opcode(): number {
    return this.cdb[0];
  }

  /** The data-out received, as a view of the buffer. */
  dataOut(): Buffer {
    if (this.buffer === null) return EMPTY;
    return this.buffer.subarray(0, this.receivedDataOutBytes);
  }
}

const EMPTY = Buffer.alloc(0);
