import type { BlockDevice } from '../block-device.ts';
import type { SessionParameters } from './login.ts';
import type { ScsiNexus } from './scsi/command.ts';
import type { LogicalUnit } from './scsi/logical-unit.ts';

/** One volume served by the target: an iSCSI target name with LUN 0. */
export interface VolumeEntry {
  readonly name: string;
  readonly targetName: string;
  readonly device: BlockDevice;
  readonly unit: LogicalUnit;
  readonly sessions: Set<IscsiSession>;
}

/** What a session needs from its connection (one connection per session: MaxConnections=1). */
export interface SessionConnection {
  readonly id: number;
  /** Aborts every task (no responses); resolves when none is still running on the device. */
  abortAllTasks(reason: string): Promise<void>;
  /** Aborts the tasks addressed to LUN `lun`; resolves when none is still running. */
  abortTasksOnLun(lun: number): Promise<void>;
  /** Closes the socket (after aborting tasks). */
  close(reason: string): void;
}

/**
 * An iSCSI session (RFC 7143 §4.4): the I_T nexus between one initiator port (initiator
 * name + ISID) and one target, identified by its TSIH. Command numbering (CmdSN) is
 * session-wide; with one connection per session the connection drives it.
 */
export class IscsiSession {
  readonly tsih: number;
  readonly isid: string;
  readonly initiatorName: string;
  readonly volume: VolumeEntry | null;
  readonly nexus: ScsiNexus | null;
  parameters: SessionParameters;
  connection: SessionConnection | null = null;
  /** Next expected CmdSN. */
  expCmdSN: number;
  /** Highest MaxCmdSN told to the initiator (it never goes back, RFC 7143 §4.2.2.1). */
  maxCmdSNAdvertised: number;

  constructor(init: {
    tsih: number;
    isid: string;
    initiatorName: string;
    volume: VolumeEntry | null;
    parameters: SessionParameters;
    cmdSN: number;
    portalGroupTag: number;
  }) {
    this.tsih = init.tsih;
    this.isid = init.isid;
    this.initiatorName = init.initiatorName;
    this.volume = init.volume;
    this.parameters = init.parameters;
    this.expCmdSN = init.cmdSN >>> 0;
    this.maxCmdSNAdvertised = (init.cmdSN - 1) >>> 0;
    this.nexus = init.volume === null ? null : createNexus(init.initiatorName, init.isid);
  }

  get isDiscovery(): boolean {
    return this.volume === null;
  }
}

/** The initiator port name `<name>,i,0x<ISID>` and its TransportID (SPC-4 7.6.4.6, format 01b). */
export function createNexus(initiatorName: string, isid: string): ScsiNexus {
  const portName = `${initiatorName},i,0x${isid}`;
  const nameBytes = Buffer.from(portName, 'utf8');
  const paddedBytes = Math.ceil((nameBytes.length + 1) / 4) * 4;
  const transportId = Buffer.alloc(4 + paddedBytes);
  transportId[0] = 0x40 | 0x05; // format 01b (initiator port), protocol identifier 5 (iSCSI)
  transportId.writeUInt16BE(paddedBytes, 2);
  nameBytes.copy(transportId, 4);
  return { key: portName, transportId, relativeTargetPortId: 1 };
}
