import type { TestContext } from 'node:test';
import type { BlockDevice } from '../../../../src/dataplane/block-device.ts';
import { ScsiCommand, type ScsiNexus } from '../../../../src/dataplane/iscsi/scsi/command.ts';
import { LogicalUnit, type LogicalUnitOptions } from '../../../../src/dataplane/iscsi/scsi/logical-unit.ts';
import { createNexus } from '../../../../src/dataplane/iscsi/session.ts';
import { StoreBlockDevice } from '../../../../src/dataplane/store-block-device.ts';
import { ReplicaStore } from '../../../../src/storage/replica-store.ts';
import { defer, tempDirectory } from '../../../helpers/temp.ts';

export interface Outcome {
  status: number;
  senseKey: number;
  /** (ASC << 8) | ASCQ */
  additionalSense: number;
  sense: Buffer;
  data: Buffer;
}

/** A logical unit over a fresh replica store in a temp folder. */
export function storeUnit(
  t: TestContext,
  sizeBytes = 16 * 1024 * 1024,
  options: LogicalUnitOptions = {},
): { unit: LogicalUnit; device: StoreBlockDevice; store: ReplicaStore } {
  const directory = tempDirectory(t);
  const store = ReplicaStore.create(`${directory}/replica`, { sizeBytes });
  defer(t, () => store.close());
  const device = new StoreBlockDevice(store, 'test-volume');
  return {
    unit: new LogicalUnit(device, { targetName: 'iqn.2026-11.io.hornbill:test-volume', ...options }),
    device,
    store,
  };
}

export function unitOver(device: BlockDevice, options: LogicalUnitOptions = {}): LogicalUnit {
  return new LogicalUnit(device, options);
}

export const NEXUS_A: ScsiNexus = createNexus('iqn.2026-11.test:a', '800000000001');
export const NEXUS_B: ScsiNexus = createNexus('iqn.2026-11.test:b', '800000000002');

/**
 * Runs one command the way a transport does: plan, lend a buffer, move the data-out in,
 * execute. `expectedBytes` is the initiator's expected transfer length (defaults to what
 * the command asks for).
 */
export async function run(
  unit: LogicalUnit,
  cdb: number[] | Buffer,
  options: { dataOut?: Buffer; nexus?: ScsiNexus; lun?: number; expectedBytes?: number } = {},
): Promise<Outcome> {
  const command = new ScsiCommand();
  Buffer.from(cdb).copy(command.cdb);
  command.cdbLength = cdb.length;
  command.nexus = options.nexus ?? NEXUS_A;
  command.lun = options.lun ?? 0;
  const dataOut = options.dataOut ?? null;
  command.dataOutAnnounced = dataOut !== null;
  command.dataInAnnounced = dataOut === null;
  command.expectedTransferBytes = options.expectedBytes ?? dataOut?.length ?? 0;
  if (unit.plan(command)) {
    const bytes = Math.max(command.dataOutBytes, command.dataInBufferBytes);
    if (bytes > 0) command.buffer = Buffer.alloc(bytes);
    if (dataOut !== null && command.buffer !== null) {
      const moved = Math.min(dataOut.length, command.dataOutBytes);
      dataOut.copy(command.buffer, 0, 0, moved);
      command.receivedDataOutBytes = moved;
    }
    await unit.execute(command);
  }
  const sense = Buffer.from(command.sense.subarray(0, command.senseLength));
  const descriptor = sense.length > 0 && (sense[0] & 0x7f) >= 0x72;
  return {
    status: command.status,
    senseKey: sense.length === 0 ? 0 : descriptor ? sense[1] & 0x0f : sense[2] & 0x0f,
    additionalSense:
      sense.length === 0 ? 0 : descriptor ? (sense[2] << 8) | sense[3] : (sense[12] << 8) | sense[13],
    sense,
    data:
      command.buffer === null
        ? Buffer.alloc(0)
        : Buffer.from(command.buffer.subarray(0, command.dataInBytes)),
  };
}

/** CDB builders for tests. */
export function cdb10(opcode: number, lba: number, blocks: number, byte1 = 0): number[] {
  const bytes = Buffer.alloc(10);
  bytes[0] = opcode;
  bytes[1] = byte1;
  bytes.writeUInt32BE(lba, 2);
  bytes.writeUInt16BE(blocks, 7);
  return [...bytes];
}

export function cdb16(opcode: number, lba: number, blocks: number, byte1 = 0): number[] {
  const bytes = Buffer.alloc(16);
  bytes[0] = opcode;
  bytes[1] = byte1;
  bytes.writeUInt32BE(Math.floor(lba / 2 ** 32), 2);
  bytes.writeUInt32BE(lba >>> 0, 6);
  bytes.writeUInt32BE(blocks, 10);
  return [...bytes];
}
