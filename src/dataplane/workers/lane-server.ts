/**
 * Serves one lane of an IoChannel on the current thread: attaches the shared buffers, loads
 * the handler, reports `ready` (or `failed`), then serves until the frontend closes the
 * lane's request ring, and closes the handler. Runs in a thread of its own (worker-entry.ts)
 * or in a thread that does other work too (a replica's thread, lane-thread.ts): everything
 * after start-up goes through shared memory, and the event loop keeps running while it waits.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { Doorbell } from './doorbell.ts';
import { type IoHandler, loadHandler } from './io-protocol.ts';
import { attachLane, kControlCompletionDoorbell } from './lane.ts';
import { PayloadSlab } from './payload-slab.ts';
import { RequestServer } from './request-server.ts';
import { RING_SPIN_LIMIT } from './ring-queue.ts';

export interface WorkerStartData {
  workerIndex: number;
  laneBuffer: SharedArrayBuffer;
  controlBuffer: SharedArrayBuffer;
  slabBuffer: SharedArrayBuffer;
  handlerModuleUrl: string;
  handlerData: unknown;
}

export type WorkerMessage = { type: 'ready' } | { type: 'failed'; code: string; message: string };

/**
 * Serves the lane described by `data`; `report` gets `ready` once the handler is loaded,
 * or `failed` (and the promise resolves) when it cannot be. Resolves when the lane is closed
 * and served; rejects only on a broken invariant of the serve loop.
 */
export async function serveLane(
  data: WorkerStartData,
  report: (message: WorkerMessage) => void,
): Promise<void> {
  let handler: IoHandler;
  let server: RequestServer;
  try {
    const lane = attachLane(data.laneBuffer);
    const slab = PayloadSlab.attach(data.slabBuffer);
    const doorbell = new Doorbell(new Int32Array(data.controlBuffer), kControlCompletionDoorbell);
    handler = await loadHandler(data.handlerModuleUrl, {
      workerIndex: data.workerIndex,
      inline: false,
      slab,
      handlerData: data.handlerData,
    });
    server = new RequestServer(lane, slab, handler, () => doorbell.ring());
  } catch (error) {
    const coded = isHornbillError(error)
      ? error
      : new HornbillError('WORKER_HANDLER_INVALID', String(error), {}, { cause: error });
    report({ type: 'failed', code: coded.code, message: coded.message });
    return;
  }
  report({ type: 'ready' });
  // A pending Atomics.waitAsync does not keep a thread's event loop alive: without a ref'd
  // handle the thread would end (exit code 13, unsettled top-level await) while it waits for
  // requests or for its handler's promises. One interval timer, cleared once stopped.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    await serve(server, handler.blocksWhenIdle === true);
    await server.whenIdle();
    await handler.close?.();
  } finally {
    clearInterval(keepAlive);
  }
}

/**
 * Serves until the request ring is closed and empty. Bounded work per round: at most one
 * ring's worth of requests, then (when promises may be pending) a turn of the event loop.
 */
async function serve(server: RequestServer, blocksWhenIdle: boolean): Promise<void> {
  const requests = server.requests;
  for (;;) {
    const taken = server.serveAvailable();
    if (taken > 0) {
      // Handlers that return promises need the event loop (sockets, timers) to progress.
      if (!blocksWhenIdle || server.pendingCount > 0) await yieldToEventLoop();
      continue;
    }
    if (requests.isClosed()) {
      // The frontend closes the ring after its last commit; anything published is served first.
      if (!requests.canTake()) return;
      continue;
    }
    if (blocksWhenIdle && server.pendingCount === 0) {
      requests.waitUntilTakeable(); // bounded spin, then Atomics.wait
    } else {
      let published = false;
      for (let round = 0; round < RING_SPIN_LIMIT && !published; round++) published = requests.canTake();
      if (!published) await requests.whenTakeable(); // Atomics.waitAsync: the event loop keeps running
    }
  }
}
