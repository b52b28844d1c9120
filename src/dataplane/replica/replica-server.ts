import net from 'node:net';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
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
}

/**
 * Serves one replica store on its own TCP port with the binary data protocol
 * (docs/wire-protocol.md). The store is used from this thread only.
 */
export class ReplicaServer {
  readonly store: ReplicaStore;
  readonly control: ReplicaControl;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly options: ReplicaServerOptions;

  constructor(options: ReplicaServerOptions) {
    this.options = options;
    this.store = options.store;
    this.control = new ReplicaControl(options.store);
    this.server = net.createServer((socket) => this.accept(socket));
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
    return { host: address.address, port: address.port };
  }

  private accept(socket: net.Socket): void {
    if (this.sockets.size >= (this.options.maxConnections ?? 16)) {
      this.options.log('warn', 'refusing a replica connection: too many connections', {
        peer: socket.remoteAddress,
      });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    new ReplicaConnection(socket, this.options.store, this.control, this.options.log);
  }

  /** Stops listening and closes every connection; the store stays open (its owner closes it). */
  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
