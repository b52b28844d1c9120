import net from 'node:net';
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import type { LayerExtent } from '../../storage/replica-store.ts';
import { whenConnected } from '../tcp-connect.ts';
import { TickCork } from '../tick-cork.ts';
import { encodeHeader, FRAME_HEADER_BYTES, type FrameHeader, Op, type OpValue } from './frame.ts';
import { FrameReader, type PayloadPlacement } from './frame-reader.ts';
import { type ByteStream, connectInThread, type InThreadStore } from './in-thread-link.ts';
import {
  checksumSectionBytes,
  decodeError,
  decodeExtents,
  decodeJson,
  encodeJson,
  encodeLayerWrite,
  findChecksumMismatch,
  isBlockAligned,
  type LayerWrite,
} from './payloads.ts';

export interface ReplicaAddress {
  host: string;
  port: number;
}

export interface ReplicaClientOptions {
  address: ReplicaAddress;
  log: Logger;
  /** A request unanswered for this long fails the whole connection (default 8 s, Longhorn's engine-replica-timeout). */
  timeoutMs?: number;
  /** Requests in flight at once (default 256); further requests wait for a slot. */
  maxInFlight?: number;
  /** Idle time after which a PING checks the replica (default 2 s). */
  pingIntervalMs?: number;
}

interface Slot {
  index: number;
  sequence: number;
  busy: boolean;
  startedAt: number;
  /** Where READ and READ_LAYER data goes; null for other requests. */
  target: Uint8Array | null;
  /** Offset of the read (to tell aligned from unaligned checksum sections). */
  offsetBytes: number;
  /** Whether read data is checked against the answer's checksums here (the caller may check it itself). */
  check: boolean;
  resolve: (payload: Buffer | null) => void;
  reject: (error: unknown) => void;
  header: Buffer;
}

const noop = () => {};

/**
 * Bytes one read of a TCP connection takes at most. Larger answers go straight into the
 * caller's memory after their first read (FrameReader placement), so this only bounds the
 * small ones gathered per read. Measured 2026-11-26 (engine and one replica process, 4 KiB
 * random reads at QD32, 4 s, two runs each): 155–160k reads/s with 16 KiB, 155–157k with
 * 32 KiB, 180–189k with 64 KiB, 112–123k with 128 KiB and 105–124k with 512 KiB (the size
 * before; the replica's CPU per read 5.2–5.4 µs against 5.9–6.4 µs). 64 KiB is one segment
 * of loopback TCP.
 */
const RECEIVE_BUFFER_BYTES = 64 * 1024;

/**
 * One pipelined connection from an engine to a replica. Many requests are in flight;
 * responses are matched by sequence number (slot index in the low 16 bits, a counter in
 * the high 16). Read data is checked against the replica's checksums on arrival, so a
 * block damaged anywhere between the replica's disk and the engine is caught. When the
 * connection breaks, or any request outlives the timeout, the client fails: every request
 * in flight is rejected with a coded error and `onFailure` is called once.
 */
export class ReplicaClient {
  readonly address: ReplicaAddress;
  private readonly options: ReplicaClientOptions;
  private socket: ByteStream | undefined;
  private readonly reader: FrameReader;
  private readonly slots: Slot[] = [];
  private readonly freeSlots: Slot[] = [];
  private readonly slotWaiters: ((slot: Slot) => void)[] = [];
  private counter = 0;
  private linkedInThread = false;
  /** The store of a replica served by this thread, reached without frames (reads, most writes). */
  private directStore: InThreadStore | undefined;
  private readonly cork = new TickCork();
  private failure: HornbillError | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastActivity = 0;
  /** Requests that have asked for a slot and not yet put their frame on the link (acquire → send). */
  private requestsNotSent = 0;
  private readonly failureListeners: ((error: HornbillError) => void)[] = [];
  /** The checksum section of the read answer being placed (placeAnswer). */
  private sectionScratch = Buffer.alloc(4 * 1024);

