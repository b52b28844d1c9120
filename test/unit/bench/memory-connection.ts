import type { BlockConnection, IoRequest } from '../../../src/bench/connection.ts';
import { HornbillError } from '../../../src/errors.ts';

export interface MemoryHooks {
  /** Returns an error to fail an I/O with, or null. */
  failWith: (write: boolean, offsetBytes: number) => HornbillError | null;
  /** Acknowledges a write without storing it (a lost write) when this returns true. */
  dropWrite: (offsetBytes: number) => boolean;
}

/**
 * A BlockConnection over a Buffer, completing each I/O on a later turn of the event loop
 * (as a network target does). Tests inject failures and lost writes, and read what the
 * load generator did: every I/O in order, and the most ever in flight.
 */
export class MemoryConnection implements BlockConnection {
  readonly sizeBytes: number;
  readonly blockBytes = 512;
  readonly maximumTransferBytes = 16 * 1024 * 1024;
  readonly description = 'memory';
  readonly data: Buffer;
  readonly log: { write: boolean; offsetBytes: number; lengthBytes: number }[] = [];
  inFlight = 0;
  maximumInFlight = 0;
  closed = false;
  private readonly hooks: MemoryHooks;

  constructor(data: Buffer, hooks: MemoryHooks = { failWith: () => null, dropWrite: () => false }) {
    this.data = data;
    this.sizeBytes = data.length;
    this.hooks = hooks;
  }

  private io(write: boolean, offsetBytes: number, data: Buffer, request: IoRequest): void {
    if (this.closed) throw new HornbillError('INTERNAL', 'I/O on a closed connection');
    if (offsetBytes % this.blockBytes !== 0 || data.length % this.blockBytes !== 0)
      throw new HornbillError('INTERNAL', `unaligned I/O at ${offsetBytes}+${data.length}`);
    if (offsetBytes + data.length > this.sizeBytes)
      throw new HornbillError('INTERNAL', `I/O past the end at ${offsetBytes}+${data.length}`);
    this.log.push({ write, offsetBytes, lengthBytes: data.length });
    this.inFlight++;
    this.maximumInFlight = Math.max(this.maximumInFlight, this.inFlight);
    setImmediate(() => {
      this.inFlight--;
      const error = this.hooks.failWith(write, offsetBytes);
      if (error === null) {
        if (!write) this.data.copy(data, 0, offsetBytes, offsetBytes + data.length);
        else if (!this.hooks.dropWrite(offsetBytes)) data.copy(this.data, offsetBytes);
      }
      request.complete(error);
    });
  }

  read(offsetBytes: number, data: Buffer, request: IoRequest): void {
    this.io(false, offsetBytes, data, request);
  }

  write(offsetBytes: number, data: Buffer, request: IoRequest): void {
    this.io(true, offsetBytes, data, request);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** A `connect` for BenchRun that hands out connections over one shared Buffer, and records them. */
export function memoryTarget(sizeBytes: number): {
  data: Buffer;
  hooks: MemoryHooks;
  connections: MemoryConnection[];
  connect: () => Promise<MemoryConnection>;
} {
  const data = Buffer.alloc(sizeBytes);
  const connections: MemoryConnection[] = [];
  const hooks: MemoryHooks = { failWith: () => null, dropWrite: () => false };
  return {
    data,
    hooks,
    connections,
    connect: async () => {
      const connection = new MemoryConnection(data, hooks);
      connections.push(connection);
      return connection;
    },
  };
}
