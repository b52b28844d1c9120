import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { BlockDevice, MappingRun } from '../../../../src/dataplane/block-device.ts';
import type { NbdExportOptions, NbdLogLevel } from '../../../../src/dataplane/nbd/index.ts';
import { NbdServer, type NbdServerOptions } from '../../../../src/dataplane/nbd/index.ts';
import { StoreBlockDevice } from '../../../../src/dataplane/store-block-device.ts';
import { ReplicaStore } from '../../../../src/storage/replica-store.ts';

export const MiB = 1024 * 1024;

export interface LogRecord {
  level: NbdLogLevel;
  message: string;
  details: Record<string, unknown>;
}

export interface ServerFixture {
  server: NbdServer;
  port: number;
  store: ReplicaStore;
  device: StoreBlockDevice;
  logs: LogRecord[];
  directory: string;
  /** Reads the whole volume through Hornbill's own read path (the store, not NBD). */
  readAll(): Buffer;
}

/**
 * An NbdServer on an ephemeral port serving export `name` from a fresh replica store in a
 * temp folder; everything is closed and removed when the test ends.
 */
export async function startServer(
  t: TestContext,
  options: {
    sizeBytes?: number;
    name?: string;
    serverOptions?: NbdServerOptions;
    exportOptions?: NbdExportOptions;
    wrapDevice?: (device: BlockDevice) => BlockDevice;
  } = {},
): Promise<ServerFixture> {
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-nbd-'));
  const store = ReplicaStore.create(path.join(directory, 'replica'), {
    sizeBytes: options.sizeBytes ?? 16 * MiB,
  });
  const name = options.name ?? 'vol';
  const device = new StoreBlockDevice(store, name);
  const logs: LogRecord[] = [];
  const server = new NbdServer({
    port: 0,
    log: (level, message, details) => logs.push({ level, message, details }),
    ...options.serverOptions,
  });
  server.addExport(name, options.wrapDevice ? options.wrapDevice(device) : device, options.exportOptions);
  const { port } = await server.listen();
  t.after(async () => {
    await server.close();
    store.close();
    fs.rmSync(directory, { recursive: true, force: true });
  });
  const readAll = () => {
    const bytes = Buffer.alloc(store.sizeBytes);
    for (let offset = 0; offset < bytes.length; offset += 32 * MiB) {
      store.read(offset, bytes.subarray(offset, Math.min(bytes.length, offset + 32 * MiB)));
    }
    return bytes;
  };
  return { server, port, store, device, logs, directory, readAll };
}

/** Waits until `condition` holds, polling every few milliseconds (fails after `limitMs`). */
export async function eventually(condition: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > limitMs) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Descriptors open in this process (client and server sockets included). */
export function openDescriptorCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/**
 * A device whose calls wait until the test releases them, one by one or all: lets tests
 * hold requests in flight, complete them out of order, and fail them.
 */
export class GatedDevice implements BlockDevice {
  readonly inner: BlockDevice;
  readonly waiting: {
    operation: string;
    offsetBytes: number;
    release: () => void;
    fail: (error: unknown) => void;
  }[] = [];
  gated = true;

  constructor(inner: BlockDevice) {
    this.inner = inner;
  }

  get sizeBytes(): number {
    return this.inner.sizeBytes;
  }
  get sectorSize(): number {
    return this.inner.sectorSize;
  }
  get physicalBlockSize(): number {
    return this.inner.physicalBlockSize;
  }
  get name(): string {
    return this.inner.name;
  }

  read(offsetBytes: number, target: Uint8Array): Promise<void> {
    return this.gate('read', offsetBytes, () => this.inner.read(offsetBytes, target));
  }
  write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    return this.gate('write', offsetBytes, () => this.inner.write(offsetBytes, source, options));
  }
  unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    return this.gate('unmap', offsetBytes, () => this.inner.unmap(offsetBytes, lengthBytes));
  }
  flush(): Promise<void> {
    return this.gate('flush', 0, () => this.inner.flush());
  }
  mappingStatus(offsetBytes: number, lengthBytes: number): Promise<MappingRun[]> {
    return this.gate('mappingStatus', offsetBytes, () => this.inner.mappingStatus(offsetBytes, lengthBytes));
  }

  releaseAll(): void {
    for (const entry of this.waiting.splice(0)) entry.release();
  }

  private gate<T>(operation: string, offsetBytes: number, run: () => Promise<T>): Promise<T> {
    if (!this.gated) return run();
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        operation,
        offsetBytes,
        release: () => run().then(resolve, reject),
        fail: reject,
      });
    });
  }
}
