import { EventEmitter } from 'node:events';
import { assert } from '../../assert.ts';
import type { ReplicaAddress } from './replica-client.ts';

/**
 * What the data protocol's two ends (ReplicaClient, ReplicaConnection) need of a byte
 * stream: a TCP socket, or one end of an in-thread link.
 */
export interface ByteStream {
  write(chunk: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  readonly writableLength: number;
  destroy(): void;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

/** Largest staging buffer kept between bursts; a larger burst gets a buffer that is dropped after it. */
const MAX_KEPT_STAGING_BYTES = 16 * 1024 * 1024;

/**
 * One end of a link between an engine and a replica served by the same thread: the bytes
 * of the data protocol go from one end to the other through memory, without a socket, a
 * system call or a thread wake-up. Everything written in one synchronous run is copied into
 * one staging buffer and delivered to the other end as one chunk on the next
 * `process.nextTick` (as a TCP read would deliver a burst), so the receiver batches the
 * same way; the chunk is valid until the receiver's 'data' listener returns, which is what
 * both ends of the protocol assume of a socket's chunk. Two staging buffers per direction
 * alternate, so writes made while a burst is being delivered go into the other.
 *
 * `destroy()` on either end closes both ('close' on each, once), like a reset connection.
 */
export class InThreadSocket extends EventEmitter implements ByteStream {
  readonly remoteAddress = 'in-thread';
  readonly remotePort = 0;
  private peer: InThreadSocket | undefined;
  private staging = Buffer.allocUnsafe(256 * 1024);
  private spare = Buffer.allocUnsafe(256 * 1024);
  private staged = 0;
  private scheduled = false;
  private destroyed = false;
  private readonly deliver = (): void => this.deliverStaged();

  /** Two connected ends. */
  static pair(): [InThreadSocket, InThreadSocket] {
    const first = new InThreadSocket();
    const second = new InThreadSocket();
    first.peer = second;
    second.peer = first;
    return [first, second];
  }

  get writableLength(): number {
    return this.staged;
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  write(chunk: Uint8Array): boolean {
    if (this.destroyed) return false;
    const needed = this.staged + chunk.length;
    if (needed > this.staging.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.staging.length * 2));
      this.staging.copy(grown, 0, 0, this.staged);
      this.staging = grown;
    }
    this.staging.set(chunk, this.staged);
    this.staged = needed;
    if (!this.scheduled) {
      this.scheduled = true;
      process.nextTick(this.deliver);
    }
    return true;
  }

  /** Writes are always gathered until the current run ends; cork adds nothing. */
  cork(): void {}

  uncork(): void {}

  setNoDelay(): void {}

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.staged = 0;
    process.nextTick(() => this.emit('close'));
    this.peer?.destroy();
  }

  private deliverStaged(): void {
    this.scheduled = false;
    const peer = this.peer;
    if (this.destroyed || peer === undefined || peer.destroyed || this.staged === 0) return;
    const burst = this.staging.subarray(0, this.staged);
    // Writes made while the peer handles this burst (its answers are written to the other
    // direction, but a listener may write here too) go to the spare buffer.
    const delivering = this.staging;
    this.staging = this.spare;
    this.staged = 0;
    try {
      peer.emit('data', burst);
    } finally {
      this.spare = delivering.length > MAX_KEPT_STAGING_BYTES ? Buffer.allocUnsafe(256 * 1024) : delivering;
    }
  }
}

/**
 * What a replica server of this thread offers besides the link: its store reached without
 * frames (ReplicaClient.read and write). A read is served synchronously and sees every
 * write the replica has acknowledged, which is all a read may rely on. Writes are gathered
 * and applied together on the next `process.nextTick`, as a burst of WRITE frames through
 * the link would be, without copying the data or checksumming it again. The client sends a
 * write this way only when nothing it sent through the link is still waiting to be
 * delivered, so the replica sees writes and frames in the order they were sent: a burst of
 * the link is delivered by a later tick than the writes queued before it.
 */
export interface InThreadStore {
  /** Reads `target.length` bytes at `offsetBytes`, every block checked against its checksum. */
  read(offsetBytes: number, target: Uint8Array): void;
  /**
   * Queues a block-aligned write of `data` at `offsetBytes`; `checksums` is its checksum
   * section (one little-endian CRC32C per 4 KiB block, computed by the caller from `data`),
   * `flags` the WRITE frame's flags (FUA, REPAIR). `done` gets undefined once the write is
   * applied, or its error. `data` must not change until then (as for a socket write).
   */
  write(
    offsetBytes: number,
    data: Uint8Array,
    checksums: Uint8Array,
    flags: number,
    done: (error: unknown) => void,
  ): void;
}

interface Offer {
  accept: (socket: InThreadSocket) => void;
  store: InThreadStore | undefined;
}

/** Replica servers of this thread that accept in-thread connections, by "host:port". */
const listeners = new Map<string, Offer>();

const keyOf = (address: ReplicaAddress) => `${address.host}:${address.port}`;

/**
 * Lets clients of this thread reach `address` in memory: `accept` gets the server's end of
 * each new link. Returns the function that withdraws it. Modules are per thread in Node, so
 * this registry is too: an engine in another thread or process connects over TCP.
 */
export function offerInThread(
  address: ReplicaAddress,
  accept: (socket: InThreadSocket) => void,
  store?: InThreadStore,
): () => void {
  const key = keyOf(address);
  assert(!listeners.has(key), `an in-thread listener already serves ${key}`);
  const offer: Offer = { accept, store };
  listeners.set(key, offer);
  return () => {
    if (listeners.get(key) === offer) listeners.delete(key);
  };
}

/**
 * A new in-thread link to `address` — the client's end, and the server's store if it
 * offers it — or undefined when no server of this thread offers `address`.
 */
export function connectInThread(
  address: ReplicaAddress,
): { socket: InThreadSocket; store: InThreadStore | undefined } | undefined {
  const offer = listeners.get(keyOf(address));
  if (offer === undefined) return undefined;
  const [client, server] = InThreadSocket.pair();
  offer.accept(server);
  return { socket: client, store: offer.store };
}