  constructor(options: ReplicaClientOptions) {
    this.options = options;
    this.address = options.address;
    for (let index = 0; index < (options.maxInFlight ?? 256); index++) {
      const slot: Slot = {
        index,
        sequence: 0,
        busy: false,
        startedAt: 0,
        target: null,
        offsetBytes: 0,
        check: true,
        resolve: noop,
        reject: noop,
        header: Buffer.alloc(FRAME_HEADER_BYTES),
      };
      this.slots.push(slot);
      this.freeSlots.push(slot);
    }
    this.reader = new FrameReader(
      (header, payload, _fromChunk, placed) => this.onResponse(header, payload, placed),
      (reason) => this.fail(new HornbillError('REPLICA_PROTOCOL_ERROR', `replica ${this.label}: ${reason}`)),
      (header) => this.placeAnswer(header),
    );
  }

  get label(): string {
    return `${this.address.host}:${this.address.port}`;
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  get inFlight(): number {
    return this.slots.length - this.freeSlots.length;
  }

  onFailure(listener: (error: HornbillError) => void): void {
    this.failureListeners.push(listener);
  }

  /** True when the replica is served by this thread and reached in memory (in-thread-link.ts). */
  get inThread(): boolean {
    return this.linkedInThread;
  }

  async connect(connectTimeoutMs = 5000): Promise<void> {
    const inThread = connectInThread(this.address);
    if (inThread !== undefined) {
      this.linkedInThread = true;
      this.socket = inThread.socket;
      this.directStore = inThread.store;
      this.cork.attach(inThread.socket);
    } else {
      await this.connectTcp(connectTimeoutMs);
    }
    const socket = this.socket!;
    // Over TCP the bytes arrive through `onread` into one buffer (connectTcp); in memory as chunks.
    if (inThread !== undefined) socket.on('data', (chunk: Buffer) => this.received(chunk));
    socket.on('error', (error) =>
      this.fail(new HornbillError('REPLICA_UNREACHABLE', `replica ${this.label}: ${error.message}`)),
    );
    socket.on('close', () =>
      this.fail(new HornbillError('REPLICA_UNREACHABLE', `replica ${this.label} closed the connection`)),
    );
    this.lastActivity = performance.now();
    const timeoutMs = this.options.timeoutMs ?? 8000;
    // One coarse timer for all requests instead of a timer per request.
    this.timer = setInterval(
      () => this.checkTimeouts(timeoutMs),
      Math.min(1000, Math.max(50, timeoutMs / 8)),
    );
    this.timer.unref();
  }

  private received(chunk: Buffer): void {
    this.lastActivity = performance.now();
    this.reader.push(chunk);
  }

  private async connectTcp(connectTimeoutMs: number): Promise<void> {
    // Received bytes land in one buffer of the connection's, reused for every read (no
    // allocation per chunk); the frame reader consumes each chunk before the next read.
    const receiveBuffer = Buffer.allocUnsafe(RECEIVE_BUFFER_BYTES);
    // The rest of a large read answer, once its checksum section is in, is read straight
    // into the caller's memory (FrameReader.readBuffer): no copy of it in this process.
    const socket = net.connect({
      host: this.address.host,
      port: this.address.port,
      noDelay: true,
      onread: {
        buffer: () => this.reader.readBuffer(receiveBuffer),
        callback: (bytes: number, buffer: Uint8Array) => {
          if (buffer.buffer === receiveBuffer.buffer) {
            this.received(receiveBuffer.subarray(0, bytes));
          } else {
            this.lastActivity = performance.now();
            this.reader.pushPlaced(bytes);
          }
          return true;
        },
      },
    });
    this.socket = socket;
    this.cork.attach(socket);
    await whenConnected(
      socket,
      connectTimeoutMs,
      (reason, timedOut) =>
        new HornbillError(
          'REPLICA_UNREACHABLE',
          `cannot connect to replica ${this.label}: ${timedOut ? 'connect timed out' : reason}`,
        ),
    );
  }

  private checkTimeouts(timeoutMs: number): void {
    const now = performance.now();
    for (const slot of this.slots) {
      if (slot.busy && now - slot.startedAt > timeoutMs) {
        this.fail(
          new HornbillError('REPLICA_TIMEOUT', `replica ${this.label} did not answer within ${timeoutMs} ms`),
        );
        return;
      }
    }
    if (this.inFlight === 0 && now - this.lastActivity > (this.options.pingIntervalMs ?? 2000)) {
      this.lastActivity = now;
      this.ping().catch(noop);
    }
  }

  /**
   * Reads `target.length` bytes at `offsetBytes`, checked against the replica's checksums.
   * A replica served by this thread is read from its store directly (no frame, no tick).
   */
  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    if (this.directStore !== undefined && this.failure === undefined) {
      this.readDirect(offsetBytes, target);
      return;
    }
    const slot = await this.acquire();
    slot.target = target;
    slot.offsetBytes = offsetBytes;
    await this.send(slot, Op.READ, offsetBytes, target.length, 0, 0, null, null);
  }

