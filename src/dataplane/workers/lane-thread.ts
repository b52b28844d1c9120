import type { Worker } from 'node:worker_threads';
import { type ErrorCode, HornbillError } from '../../errors.ts';
import type { WorkerMessage, WorkerStartData } from './lane-server.ts';
import { startWorker } from './worker-start.ts';

/**
 * The thread that serves one lane of an IoChannel: a worker thread of its own (the
 * default), or a running thread that hosts the lane next to its own work (a replica's
 * thread: the engine then reaches that replica in memory).
 */
export interface LaneThread {
  readonly threadId: number;
  /** Resolves once the handler is loaded; rejects with its coded error, or WORKER_FAILED. */
  readonly ready: Promise<void>;
  /** Called once, when the thread stops serving the lane (its lane ended, or the thread exited). */
  onEnd(listener: (exitCode: number, error: Error | undefined) => void): void;
  /** Ends the thread at once (a hosting thread ends with everything it runs). */
  terminate(): Promise<void>;
}

/** Starts the thread that serves a lane. */
export type LaneThreadStarter = (data: WorkerStartData, startTimeoutMs: number) => LaneThread;

/** A worker thread of its own, on worker-entry.ts, that exits when its lane ends. */
export const ownThread: LaneThreadStarter = (data, startTimeoutMs) => {
  const { worker, ready } = startWorker(data, startTimeoutMs);
  let lastError: Error | undefined;
  worker.on('error', (error) => {
    lastError = error;
  });
  return {
    threadId: worker.threadId,
    ready,
    onEnd: (listener) => worker.once('exit', (exitCode) => listener(exitCode, lastError)),
    terminate: async () => {
      await worker.terminate();
    },
  };
};

/** What a hosting thread is sent, and what it answers (see replica-thread.ts). */
export interface ServeLaneCommand {
  type: 'serve-lane';
  laneId: number;
  data: WorkerStartData;
}

export interface LaneReport {
  type: 'lane';
  laneId: number;
  event: WorkerMessage | { type: 'ended'; error?: string };
}

let nextLaneId = 1;

/**
 * Lanes served by `worker`, a running thread that understands ServeLaneCommand. The lane
 * ends with an `ended` report (the thread goes on) or with the thread's exit.
 */
export function hostedIn(worker: Worker): LaneThreadStarter {
  return (data, startTimeoutMs) => {
    const laneId = nextLaneId++;
    const ready = Promise.withResolvers<void>();
    const endListeners: ((exitCode: number, error: Error | undefined) => void)[] = [];
    let ended = false;
    let lastError: Error | undefined;
    const end = (exitCode: number, error: Error | undefined) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      worker.off('error', onError);
      ready.reject(
        error ?? new HornbillError('WORKER_FAILED', `the thread hosting lane ${laneId} stopped serving it`),
      );
      for (const listener of endListeners) listener(exitCode, error);
    };
    const onMessage = (message: LaneReport | { type?: unknown; laneId?: unknown }) => {
      if (message?.type !== 'lane' || message.laneId !== laneId) return;
      const { event } = message as LaneReport;
      if (event.type === 'ready') {
        clearTimeout(timer);
        ready.resolve();
      } else if (event.type === 'failed') {
        ready.reject(new HornbillError(event.code as ErrorCode, event.message, { laneId }));
      } else {
        end(0, event.error === undefined ? undefined : new Error(event.error));
      }
    };
    const onExit = (exitCode: number) => end(exitCode, lastError);
    const onError = (error: Error) => {
      lastError = error;
    };
    const timer = setTimeout(
      () => ready.reject(new HornbillError('WORKER_FAILED', `lane ${laneId} did not start in time`)),
      startTimeoutMs,
    );
    ready.promise.catch(() => {});
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    worker.on('error', onError);
    worker.postMessage({ type: 'serve-lane', laneId, data } satisfies ServeLaneCommand);
    return {
      threadId: worker.threadId,
      ready: ready.promise,
      onEnd: (listener) => {
        endListeners.push(listener);
      },
      terminate: async () => {
        await worker.terminate();
      },
    };
  };
}
