import { type CommandCallback, IscsiInitiator } from '../dataplane/iscsi/initiator/initiator.ts';
import { Cdb, scsiError } from '../dataplane/iscsi/initiator/scsi-request.ts';
import { ScsiStatus } from '../dataplane/iscsi/scsi/constants.ts';
import { HornbillError } from '../errors.ts';
import type { BlockConnection, IoRequest } from './connection.ts';

interface RequestState {
  owner: IscsiConnection;
  offsetBytes: number;
  read: CommandCallback;
  write: CommandCallback;
}

export interface IscsiEndpoint {
  host: string;
  port: number;
  targetName: string;
  lun: number;
}

/**
 * A BlockConnection over Hornbill's iSCSI initiator (src/dataplane/iscsi/initiator): one
 * session per job clone, READ(16)/WRITE(16) pipelined up to the queue depth. The initiator
 * pools its commands; this adapter keeps one callback per request, so an I/O allocates
 * nothing here.
 */
export class IscsiConnection implements BlockConnection {
  readonly sizeBytes: number;
  readonly blockBytes: number;
  readonly maximumTransferBytes: number;
  readonly description: string;
  private readonly initiator: IscsiInitiator;
  private readonly cdb = Buffer.alloc(16);

  private constructor(
    initiator: IscsiInitiator,
    endpoint: IscsiEndpoint,
    blocks: number,
    blockBytes: number,
  ) {
    this.initiator = initiator;
    this.blockBytes = blockBytes;
    this.sizeBytes = blocks * blockBytes;
    // READ(16)/WRITE(16) carry a 32-bit block count; the initiator splits data into PDUs.
    this.maximumTransferBytes = Math.min(2 ** 32 - 1, 64 * 1024 * 1024);
    this.description = `iscsi ${endpoint.host}:${endpoint.port} ${endpoint.targetName} lun ${endpoint.lun}`;
  }

  static async open(endpoint: IscsiEndpoint, queueDepth: number): Promise<IscsiConnection> {
    const initiator = await IscsiInitiator.connect({
      host: endpoint.host,
      port: endpoint.port,
      targetName: endpoint.targetName,
      lun: endpoint.lun,
      // One more command than the job keeps in flight: a completion callback submits the
      // next I/O before the initiator has returned the finished command to its pool.
      queueDepth: queueDepth + 1,
      initiatorName: 'iqn.2026-11.io.hornbill:bench',
    });
    try {
      const capacity = await initiator.readCapacity16();
      return new IscsiConnection(initiator, endpoint, capacity.blocks, capacity.blockBytes);
    } catch (error) {
      initiator.destroy();
      throw error;
    }
  }

  read(offsetBytes: number, data: Buffer, request: IoRequest): void {
    const length = Cdb.read16(this.cdb, offsetBytes / this.blockBytes, data.length / this.blockBytes);
    const state = this.stateOf(request);
    state.offsetBytes = offsetBytes;
    this.initiator.command(this.cdb, length, null, data, state.read);
  }

  write(offsetBytes: number, data: Buffer, request: IoRequest): void {
    const length = Cdb.write16(this.cdb, offsetBytes / this.blockBytes, data.length / this.blockBytes);
    const state = this.stateOf(request);
    state.offsetBytes = offsetBytes;
    this.initiator.command(this.cdb, length, data, null, state.write);
  }

  /** The request's two callbacks (made once) and the offset of its I/O in flight. */
  private stateOf(request: IoRequest): RequestState {
    const existing = request.transportState as RequestState | null;
    if (existing !== null && existing.owner === this) return existing;
    const callback =
      (what: string): CommandCallback =>
      (error, result) => {
        if (error !== null) request.complete(error);
        else if (result.status === ScsiStatus.GOOD || result.status === ScsiStatus.CONDITION_MET)
          request.complete(null);
        else request.complete(scsiError(`${what} at offset ${state.offsetBytes}`, result));
      };
    const state: RequestState = {
      owner: this,
      offsetBytes: 0,
      read: callback('READ(16)'),
      write: callback('WRITE(16)'),
    };
    request.transportState = state;
    return state;
  }

  async close(): Promise<void> {
    try {
      await this.initiator.logout();
    } catch (error) {
      if (!(error instanceof HornbillError)) throw error;
      // The session is gone already (the target stopped): nothing left to close.
    }
  }
}