  private readDirect(offsetBytes: number, target: Uint8Array): void {
    this.lastActivity = performance.now();
    try {
      this.directStore!.read(offsetBytes, target);
    } catch (error) {
      throw this.directError(error);
    }
  }

  /** A closed store is a replica gone, as a closed link would be; other errors are the replica's answer. */
  private directError(error: unknown): unknown {
    if (!isHornbillError(error, 'STORE_CLOSED')) return error;
    this.fail(new HornbillError('REPLICA_UNREACHABLE', `replica ${this.label} closed its store`));
    return this.failure;
  }

  /**
   * Writes `data`; `checksums` is its checksum section (computed once by the engine for
   * every replica). A replica served by this thread gets block-aligned writes without a
   * frame (InThreadStore.write) whenever no earlier request is still on its way through the
   * link (waiting for a slot, or staged and not delivered), so that the replica sees writes
   * and frames in the order they were asked for.
   */
  write(offsetBytes: number, data: Uint8Array, checksums: Uint8Array, flags: number): Promise<void> {
    if (
      this.directStore !== undefined &&
      this.failure === undefined &&
      this.socket !== undefined &&
      this.requestsNotSent === 0 &&
      this.socket.writableLength === 0 &&
      isBlockAligned(offsetBytes, data.length)
    ) {
      return this.writeDirect(offsetBytes, data, checksums, flags);
    }
    return this.writeFramed(offsetBytes, data, checksums, flags);
  }

  private writeDirect(
    offsetBytes: number,
    data: Uint8Array,
    checksums: Uint8Array,
    flags: number,
  ): Promise<void> {
    this.lastActivity = performance.now();
    return new Promise((resolve, reject) => {
      this.directStore!.write(offsetBytes, data, checksums, flags, (error) => {
        if (error === undefined) resolve();
        else reject(this.directError(error));
      });
    });
  }

  private async writeFramed(
    offsetBytes: number,
    data: Uint8Array,
    checksums: Uint8Array,
    flags: number,
  ): Promise<void> {
    const slot = await this.acquire();
    await this.send(
      slot,
      Op.WRITE,
      offsetBytes,
      data.length,
      checksums.length + data.length,
      flags,
      checksums,
      data,
    );
  }

