/**
 * Shared-memory transport between the frontend thread and the data-plane workers
 * (docs/worker-rings.md): RingQueue (bounded MPMC descriptor queue), PayloadSlab (shared
 * payload chunks), IoChannel (request/completion lanes to a worker pool, or inline).
 */
export { Doorbell } from './doorbell.ts';
export {
  DEFAULT_RING_CAPACITY,
  IoChannel,
  type IoChannelOptions,
  WORKER_COUNT_MAX,
  type WorkerExitEvent,
  type WorkerState,
} from './io-channel.ts';
export {
  ERROR_CODE_LIST,
  errorCodeAt,
  errorCodeIndex,
  type IoHandler,
  type IoHandlerContext,
  type IoHandlerModule,
  IoOperation,
  IoRequest,
  type IoRequestFields,
} from './io-protocol.ts';
export { PayloadSlab, type PayloadSlabOptions } from './payload-slab.ts';
export { RingQueue, type RingQueueOptions } from './ring-queue.ts';
