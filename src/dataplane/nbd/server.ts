import net from 'node:net';
import { HornbillError } from '../../errors.ts';
import type { BlockDevice } from '../block-device.ts';
import { type ConnectionHost, NbdConnection } from './connection.ts';
import { type NbdLogger, stderrLogger } from './logger.ts';
import { createExport, type NbdExport, type NbdExportOptions } from './nbd-export.ts';
import { PayloadPool } from './payload-pool.ts';
import { MAXIMUM_PAYLOAD_BYTES } from './protocol.ts';

export interface NbdServerOptions {
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** TCP port; 0 picks a free one. Default 10809 (the IANA NBD port). */
  port?: number;
  /** Bytes of payload buffers shared by all connections (at least 32 MiB). Default 256 MiB. */
  payloadPoolBytes?: number;
  /** Requests in flight per connection before the server stops reading that socket. Default 128. */
  maxInFlightPerConnection?: number;
  /** Open connections; more are refused by the listener. Default 256. */
  maxConnections?: number;
  /** A client that has not finished the handshake by then is disconnected. Default 30 s. */
  handshakeTimeoutMs?: number;
  /**
   * How long removeExport and close wait for in-flight requests before destroying a
   * connection. Must exceed the device's own worst case (the engine's replica timeout), so
   * that requests end with the device's answer. Default 60 s.
   */
  drainTimeoutMs?: number;
  /** After the server ends a connection, how long the client has to close before it is destroyed. Default 2 s. */
  closeGraceMs?: number;
  log?: NbdLogger;
}

/** Counters for operators and for leak checks in tests. */
export interface NbdServerStats {
  connectionsAccepted: number;
  connectionsOpen: number;
  /** Of the open connections, those in the transmission phase. */
  connectionsAttached: number;
  protocolViolations: number;
  requestsInFlight: number;
  payloadBytesInUse: number;
  payloadBuffersInUse: number;
  payloadBytesKept: number;
}

/**
 * An NBD server (fixed newstyle) serving Hornbill volumes: one export per volume, named
 * after it, each backed by a BlockDevice. See docs/nbd.md for what is supported.
 *
 * ```ts
 * const server = new NbdServer({ port: 0 });
 * server.addExport('pvc-1', device);
 * const { port } = await server.listen();     // fio --ioengine=nbd --uri=nbd://127.0.0.1:PORT/pvc-1
 * await server.removeExport('pvc-1');          // drains and ends that volume's clients
 * await server.close();
 * ```
 */
export class NbdServer implements ConnectionHost {
  readonly pool: PayloadPool;
  readonly log: NbdLogger;
  readonly maxInFlightPerConnection: number;
  readonly closeGraceMs: number;
  readonly drainTimeoutMs: number;
  private readonly host: string;
  private readonly port: number;
  private readonly handshakeTimeoutMs: number;
  private readonly listener: net.Server;
  private readonly exports = new Map<string, NbdExport>();
  private readonly connections = new Set<NbdConnection>();
  private readonly attachedTo = new Map<NbdConnection, NbdExport>();
  private readonly closeWaiters = new Map<NbdConnection, (() => void)[]>();
  private isClosing = false;
  private closePromise: Promise<void> | null = null;
  private accepted = 0;
  private violations = 0;

  constructor(options: NbdServerOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 10809;
    this.maxInFlightPerConnection = positiveInteger(
      options.maxInFlightPerConnection ?? 128,
      'maxInFlightPerConnection',
    );
    this.handshakeTimeoutMs = positiveInteger(options.handshakeTimeoutMs ?? 30_000, 'handshakeTimeoutMs');
    this.drainTimeoutMs = positiveInteger(options.drainTimeoutMs ?? 60_000, 'drainTimeoutMs');
    this.closeGraceMs = positiveInteger(options.closeGraceMs ?? 2_000, 'closeGraceMs');
    this.log = options.log ?? stderrLogger;
    this.pool = new PayloadPool({
      capacityBytes: options.payloadPoolBytes ?? 256 * 1024 * 1024,
      maximumBufferBytes: MAXIMUM_PAYLOAD_BYTES,
    });
    this.listener = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.listener.maxConnections = positiveInteger(options.maxConnections ?? 256, 'maxConnections');
  }

  get closing(): boolean {
    return this.isClosing;
  }

