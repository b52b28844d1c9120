import type { TestContext } from 'node:test';
import type { BlockDevice } from '../../../../src/dataplane/block-device.ts';
import { IscsiTarget, type IscsiTargetOptions } from '../../../../src/dataplane/iscsi/target.ts';
import { StoreBlockDevice } from '../../../../src/dataplane/store-block-device.ts';
import type { LogLevel } from '../../../../src/logging.ts';
import { ReplicaStore } from '../../../../src/storage/replica-store.ts';
import { defer, tempDirectory } from '../../../helpers/temp.ts';

export interface LogRecord {
  level: LogLevel;
  message: string;
  [field: string]: unknown;
}

export interface LiveTarget {
  target: IscsiTarget;
  port: number;
  store: ReplicaStore;
  device: StoreBlockDevice;
  targetName: string;
  logs: LogRecord[];
}

/** An IscsiTarget on 127.0.0.1 (ephemeral port) serving one replica store as `volume`. */
export async function liveTarget(
  t: TestContext,
  options: IscsiTargetOptions & { sizeBytes?: number; wrap?: (device: BlockDevice) => BlockDevice } = {},
): Promise<LiveTarget> {
  // After-hooks run in registration order: the target closes (and its I/O drains) before
  // the store closes and its folder is removed.
  let started: IscsiTarget | null = null;
  t.after(async () => {
    await started?.close();
  });
  const directory = tempDirectory(t);
  const store = ReplicaStore.create(`${directory}/replica`, {
    sizeBytes: options.sizeBytes ?? 16 * 1024 * 1024,
  });
  defer(t, () => store.close());
  const device = new StoreBlockDevice(store, 'volume');
  const logs: LogRecord[] = [];
  const target = new IscsiTarget({
    port: 0,
    nopIntervalMs: 0,
    ...options,
    logger: (level, message, details) => {
      if (logs.length < 10000) logs.push({ level, message, ...details });
    },
  });
  target.addVolume('volume', options.wrap ? options.wrap(device) : device);
  started = target;
  const { port } = await target.listen();
  return { target, port, store, device, targetName: 'iqn.2026-11.io.hornbill:volume', logs };
}

/** Polls `condition` every 20 ms until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}
