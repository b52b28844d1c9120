import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { assert } from '../../assert.ts';
import { type ErrorCode, HornbillError } from '../../errors.ts';
import { Doorbell } from './doorbell.ts';
import { InFlightTable, type Settler } from './in-flight-table.ts';
import { InlineLane } from './inline-lane.ts';
import {
  errorCodeAt,
  failureFor,
  type IoRequestFields,
  kCompletionErrorCodeField,
  kCompletionStatusField,
  kCompletionTagField,
  kCompletionValueField,
  kRequestChunkField,
  kRequestFlagsField,
  kRequestIdField,
  kRequestLengthField,
  kRequestOffsetHighField,
  kRequestOffsetLowField,
  kRequestOperationField,
  kRequestTagField,
  STATUS_OK,
} from './io-protocol.ts';
import {
  createControlBuffer,
  createLane,
  initializeLane,
  kControlCompletionDoorbell,
  type Lane,
} from './lane.ts';
import { type LaneThread, type LaneThreadStarter, ownThread } from './lane-thread.ts';
import { PayloadSlab, type PayloadSlabOptions } from './payload-slab.ts';
import { toModuleUrl } from './worker-start.ts';

/** Bounds: at most 64 workers; a lane keeps at most `ringCapacity` requests in flight. */
export const WORKER_COUNT_MAX = 64;
export const DEFAULT_RING_CAPACITY = 64;
const OFFSET_HIGH_UNIT = 2 ** 32;

export interface IoChannelOptions {
  /** Worker threads; 0 runs the handler inline on the calling thread through the same rings. */
  workerCount: number;
  /** Absolute path or file: URL of a module exporting `createHandler` (io-protocol.ts). */
  handlerModule: string | URL;
  /** Given to createHandler in every thread (structured clone; SharedArrayBuffers stay shared). */
  handlerData?: unknown;
  /** Ring slots per lane, a power of two (default 64): the in-flight bound per worker. */
  ringCapacity?: number;
  /** The payload slab's shape (default 256 chunks of 128 KiB). */
  slab?: PayloadSlabOptions;
  /** Called for every request submitted with trySubmit; errorCode undefined means success. */
  onCompletion?: (requestId: number, errorCode: ErrorCode | undefined, value: number) => void;
  /** Called when a live worker dies or is terminated, after its requests were failed. */
  onWorkerExit?: (event: WorkerExitEvent) => void;
  /** How long a worker may take to load its handler (default 30 s). */
  startTimeoutMs?: number;
  /** How long a closing worker may take to exit before it is terminated (default 5 s). */
  stopTimeoutMs?: number;
  /**
   * Where each lane is served: a worker thread of its own (the default), or a running
   * thread that hosts it (lane-thread.ts `hostedIn`, a replica's thread).
   */
  laneThread?: LaneThreadStarter;
}

export interface WorkerExitEvent {
  workerIndex: number;
  exitCode: number;
  /** The uncaught error that ended the thread, if any. */
  error: Error | undefined;
  /** Requests that were completed with WORKER_FAILED because of this exit. */
  failedRequests: number;
}

export type WorkerState = 'starting' | 'live' | 'terminating' | 'stopping' | 'dead';

interface LaneRecord {
  lane: Lane;
  state: WorkerState;
  thread: LaneThread | undefined;
  lastError: Error | undefined;
  exited: Promise<void>;
  markExited: () => void;
}

/**
 * Sends I/O descriptors from one frontend thread to a pool of worker threads and brings
 * their completions back, through SharedArrayBuffer rings (one lane per worker: lane.ts)
 * and a shared payload slab. No allocation per request on the trySubmit/onCompletion path.
 *
 * ```ts
 * const channel = await IoChannel.open({ workerCount: 2, handlerModule: '/abs/engine-handler.ts',
 *   onCompletion: (requestId, errorCode, value) => { ... } });
 * const chunk = channel.slab.tryAllocate(4096);
 * channel.slab.copyIn(chunk, data);
 * fields.operation = IoOperation.write; fields.offsetBytes = 8192; fields.lengthBytes = 4096;
 * fields.chunkIndex = chunk; fields.requestId = 17; fields.flags = 0;
 * if (!channel.trySubmit(fields)) await channel.whenWritable();   // back-pressure
 * await channel.close();
 * ```
 *
 * Requests carry no order between them (as SCSI simple tasks): a caller that needs one
 * waits for the completion. Payload chunks belong to the caller before submit and after
 * the completion (also a failed one: a dead worker no longer touches memory).
 */

