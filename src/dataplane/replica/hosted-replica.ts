import fs from 'node:fs';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { ReplicaStore } from '../../storage/replica-store.ts';
import { ReplicaServer } from './replica-server.ts';

/**
 * Opens the replica folder `directory`, or creates it when it is absent or empty, and
 * checks that it holds a volume of `sizeBytes` (INVALID_ARGUMENT otherwise).
 */
export function openReplicaFolder(directory: string, sizeBytes: number): ReplicaStore {
  const exists = fs.existsSync(directory) && fs.readdirSync(directory).length > 0;
  const store = exists ? ReplicaStore.open(directory) : ReplicaStore.create(directory, { sizeBytes });
  if (store.sizeBytes !== sizeBytes) {
    store.close();
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `replica ${directory} holds ${store.sizeBytes} bytes, not the ${sizeBytes} asked for`,
      { directory, heldBytes: store.sizeBytes, sizeBytes },
    );
  }
  return store;
}

export interface HostedReplicaOptions {
  directory: string;
  sizeBytes: number;
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  /** Accept engines of this thread in memory as well as over TCP. */
  inThread: boolean;
}

/** A replica folder served on a TCP port by this thread: what `hornbill replica` runs, and what an engine hosts for its local replica. */
export class HostedReplica {
  readonly store: ReplicaStore;
  readonly server: ReplicaServer;
  readonly address: { host: string; port: number };

  private constructor(store: ReplicaStore, server: ReplicaServer, address: { host: string; port: number }) {
    this.store = store;
    this.server = server;
    this.address = address;
  }

  static async start(options: HostedReplicaOptions): Promise<HostedReplica> {
    const store = openReplicaFolder(options.directory, options.sizeBytes);
    const server = new ReplicaServer({
      store,
      host: options.host,
      port: options.port,
      log: options.log,
      inThread: options.inThread,
    });
    try {
      const address = await server.listen();
      return new HostedReplica(store, server, address);
    } catch (error) {
      store.close();
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.server.close();
    this.store.close();
  }
}
