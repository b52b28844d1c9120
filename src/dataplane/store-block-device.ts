import type { ReplicaStore } from '../storage/replica-store.ts';
import type { BlockDevice, MappingRun } from './block-device.ts';

/**
 * A BlockDevice served by one local replica store, without replication. Used to develop
 * and test frontends on their own, and by `hornbill engine` with a single local replica.
 * The store is synchronous; each call runs to completion on this thread.
 */
export class StoreBlockDevice implements BlockDevice {
  readonly sectorSize = 512;
  readonly physicalBlockSize = 4096;
  readonly name: string;
  private readonly store: ReplicaStore;

  constructor(store: ReplicaStore, name: string) {
    this.store = store;
    this.name = name;
  }

  get sizeBytes(): number {
    return this.store.sizeBytes;
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.store.read(offsetBytes, target);
  }

  async write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.store.write(offsetBytes, source);
    if (options?.fua === true) this.store.flush();
  }

  async unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    this.store.unmap(offsetBytes, lengthBytes);
  }

  async flush(): Promise<void> {
    this.store.flush();
  }

  async mappingStatus(offsetBytes: number, lengthBytes: number): Promise<MappingRun[]> {
    return this.store.mappingStatus(offsetBytes, lengthBytes);
  }
}