  async unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    await this.send(await this.acquire(), Op.UNMAP, offsetBytes, lengthBytes, 0, 0, null, null);
  }

  async flush(): Promise<void> {
    await this.send(await this.acquire(), Op.FLUSH, 0, 0, 0, 0, null, null);
  }

  async ping(): Promise<void> {
    await this.send(await this.acquire(), Op.PING, 0, 0, 0, 0, null, null);
  }

  /** Calls a replica control method (replica-control.ts) and returns its JSON result. */
  async control<T = unknown>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const payload = encodeJson({ method, params });
    const response = await this.send(
      await this.acquire(),
      Op.CONTROL,
      0,
      0,
      payload.length,
      0,
      payload,
      null,
    );
    return decodeJson(response ?? Buffer.alloc(0), 'control response') as T;
  }

  async layerExtents(layer: string, startBlock: number, blockCount: number): Promise<LayerExtent[]> {
    const payload = encodeJson({ layer, startBlock, blockCount });
    const response = await this.send(
      await this.acquire(),
      Op.LAYER_EXTENTS,
      0,
      0,
      payload.length,
      0,
      payload,
      null,
    );
    return decodeExtents(response ?? Buffer.alloc(0));
  }

  /** Reads a layer's own data blocks into `target`, checked against the replica's checksums. */
  async readLayer(layer: string, startBlock: number, target: Uint8Array): Promise<void> {
    const slot = await this.acquire();
    slot.target = target;
    slot.offsetBytes = startBlock * 4096;
    const payload = encodeJson({ layer });
    await this.send(slot, Op.READ_LAYER, startBlock * 4096, target.length, payload.length, 0, payload, null);
  }

  /**
   * Reads the data blocks among `blockCount` blocks of a layer from `startBlock`, packed in
   * block order into `target` (as many blocks as the range holds data; a different count is
   * REPLICA_PROTOCOL_ERROR), checked against the replica's checksums — unless
   * `checkedByCaller`: a caller that stores the data with checksums it got from the replica
   * (a rebuild target, whose store checks every block) need not pay for a second check.
   */
  async readLayerPacked(
    layer: string,
    startBlock: number,
    blockCount: number,
    target: Uint8Array,
    options: { checkedByCaller?: boolean } = {},
  ): Promise<void> {
    const slot = await this.acquire();
    slot.target = target;
    slot.offsetBytes = startBlock * 4096;
    slot.check = options.checkedByCaller !== true;
    const payload = encodeJson({ layer, packed: true });
    await this.send(
      slot,
      Op.READ_LAYER,
      startBlock * 4096,
      blockCount * 4096,
      payload.length,
      0,
      payload,
      null,
    );
  }

  async writeLayer(startBlock: number, write: LayerWrite): Promise<void> {
    const [head, data] = encodeLayerWrite(write);
    const slot = await this.acquire();
    await this.send(
      slot,
      Op.WRITE_LAYER,
      startBlock * 4096,
      write.states.length * 4096,
      head.length + data.length,
      0,
      head,
      data,
    );
  }

  /** Closes the connection; requests in flight fail with REPLICA_UNREACHABLE. */
  close(): void {
    this.fail(
      new HornbillError('REPLICA_UNREACHABLE', `connection to replica ${this.label} closed by the engine`),
    );
  }

  /** A slot for a request; `send` must follow (it counts the request as sent). */
  private acquire(): Promise<Slot> | Slot {
    if (this.failure !== undefined) throw this.failure;
    this.requestsNotSent++;
    const slot = this.freeSlots.pop();
    if (slot !== undefined) return slot;
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private send(
    slot: Slot,
    op: OpValue,
    offsetBytes: number,
    lengthBytes: number,
    payloadLength: number,
    flags: number,
    first: Uint8Array | null,
    second: Uint8Array | null,
  ): Promise<Buffer | null> {
    this.requestsNotSent--;
    const socket = this.socket;
    if (this.failure !== undefined || socket === undefined) {
      this.release(slot);
      return Promise.reject(
        this.failure ?? new HornbillError('REPLICA_UNREACHABLE', `replica ${this.label} is not connected`),
      );
    }
    this.counter = (this.counter + 1) & 0xffff;
    slot.sequence = ((this.counter << 16) | slot.index) >>> 0;
    slot.busy = true;
    slot.startedAt = performance.now();
    encodeHeader(slot.header, 0, {
      op,
      sequence: slot.sequence,
      offsetBytes,
      lengthBytes,
      payloadLength,
      flags,
    });
    const result = new Promise<Buffer | null>((resolve, reject) => {
      slot.resolve = resolve;
      slot.reject = reject;
    });
    this.cork.hold();
    socket.write(slot.header);
    if (first !== null && first.length > 0) socket.write(first);
    if (second !== null && second.length > 0) socket.write(second);
    return result;
  }

  /**
   * Where a large answer still arriving goes: the data of a read answer straight into the
   * request's target, its checksum section into a scratch buffer (FrameReader placement).
   * Anything unexpected (an error answer, a size that does not match) is left to
   * onResponse, which rejects it. The target's content is undefined when the read fails.
   */
  private placeAnswer(header: FrameHeader): PayloadPlacement | undefined {
    if (header.op !== Op.OK) return undefined;
    const slot = this.slots[header.sequence & 0xffff];
    if (slot === undefined || !slot.busy || slot.sequence !== header.sequence || slot.target === null)
      return undefined;
    const target = slot.target;
    const sectionBytes = header.payloadLength - target.length;
    if (sectionBytes < 0 || sectionBytes !== checksumSectionBytes(slot.offsetBytes, target.length))
      return undefined;
    if (sectionBytes > this.sectionScratch.length) this.sectionScratch = Buffer.alloc(sectionBytes);
    return { prefix: this.sectionScratch.subarray(0, sectionBytes), data: target };
  }

  private onResponse(header: FrameHeader, payload: Buffer, placed: boolean): void {
    const slot = this.slots[header.sequence & 0xffff];
    if (slot === undefined || !slot.busy || slot.sequence !== header.sequence) {
      this.fail(
        new HornbillError(
          'REPLICA_PROTOCOL_ERROR',
          `replica ${this.label} answered unknown request ${header.sequence}`,
        ),
      );
      return;
    }
    const { resolve, reject, target, check } = slot;
    this.release(slot);
    if (header.op === Op.ERROR) {
      reject(decodeError(payload));
      return;
    }
    if (header.op !== Op.OK) {
      reject(
        new HornbillError('REPLICA_PROTOCOL_ERROR', `replica ${this.label} answered with op ${header.op}`),
      );
      return;
    }
    // The payload is a view of the reader's buffers, reused by the next frame; whoever awaits
    // the result runs later, so it gets a copy. (Read data is copied into its target below, now.)
    if (target === null) {
      resolve(payload.length === 0 ? null : Buffer.from(payload));
      return;
    }
    // Placed: `payload` is the checksum section and the data is in `target` already.
    const sectionBytes = placed ? payload.length : payload.length - target.length;
    const section = payload.subarray(0, sectionBytes);
    const data = placed ? target : payload.subarray(sectionBytes);
    if (sectionBytes !== checksumSectionBytes(slot.offsetBytes, target.length)) {
      reject(
        new HornbillError(
          'REPLICA_PROTOCOL_ERROR',
          `replica ${this.label} sent a read answer of the wrong size`,
        ),
      );
      return;
    }
    const bad = check ? findChecksumMismatch(section, slot.offsetBytes, data) : -1;
    if (bad >= 0) {
      reject(
        new HornbillError(
          'STORE_CHECKSUM_MISMATCH',
          `data from replica ${this.label} was damaged on the way`,
          {
            transfer: true,
            blocks: [
              {
                block: Math.floor(slot.offsetBytes / 4096) + bad,
                offsetBytes: slot.offsetBytes + bad * 4096,
              },
            ],
          },
        ),
      );
      return;
    }
    if (!placed) target.set(data);
    resolve(null);
  }

  private release(slot: Slot): void {
    slot.busy = false;
    slot.target = null;
    slot.check = true;
    slot.resolve = noop;
    slot.reject = noop;
    const waiter = this.slotWaiters.shift();
    if (waiter !== undefined) waiter(slot);
    else this.freeSlots.push(slot);
  }

  private fail(error: HornbillError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.socket?.destroy();
    for (const slot of this.slots) {
      if (!slot.busy) continue;
      const reject = slot.reject;
      slot.busy = false;
      slot.target = null;
      slot.resolve = noop;
      slot.reject = noop;
      reject(error);
    }
    for (const waiter of this.slotWaiters.splice(0)) {
      // A request waiting for a slot fails too: hand it a slot whose send will reject.
      waiter(this.freeSlots.pop() ?? this.slots[0]);
    }
    for (const listener of this.failureListeners) {
      try {
        listener(error);
      } catch (listenerError) {
        this.options.log('error', 'replica failure listener threw', { error: String(listenerError) });
      }
    }
  }

  /** True when an error means this replica is gone (rather than a refused request). */
  static isConnectionFailure(error: unknown): boolean {
    return (
      isHornbillError(error) &&
      ['REPLICA_UNREACHABLE', 'REPLICA_TIMEOUT', 'REPLICA_PROTOCOL_ERROR'].includes(error.code)
    );
  }
}