export class IoChannel {
  readonly slab: PayloadSlab;
  readonly workerCount: number;
  readonly ringCapacity: number;
  private readonly options: IoChannelOptions;
  private readonly handlerModuleUrl: string;
  private readonly controlBuffer: SharedArrayBuffer;
  private readonly completionDoorbell: Doorbell;
  private readonly lanes: LaneRecord[] = [];
  private readonly inFlight: InFlightTable;
  private liveLaneCount = 0;
  private nextLaneStart = 0;
  private writableWaiters: (() => void)[] = [];
  private drainedWaiter: (() => void) | undefined;
  private completionLoopRunning = false;
  /** Worker count 0: the lane served on this thread. */
  private inline: InlineLane | undefined;
  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | undefined;

  private constructor(options: IoChannelOptions) {
    const workerCount = options.workerCount;
    if (!Number.isInteger(workerCount) || workerCount < 0 || workerCount > WORKER_COUNT_MAX) {
      throw new HornbillError('INVALID_ARGUMENT', `workerCount must be 0 to ${WORKER_COUNT_MAX}`, {
        workerCount,
      });
    }
    this.options = options;
    this.workerCount = workerCount;
    this.ringCapacity = options.ringCapacity ?? DEFAULT_RING_CAPACITY;
    this.handlerModuleUrl = toModuleUrl(options.handlerModule);
    this.slab = PayloadSlab.create(options.slab);
    this.controlBuffer = createControlBuffer();
    this.completionDoorbell = new Doorbell(new Int32Array(this.controlBuffer), kControlCompletionDoorbell);
    const laneCount = Math.max(1, workerCount);
    for (let index = 0; index < laneCount; index++) {
      const record: LaneRecord = {
        lane: createLane(this.ringCapacity),
        state: 'dead',
        thread: undefined,
        lastError: undefined,
        exited: Promise.resolve(),
        markExited: () => {},
      };
      this.lanes.push(record);
    }
    this.inFlight = new InFlightTable(laneCount, this.ringCapacity);
  }

  /** Starts the workers (or loads the handler inline) and resolves once every handler is ready. */
  static async open(options: IoChannelOptions): Promise<IoChannel> {
    const channel = new IoChannel(options);
    try {
      if (channel.workerCount === 0) await channel.startInline();
      else await Promise.all(channel.lanes.map((_, index) => channel.spawn(index)));
    } catch (error) {
      await channel.close({ drain: false });
      throw error;
    }
    return channel;
  }

  /**
   * Submits one request, copying its fields into a lane's ring. Returns false when every
   * live worker already has `ringCapacity` requests in flight (wait with whenWritable).
   * Throws WORKER_CHANNEL_CLOSED after close, WORKER_FAILED when no worker is alive,
   * INVALID_ARGUMENT for fields out of range.
   */
  trySubmit(fields: IoRequestFields): boolean {
    this.checkSubmittable(fields);
    const laneIndex = this.pickLane();
    if (laneIndex < 0) return false;
    this.enqueue(laneIndex, fields, undefined);
    return true;
  }

  /**
   * Convenience for callers that prefer promises (allocates a promise and a copy of the
   * fields per request): waits for room, resolves with the handler's value, rejects with a
   * HornbillError carrying the completion's code.
   */
  async submit(fields: IoRequestFields): Promise<number> {
    const copy: IoRequestFields = { ...fields };
    for (;;) {
      this.checkSubmittable(copy);
      const laneIndex = this.pickLane();
      if (laneIndex >= 0) {
        const { promise, resolve, reject } = Promise.withResolvers<number>();
        this.enqueue(laneIndex, copy, { resolve, reject });
        return promise;
      }
      await this.whenWritable();
    }
  }

