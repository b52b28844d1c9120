import { assert } from '../../assert.ts';
import {
  codeOfThrown,
  errorCodeIndex,
  type IoHandler,
  IoRequest,
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
  STATUS_FAILED,
  STATUS_OK,
} from './io-protocol.ts';
import type { PayloadSlab } from './payload-slab.ts';
import type { RingQueue } from './ring-queue.ts';

const OFFSET_HIGH_UNIT = 2 ** 32;

/**
 * The consumer side of one lane (a request ring and its completion ring): takes requests,
 * runs the handler, publishes completions. The same class runs in a worker thread
 * (worker-entry.ts) and inline on the frontend thread (worker count 0), so both modes share
 * the code path from the descriptor to the handler and back.
 *
 * Bounds: the channel keeps at most `requests.capacity` requests of a lane in flight, so at
 * most that many requests are in the handler, the request pool never runs dry, and a
 * completion always finds a free slot (a full completion ring would be a bug: assert).
 */
export class RequestServer {
  readonly requests: RingQueue;
  readonly completions: RingQueue;
  private readonly handler: IoHandler;
  private readonly signalCompletion: () => void;
  private readonly pool: IoRequest[];
  /** Requests whose handler promise has not settled yet. */
  pendingCount = 0;
  private idleWaiter: (() => void) | undefined;

  constructor(
    lane: { requests: RingQueue; completions: RingQueue },
    slab: PayloadSlab,
    handler: IoHandler,
    signalCompletion: () => void,
  ) {
    this.requests = lane.requests;
    this.completions = lane.completions;
    this.handler = handler;
    this.signalCompletion = signalCompletion;
    this.pool = [];
    for (let index = 0; index < lane.requests.capacity; index++) {
      const request = new IoRequest(slab);
      request.onFulfilled = (value) => this.settle(request, value, undefined);
      request.onRejected = (error) => this.settle(request, undefined, error ?? new Error('rejected'));
      this.pool.push(request);
    }
  }

  /**
   * Takes every published request (at most one ring's worth per call, so a caller that keeps
   * the ring busy still returns to its event loop) and starts the handler on each. Returns
   * how many were taken.
   */
  serveAvailable(): number {
    const requests = this.requests;
    const words = requests.words;
    let taken = 0;
    for (; taken < requests.capacity; taken++) {
      const slot = requests.tryTake();
      if (slot < 0) break;
      const request = this.pool.pop();
      assert(request !== undefined, 'a lane has no more requests in flight than its ring capacity');
      const base = requests.fieldBase(slot);
      // Plain reads, ordered after the producer's field stores by tryTake's load of the
      // committed sequence number (see RingQueue.commit).
      request.tag = words[base + kRequestTagField];
      request.operation = words[base + kRequestOperationField];
      request.offsetBytes =
        (words[base + kRequestOffsetHighField] >>> 0) * OFFSET_HIGH_UNIT +
        (words[base + kRequestOffsetLowField] >>> 0);
      request.lengthBytes = words[base + kRequestLengthField];
      request.chunkIndex = words[base + kRequestChunkField];
      request.requestId = words[base + kRequestIdField];
      request.flags = words[base + kRequestFlagsField];
      // Free the slot before the work: the request lives on in `request` until it completes.
      requests.release(slot);
      this.start(request);
    }
    return taken;
  }

  /** Resolves once no handler promise is pending (for a graceful stop). */
  whenIdle(): Promise<void> {
    if (this.pendingCount === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiter = resolve;
    });
  }

  private start(request: IoRequest): void {
    let result: unknown;
    try {
      result = this.handler.handle(request);
    } catch (error) {
      this.complete(request, STATUS_FAILED, errorCodeIndex(codeOfThrown(error)), 0);
      return;
    }
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as Promise<unknown>).then === 'function'
    ) {
      this.pendingCount++;
      (result as Promise<unknown>).then(request.onFulfilled, request.onRejected);
      return;
    }
    this.complete(request, STATUS_OK, -1, toValue(result));
  }

  private settle(request: IoRequest, value: unknown, error: unknown): void {
    this.pendingCount--;
    if (error === undefined) this.complete(request, STATUS_OK, -1, toValue(value));
    else this.complete(request, STATUS_FAILED, errorCodeIndex(codeOfThrown(error)), 0);
    if (this.pendingCount === 0 && this.idleWaiter !== undefined) {
      const waiter = this.idleWaiter;
      this.idleWaiter = undefined;
      waiter();
    }
  }

  private complete(request: IoRequest, status: number, errorCode: number, value: number): void {
    const completions = this.completions;
    const slot = completions.tryReserve();
    assert(slot >= 0, 'a completion ring has room for every request in flight');
    const base = completions.fieldBase(slot);
    completions.words[base + kCompletionTagField] = request.tag;
    completions.words[base + kCompletionStatusField] = status;
    completions.words[base + kCompletionErrorCodeField] = errorCode;
    completions.words[base + kCompletionValueField] = value;
    completions.commit(slot);
    this.pool.push(request);
    this.signalCompletion();
  }
}

function toValue(result: unknown): number {
  return typeof result === 'number' ? result | 0 : 0;
}