  /** Offers `device` as export `name` (the volume name). */
  addExport(name: string, device: BlockDevice, options: NbdExportOptions = {}): void {
    if (this.isClosing) throw new HornbillError('NBD_SERVER_CLOSED', 'the NBD server is closed', { name });
    if (this.exports.has(name)) {
      throw new HornbillError('NBD_EXPORT_EXISTS', `an NBD export named '${name}' already exists`, { name });
    }
    this.exports.set(name, createExport(name, device, options));
  }

  /**
   * Withdraws an export: new clients cannot attach; attached ones get ESHUTDOWN for new
   * requests, finish those in flight and are disconnected. Resolves when they are closed.
   */
  async removeExport(name: string): Promise<void> {
    const entry = this.exports.get(name);
    if (entry === undefined) {
      throw new HornbillError('NBD_EXPORT_NOT_FOUND', `no NBD export named '${name}'`, { name });
    }
    this.exports.delete(name);
    const draining: Promise<void>[] = [];
    for (const [connection, attached] of this.attachedTo) {
      if (attached !== entry) continue;
      draining.push(this.whenClosed(connection));
      connection.shutDown(this.drainTimeoutMs);
    }
    await Promise.all(draining);
  }

  exportNames(): string[] {
    return [...this.exports.keys()];
  }

  /** Starts listening; resolves with the bound address (the port matters when 0 was asked). */
  listen(): Promise<{ host: string; port: number }> {
    if (this.isClosing)
      return Promise.reject(new HornbillError('NBD_SERVER_CLOSED', 'the NBD server is closed'));
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.listener.once('error', onError);
      this.listener.listen({ host: this.host, port: this.port }, () => {
        this.listener.off('error', onError);
        this.listener.on('error', (error) =>
          this.log('error', 'NBD listener error', { error: error.message }),
        );
        resolve(this.address());
      });
    });
  }

  address(): { host: string; port: number } {
    const address = this.listener.address();
    if (address === null || typeof address === 'string') {
      throw new HornbillError('NBD_SERVER_CLOSED', 'the NBD server is not listening');
    }
    return { host: address.address, port: address.port };
  }

  /** Stops accepting, drains and closes every connection, then releases the pool. Idempotent. */
  close(): Promise<void> {
    if (this.closePromise !== null) return this.closePromise;
    this.isClosing = true;
    const listenerClosed = new Promise<void>((resolve) => {
      if (!this.listener.listening) return resolve();
      this.listener.close(() => resolve());
    });
    const draining: Promise<void>[] = [];
    for (const connection of this.connections) {
      draining.push(this.whenClosed(connection));
      connection.shutDown(this.drainTimeoutMs);
    }
    this.exports.clear();
    this.closePromise = Promise.all([listenerClosed, ...draining]).then(() => this.pool.trim());
    return this.closePromise;
  }

  stats(): NbdServerStats {
    let requestsInFlight = 0;
    for (const connection of this.connections) requestsInFlight += connection.inFlight;
    return {
      connectionsAccepted: this.accepted,
      connectionsOpen: this.connections.size,
      connectionsAttached: this.attachedTo.size,
      protocolViolations: this.violations,
      requestsInFlight,
      payloadBytesInUse: this.pool.bytesInUse,
      payloadBuffersInUse: this.pool.buffersInUse,
      payloadBytesKept: this.pool.bytesKept,
    };
  }

  // ---- ConnectionHost -------------------------------------------------------------------

  findExport(name: string): NbdExport | undefined {
    return this.exports.get(name);
  }

  listExports(): Iterable<NbdExport> {
    return this.exports.values();
  }

  attached(connection: NbdConnection, entry: NbdExport): void {
    this.attachedTo.set(connection, entry);
  }

  violated(): void {
    this.violations++;
  }

  closed(connection: NbdConnection): void {
    this.connections.delete(connection);
    this.attachedTo.delete(connection);
    const waiters = this.closeWaiters.get(connection);
    this.closeWaiters.delete(connection);
    if (waiters !== undefined) for (const waiter of waiters) waiter();
  }

  private accept(socket: net.Socket): void {
    if (this.isClosing) {
      socket.destroy();
      return;
    }
    this.accepted++;
    socket.on('error', () => {}); // reported by the connection; this keeps an early error from throwing
    this.connections.add(new NbdConnection(socket, this, this.handshakeTimeoutMs));
  }

  private whenClosed(connection: NbdConnection): Promise<void> {
    if (connection.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.closeWaiters.get(connection) ?? [];
      waiters.push(resolve);
      this.closeWaiters.set(connection, waiters);
    });
  }
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new HornbillError('INVALID_ARGUMENT', `${name} must be a positive integer`, { [name]: value });
  }
  return value;
}
