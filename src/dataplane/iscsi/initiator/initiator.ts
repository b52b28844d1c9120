import type net from 'node:net';
import { HornbillError } from '../../../errors.ts';
import { InitiatorConnection } from './connection.ts';
import { type IscsiInitiatorOptions, openSocket } from './connection-options.ts';
import {
  type Capacity,
  Cdb,
  parseReadCapacity16,
  type ScsiResult,
  unmapParameterList,
} from './scsi-request.ts';

export type { CommandCallback, IscsiInitiatorOptions } from './connection-options.ts';

/**
 * A small iSCSI initiator for tests and `hornbill bench` (see docs/iscsi.md): connect and
 * log in, then block commands (READ/WRITE 10/16, SYNCHRONIZE CACHE, UNMAP, INQUIRY, READ
 * CAPACITY 16) pipelined up to the queue depth, or any CDB through `command`. Works against
 * Hornbill's target and tgtd.
 *
 * ```ts
 * const initiator = await IscsiInitiator.connect({ host, port, targetName, queueDepth: 32 });
 * await initiator.write(0, data);
 * await initiator.read(0, buffer);
 * await initiator.logout();
 * ```
 */
export class IscsiInitiator extends InitiatorConnection {
  private constructor(socket: net.Socket, options: IscsiInitiatorOptions) {
    super(socket, options);
  }

  /** Connects and logs in; resolves once in full feature phase. */
  static async connect(options: IscsiInitiatorOptions): Promise<IscsiInitiator> {
    const socket = await openSocket(options.host, options.port, options.timeoutMs ?? 30000);
    const initiator = new IscsiInitiator(socket, options);
    try {
      await initiator.login();
      if (options.targetName !== null) await initiator.clearUnitAttentions();
    } catch (error) {
      initiator.destroy();
      throw error;
    }
    return initiator;
  }

  /** SendTargets=All over a discovery session. */
  static async discover(options: {
    host: string;
    port: number;
    initiatorName?: string;
    timeoutMs?: number;
  }): Promise<{ targetName: string; addresses: string[] }[]> {
    const initiator = await IscsiInitiator.connect({ ...options, targetName: null });
    try {
      const pairs = await initiator.text([['SendTargets', 'All']]);
      const targets: { targetName: string; addresses: string[] }[] = [];
      for (const [key, value] of pairs) {
        if (key === 'TargetName') targets.push({ targetName: value, addresses: [] });
        else if (key === 'TargetAddress' && targets.length > 0)
          targets[targets.length - 1].addresses.push(value);
      }
      return targets;
    } finally {
      await initiator.logout();
    }
  }

  private readonly scratchCdb = Buffer.alloc(16);

  /** READ(10) or READ(16) (chosen by the LBA and length, or forced) into `target`. */
  async read(
    lba: number,
    target: Buffer,
    options: { cdb?: 10 | 16; blockBytes?: number } = {},
  ): Promise<void> {
    const blocks = target.length / (options.blockBytes ?? 512);
    const use16 = options.cdb === 16 || (options.cdb !== 10 && (lba > 0xffffffff || blocks > 0xffff));
    const length = use16
      ? Cdb.read16(this.scratchCdb, lba, blocks)
      : Cdb.read10(this.scratchCdb, lba, blocks);
    const result = await this.commandAsync(this.scratchCdb, length, null, target);
    result.expectGood(`READ(${length}) at LBA ${lba}`);
  }

  /** WRITE(10) or WRITE(16) of `data` at `lba`. */
  async write(
    lba: number,
    data: Buffer,
    options: { cdb?: 10 | 16; fua?: boolean; blockBytes?: number } = {},
  ): Promise<void> {
    const blocks = data.length / (options.blockBytes ?? 512);
    const use16 = options.cdb === 16 || (options.cdb !== 10 && (lba > 0xffffffff || blocks > 0xffff));
    const length = use16
      ? Cdb.write16(this.scratchCdb, lba, blocks, options.fua)
      : Cdb.write10(this.scratchCdb, lba, blocks, options.fua);
    const result = await this.commandAsync(this.scratchCdb, length, data, null);
    result.expectGood(`WRITE(${length}) at LBA ${lba}`);
  }

  async synchronizeCache(): Promise<void> {
    const length = Cdb.synchronizeCache10(this.scratchCdb);
    (await this.commandAsync(this.scratchCdb, length, null, null)).expectGood('SYNCHRONIZE CACHE(10)');
  }

  async unmap(ranges: readonly { lba: number; blocks: number }[]): Promise<void> {
    const list = unmapParameterList(ranges);
    const length = Cdb.unmap(this.scratchCdb, list.length);
    (await this.commandAsync(this.scratchCdb, length, list, null)).expectGood('UNMAP');
  }

  /**
   * TEST UNIT READY until no unit attention is left (a target reports "power on or reset"
   * to a new I_T nexus; tgtd does). Other statuses are left for the caller to see.
   */
  async clearUnitAttentions(): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const result = await this.testUnitReady();
      if (result.status !== 0x02 || result.senseKey !== 0x06) return;
    }
    throw new HornbillError('ISCSI_SCSI_ERROR', 'more than 10 unit attentions after login');
  }

  async testUnitReady(): Promise<ScsiResult> {
    const length = Cdb.testUnitReady(this.scratchCdb);
    return this.commandAsync(this.scratchCdb, length, null, null);
  }

  /** INQUIRY: standard data (page null) or a VPD page; returns the bytes received. */
  async inquiry(page: number | null = null, allocationBytes = 255): Promise<Buffer> {
    const data = Buffer.alloc(allocationBytes);
    const length = Cdb.inquiry(this.scratchCdb, page, allocationBytes);
    const result = await this.commandAsync(this.scratchCdb, length, null, data);
    result.expectGood('INQUIRY');
    return data.subarray(0, result.dataInBytes);
  }

  async readCapacity16(): Promise<Capacity> {
    const data = Buffer.alloc(32);
    const length = Cdb.readCapacity16(this.scratchCdb, 32);
    const result = await this.commandAsync(this.scratchCdb, length, null, data);
    result.expectGood('READ CAPACITY(16)');
    return parseReadCapacity16(data);
  }
}
