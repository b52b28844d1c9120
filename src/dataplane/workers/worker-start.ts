import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type ErrorCode, HornbillError } from '../../errors.ts';
import type { WorkerMessage, WorkerStartData } from './worker-entry.ts';

const WORKER_ENTRY_URL = new URL('./worker-entry.ts', import.meta.url);

/**
 * Starts one worker thread on worker-entry.ts. `ready` resolves once the worker has loaded
 * its handler; it rejects with the worker's coded error (WORKER_HANDLER_INVALID, ...), or
 * WORKER_FAILED if the thread exits first or takes longer than `startTimeoutMs` (then it
 * is terminated). The caller attaches its own 'error' and 'exit' listeners to `worker`.
 */
export function startWorker(
  data: WorkerStartData,
  startTimeoutMs: number,
): { worker: Worker; ready: Promise<void> } {
  const worker = new Worker(WORKER_ENTRY_URL, { workerData: data, name: `hornbill-io-${data.workerIndex}` });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new HornbillError('WORKER_FAILED', `worker ${data.workerIndex} did not start in time`));
      void worker.terminate();
    }, startTimeoutMs);
    worker.once('message', (message: WorkerMessage) => {
      clearTimeout(timer);
      if (message.type === 'ready') resolve();
      else
        reject(
          new HornbillError(message.code as ErrorCode, message.message, { workerIndex: data.workerIndex }),
        );
    });
    worker.once('exit', (exitCode) => {
      clearTimeout(timer);
      reject(
        new HornbillError('WORKER_FAILED', `worker ${data.workerIndex} exited while starting`, { exitCode }),
      );
    });
  });
  return { worker, ready };
}

/** A handler module reference as the URL string that `import()` takes in every thread. */
export function toModuleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith('file:')) return module;
  if (path.isAbsolute(module)) return pathToFileURL(module).href;
  throw new HornbillError('INVALID_ARGUMENT', 'handlerModule must be an absolute path or a file: URL', {
    module,
  });
}