  /** Resolves when trySubmit may succeed (room in a live lane), or when it would throw. */
  whenWritable(): Promise<void> {
    if (this.closing || this.liveLaneCount === 0 || this.pickLane(false) >= 0) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  /** Requests submitted and not yet completed, in total or for one worker. */
  inFlightCount(workerIndex?: number): number {
    return workerIndex === undefined ? this.inFlight.total : this.inFlight.countOnLane(workerIndex);
  }

  workerState(workerIndex: number): WorkerState {
    return this.lanes[workerIndex].state;
  }

  /**
   * Terminates a worker (a watchdog's last resort, and tests). Its requests in flight
   * complete with WORKER_FAILED and onWorkerExit reports it; restartWorker replaces it.
   */
  async terminateWorker(workerIndex: number): Promise<void> {
    const record = this.workerRecord(workerIndex);
    if (record.thread === undefined || record.state === 'dead') return;
    if (record.state === 'live') this.setState(record, 'terminating');
    await record.thread.terminate();
    await record.exited;
  }

  /** Starts a replacement for a dead worker on a fresh lane; resolves when it is ready. */
  async restartWorker(workerIndex: number): Promise<void> {
    const record = this.workerRecord(workerIndex);
    if (this.closing) throw new HornbillError('WORKER_CHANNEL_CLOSED', 'the channel is closing');
    if (record.state !== 'dead') {
      throw new HornbillError('INVALID_ARGUMENT', `worker ${workerIndex} is ${record.state}, not dead`);
    }
    assert(this.inFlight.countOnLane(workerIndex) === 0, 'a dead lane has no requests in flight');
    // The old thread has exited (its 'exit' event made the lane dead), so nobody else
    // touches this memory: re-initialize the rings in place for the new worker.
    record.lane = initializeLane(record.lane.buffer, this.ringCapacity);
    await this.spawn(workerIndex);
    this.wakeWritableWaiters();
  }

  /**
   * Stops the channel. With drain (the default) it waits up to drainTimeoutMs (default 30 s)
   * for requests in flight; whatever is left then completes with WORKER_CHANNEL_CLOSED.
   * Workers are asked to exit (their handlers' close runs) and terminated after
   * stopTimeoutMs. Afterwards no thread, timer or handle of the channel remains.
   */
  close(options: { drain?: boolean; drainTimeoutMs?: number } = {}): Promise<void> {
    this.closePromise ??= this.shutdown(options.drain ?? true, options.drainTimeoutMs ?? 30_000);
    return this.closePromise;
  }

  private async shutdown(drain: boolean, drainTimeoutMs: number): Promise<void> {
    this.closing = true;
    this.wakeWritableWaiters();
    if (drain && this.inFlight.total > 0) await this.whenDrained(drainTimeoutMs);
    if (this.workerCount === 0) {
      this.failLane(0, 'WORKER_CHANNEL_CLOSED');
      this.closed = true;
      await this.inline?.close();
    } else {
      await Promise.all(this.lanes.map((_, index) => this.stopWorker(index)));
      this.closed = true;
    }
    // Wakes the completion loop if it sleeps; it sees `closed` and ends.
    this.completionDoorbell.ringAlways();
  }

  private async stopWorker(workerIndex: number): Promise<void> {
    const record = this.lanes[workerIndex];
    const thread = record.thread;
    if (thread === undefined) return;
    if (record.state !== 'terminating') this.setState(record, 'stopping');
    if (this.inFlight.countOnLane(workerIndex) === 0) {
      // Graceful: the worker serves what is published, sees the closed ring, closes its handler, exits.
      record.lane.requests.close();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.stopTimeoutMs ?? 5000);
      });
      await Promise.race([record.exited, timedOut]);
      clearTimeout(timer);
    }
    if (record.thread === thread) await thread.terminate();
    await record.exited;
  }

  private async startInline(): Promise<void> {
    this.inline = await InlineLane.start({
      handlerModuleUrl: this.handlerModuleUrl,
      handlerData: this.options.handlerData,
      slab: this.slab,
      lane: this.lanes[0].lane,
      drainCompletions: () => this.drainCompletions(),
    });
    this.setState(this.lanes[0], 'live');
  }

  private async spawn(workerIndex: number): Promise<void> {
    const record = this.lanes[workerIndex];
    const start = this.options.laneThread ?? ownThread;
    const thread = start(
      {
        workerIndex,
        laneBuffer: record.lane.buffer,
        controlBuffer: this.controlBuffer,
        slabBuffer: this.slab.buffer,
        handlerModuleUrl: this.handlerModuleUrl,
        handlerData: this.options.handlerData,
      },
      this.options.startTimeoutMs ?? 30_000,
    );
    record.thread = thread;
    record.lastError = undefined;
    record.exited = new Promise((resolve) => {
      record.markExited = resolve;
    });
    this.setState(record, 'starting');
    thread.onEnd((exitCode, error) => {
      record.lastError = error;
      this.onExit(workerIndex, thread, exitCode);
    });
    await thread.ready;
    // A close may have begun while the worker was starting: then it stays 'stopping'.
    if (record.state === 'starting') this.setState(record, 'live');
  }

  private onExit(workerIndex: number, thread: LaneThread, exitCode: number): void {
    const record = this.lanes[workerIndex];
    if (record.thread !== thread) return;
    const previous = record.state;
    record.thread = undefined;
    this.setState(record, 'dead');
    // Completions published before the death are real results: deliver them first.
    this.drainLane(workerIndex);
    const failedRequests = this.failLane(
      workerIndex,
      previous === 'stopping' ? 'WORKER_CHANNEL_CLOSED' : 'WORKER_FAILED',
    );
    record.markExited();
    if (previous === 'live' || previous === 'terminating') {
      this.options.onWorkerExit?.({ workerIndex, exitCode, error: record.lastError, failedRequests });
    }
    this.wakeWritableWaiters();
  }

  private setState(record: LaneRecord, state: WorkerState): void {
    if (record.state === 'live') this.liveLaneCount--;
    record.state = state;
    if (state === 'live') this.liveLaneCount++;
  }

  private workerRecord(workerIndex: number): LaneRecord {
    if (
      this.workerCount === 0 ||
      !Number.isInteger(workerIndex) ||
      workerIndex < 0 ||
      workerIndex >= this.workerCount
    ) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `no worker ${workerIndex} (worker count ${this.workerCount})`,
      );
    }
    return this.lanes[workerIndex];
  }

  private checkSubmittable(fields: IoRequestFields): void {
    if (this.closing) throw new HornbillError('WORKER_CHANNEL_CLOSED', 'the channel is closed or closing');
    if (this.liveLaneCount === 0)
      throw new HornbillError('WORKER_FAILED', 'no live worker serves the channel');
    const { operation, offsetBytes, lengthBytes, chunkIndex, requestId, flags } = fields;
    if (
      (operation | 0) !== operation ||
      (requestId | 0) !== requestId ||
      (flags | 0) !== flags ||
      !Number.isSafeInteger(offsetBytes) ||
      offsetBytes < 0 ||
      (lengthBytes | 0) !== lengthBytes ||
      lengthBytes < 0 ||
      (chunkIndex | 0) !== chunkIndex ||
      chunkIndex < -1 ||
      chunkIndex >= this.slab.chunkCount
    ) {
      throw new HornbillError('INVALID_ARGUMENT', 'request fields out of range', {
        operation,
        offsetBytes,
        lengthBytes,
        chunkIndex,
        requestId,
        flags,
      });
    }
  }

  /** The live lane with the fewest requests in flight and room for one more, or -1. */
  private pickLane(rotate = true): number {
    const count = this.lanes.length;
    let best = -1;
    let bestLoad = this.ringCapacity;
    for (let step = 0; step < count; step++) {
      const index = (this.nextLaneStart + step) % count;
      if (this.lanes[index].state !== 'live') continue;
      const load = this.inFlight.countOnLane(index);
      if (load >= bestLoad) continue;
      best = index;
      bestLoad = load;
      if (bestLoad === 0) break;
    }
    if (rotate) this.nextLaneStart = (this.nextLaneStart + 1) % count;
    return best;
  }

  private enqueue(laneIndex: number, fields: IoRequestFields, settler: Settler | undefined): void {
    const tag = this.inFlight.take(laneIndex, fields.requestId, settler);
    const requests = this.lanes[laneIndex].lane.requests;
    // The lane has fewer than `capacity` requests in flight, and each occupied slot is one of them.
    const slot = requests.tryReserve();
    assert(slot >= 0, 'a lane below its in-flight bound has a free request slot');
    const words = requests.words;
    const base = requests.fieldBase(slot);
    const offset = fields.offsetBytes;
    words[base + kRequestTagField] = tag;
    words[base + kRequestOperationField] = fields.operation;
    words[base + kRequestOffsetLowField] = (offset % OFFSET_HIGH_UNIT) | 0;
    words[base + kRequestOffsetHighField] = Math.floor(offset / OFFSET_HIGH_UNIT);
    words[base + kRequestLengthField] = fields.lengthBytes;
    words[base + kRequestChunkField] = fields.chunkIndex;
    words[base + kRequestIdField] = fields.requestId;
    words[base + kRequestFlagsField] = fields.flags;
    requests.commit(slot); // publishes the fields and wakes the worker if it sleeps
    if (this.workerCount === 0) this.inline?.schedule();
    else this.ensureCompletionLoop();
  }

  private ensureCompletionLoop(): void {
    if (this.completionLoopRunning) return;
    this.completionLoopRunning = true;
    void this.completionLoop();
  }

  /**
   * Drains every lane's completions while requests are in flight; sleeps on the completion
   * doorbell with Atomics.waitAsync (the frontend thread never blocks), protocol and
   * argument in doorbell.ts. After a non-empty round it yields one event-loop turn so that
   * a steady stream of completions cannot starve the frontend's sockets and timers.
   */
  private async completionLoop(): Promise<void> {
    const doorbell = this.completionDoorbell;
    while (this.inFlight.total > 0 && !this.closed) {
      if (this.drainCompletions() > 0) {
        await yieldToEventLoop();
        continue;
      }
      const observed = doorbell.observe(); // S1
      doorbell.announce(); // S2
      if (this.anyCompletionPublished()) {
        doorbell.withdraw(); // S3
        continue;
      }
      const sleeping = doorbell.sleepAsync(observed); // S4
      if (sleeping !== undefined) await sleeping;
      doorbell.withdraw(); // S5
    }
    this.completionLoopRunning = false;
  }

  private anyCompletionPublished(): boolean {
    for (const record of this.lanes)
      if (record.state !== 'dead' && record.lane.completions.canTake()) return true;
    return false;
  }

  /** Delivers every published completion of every lane; returns how many. */
  private drainCompletions(): number {
    let delivered = 0;
    for (let index = 0; index < this.lanes.length; index++) {
      if (this.lanes[index].state !== 'dead') delivered += this.drainLane(index);
    }
    if (delivered > 0) this.afterCompletions();
    return delivered;
  }

  private drainLane(laneIndex: number): number {
    const completions = this.lanes[laneIndex].lane.completions;
    const words = completions.words;
    let delivered = 0;
    // Bounded: a lane never has more than `capacity` completions outstanding.
    for (; delivered < completions.capacity; delivered++) {
      const slot = completions.tryTake();
      if (slot < 0) break;
      const base = completions.fieldBase(slot);
      const tag = words[base + kCompletionTagField];
      const status = words[base + kCompletionStatusField];
      const errorIndex = words[base + kCompletionErrorCodeField];
      const value = words[base + kCompletionValueField];
      completions.release(slot);
      this.finish(tag, laneIndex, status === STATUS_OK ? undefined : errorCodeAt(errorIndex), value);
    }
    return delivered;
  }

  /** Completes every request still in flight on a lane with `code`; returns how many. */
  private failLane(laneIndex: number, code: ErrorCode): number {
    let failed = 0;
    for (
      let tag = this.inFlight.nextOnLane(laneIndex, 0);
      tag >= 0;
      tag = this.inFlight.nextOnLane(laneIndex, tag)
    ) {
      this.finish(tag, laneIndex, code, 0);
      failed++;
    }
    if (failed > 0) this.afterCompletions();
    return failed;
  }

  private finish(tag: number, laneIndex: number, errorCode: ErrorCode | undefined, value: number): void {
    this.inFlight.finish(tag, laneIndex);
    const requestId = this.inFlight.finishedRequestId;
    const settler = this.inFlight.finishedSettler;
    if (settler !== undefined) {
      if (errorCode === undefined) settler.resolve(value);
      else settler.reject(failureFor(errorCode, requestId, laneIndex));
    } else {
      this.options.onCompletion?.(requestId, errorCode, value);
    }
  }

  private afterCompletions(): void {
    this.wakeWritableWaiters();
    if (this.inFlight.total === 0 && this.drainedWaiter !== undefined) {
      const waiter = this.drainedWaiter;
      this.drainedWaiter = undefined;
      waiter();
    }
  }

  private wakeWritableWaiters(): void {
    if (this.writableWaiters.length === 0) return;
    const waiters = this.writableWaiters;
    this.writableWaiters = [];
    for (const wake of waiters) wake();
  }

  private whenDrained(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(finish, timeoutMs);
      function finish() {
        clearTimeout(timer);
        resolve();
      }
      this.drainedWaiter = finish;
    });
  }
}
