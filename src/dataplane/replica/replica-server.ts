import net from 'node:net';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import {
  type ByteStream,
  type InThreadSocket,
  type InThreadStore,
  offerInThread,
} from '../protocol/in-thread-link.ts';
import { DirectWrites } from './direct-writes.ts';
import { ReplicaConnection } from './replica-connection.ts';
import { ReplicaControl } from './replica-control.ts';

export interface ReplicaServerOptions {
  store: ReplicaStore;
  host: string;
  /** 0 picks a free port. */
  port: number;
  log: Logger;
  /** Connections accepted at once (engines open one or two); more are refused. Default 16. */
  maxConnections?: number;
  /**
   * Also accept engines of this thread in memory (protocol/in-thread-link.ts): an engine
   * that runs in the thread serving its local replica reaches it without a socket.
   */
  inThread?: boolean;
}

/**
 * Serves one replica store on its own TCP port with the binary data protocol
 * (docs/wire-protocol.md). The store is used from this thread only.
 */
export class ReplicaServer {
  readonly store: ReplicaStore;
  readonly control: ReplicaControl;
  private readonly server: net.Server;
  private readonly sockets = new Set<ByteStream>();
  private readonly options: ReplicaServerOptions;
  private withdrawInThread: (() => void) | undefined;

  constructor(options: ReplicaServerOptions) {
    this.options = options;
    this.store = options.store;
    this.control = new ReplicaControl(options.store, options.log);
    this.server = net.createServer((socket) =>
      this.accept(socket, `${socket.remoteAddress}:${socket.remotePort}`),
    );
    this.server.on('error', (error) =>
      options.log('error', 'replica server error', { error: error.message }),
    );
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error) =>
        reject(
          new HornbillError(
            'REPLICA_LISTEN_FAILED',
            `replica cannot listen on ${this.options.host}:${this.options.port}: ${error.message}`,
            {
              host: this.options.host,
              port: this.options.port,
            },
          ),
        );
      this.server.once('error', failed);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', failed);
        resolve();
      });
    });
    const address = this.server.address() as net.AddressInfo;
    const listening = { host: address.address, port: address.port };
    if (this.options.inThread === true) {
      // The engine reaches the store without frames too (in-thread-link.ts InThreadStore):
      // reads at once, writes gathered per turn of the loop; frames apply those first. A
      // closed store answers STORE_CLOSED, which the client takes as the replica gone.
      const directWrites = new DirectWrites(this.store, this.options.log);
      const accept = (socket: InThreadSocket) =>
        this.accept(socket, 'in-thread', () => directWrites.applyPending());
      const store: InThreadStore = {
        read: (offsetBytes, target) => this.store.read(offsetBytes, target),
        write: (offsetBytes, data, checksums, flags, done) =>
          directWrites.submit(offsetBytes, data, checksums, flags, done),
      };
      const withdrawals = [offerInThread(listening, accept, store)];
      // Engines name the replica by the address they were given, which may be the configured host.
      if (this.options.host !== listening.host)
        withdrawals.push(offerInThread({ host: this.options.host, port: listening.port }, accept, store));
      this.withdrawInThread = () => {
        for (const withdraw of withdrawals) withdraw();
      };
    }
    return listening;
  }

  private accept(
    socket: ByteStream & { setNoDelay?(noDelay: boolean): unknown },
    peer: string,
    beforeFrames?: () => void,
  ): void {
    if (this.sockets.size >= (this.options.maxConnections ?? 16)) {
      this.options.log('warn', 'refusing a replica connection: too many connections', { peer });
      socket.destroy();
      return;
    }
    socket.setNoDelay?.(true);
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    new ReplicaConnection(socket, peer, this.options.store, this.control, this.options.log, beforeFrames);
  }

  /** Stops listening and closes every connection; the store stays open (its owner closes it). */
  async close(): Promise<void> {
    this.control.close();
    this.withdrawInThread?.();
    this.withdrawInThread = undefined;
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
