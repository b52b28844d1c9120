/**
 * Entry point of an IoChannel worker thread. It receives the shared buffers and the URL of
 * the handler module in `workerData` and serves that one lane (lane-server.ts): it posts
 * `ready` (or `failed`), the only messages it ever posts, and ends when the frontend closes
 * the lane's request ring. Everything after start-up goes through shared memory.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serveLane, type WorkerStartData } from './lane-server.ts';

export type { WorkerMessage, WorkerStartData } from './lane-server.ts';

if (parentPort !== null) {
  const port = parentPort;
  // A rejection here (an assertion in the serve loop) ends the thread with an 'error' event;
  // the frontend then fails this lane's requests with WORKER_FAILED.
  await serveLane(workerData as WorkerStartData, (message) => port.postMessage(message));
}
