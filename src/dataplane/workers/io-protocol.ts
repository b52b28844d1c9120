import { type ErrorCode, ErrorCodes, HornbillError, isHornbillError } from '../../errors.ts';
import type { PayloadSlab } from './payload-slab.ts';

/**
 * What travels through an IoChannel's rings, and the contract of the pluggable handler that
 * serves requests in a worker (or inline on the frontend thread when the worker count is 0).
 *
 * Request descriptor: 8 32-bit fields.
 */
export const kRequestTagField = 0; // the channel's in-flight slot for this request
export const kRequestOperationField = 1; // opaque to the channel: the handler's op code
export const kRequestOffsetLowField = 2; // offset in bytes, low 32 bits
export const kRequestOffsetHighField = 3; // offset in bytes, high 21 bits (offsets < 2^53)
export const kRequestLengthField = 4; // bytes, 0 to 2^31-1
export const kRequestChunkField = 5; // first payload chunk in the slab, -1: no payload
export const kRequestIdField = 6; // the caller's request id, echoed in the completion
export const kRequestFlagsField = 7; // opaque to the channel (FUA, replica index, ...)
export const REQUEST_DESCRIPTOR_WORDS = 8;

/** Completion descriptor: 4 32-bit fields. */
export const kCompletionTagField = 0;
export const kCompletionStatusField = 1; // STATUS_OK or STATUS_FAILED
export const kCompletionErrorCodeField = 2; // index into ERROR_CODE_LIST, -1 when ok
export const kCompletionValueField = 3; // the handler's int32 result (bytes, a counter, ...)
export const COMPLETION_DESCRIPTOR_WORDS = 4;

export const STATUS_OK = 0;
export const STATUS_FAILED = 1;

/**
 * Suggested operation codes. The channel never interprets `operation`; the lead's engine
 * handler may define its own (rebuild copy, checksum, ...).
 */
export const IoOperation = { read: 1, write: 2, unmap: 3, flush: 4 } as const;

/**
 * Error codes cross the ring as their index in the registry's key order. Every thread loads
 * the same src/errors.ts, so the indexes agree. Messages and details do not cross: a
 * completion is a fixed-size slot; the frontend re-creates a HornbillError from the code.
 */
export const ERROR_CODE_LIST = Object.keys(ErrorCodes) as ErrorCode[];
const errorCodeIndexes = new Map<string, number>(ERROR_CODE_LIST.map((code, index) => [code, index]));

export function errorCodeIndex(code: ErrorCode): number {
  return errorCodeIndexes.get(code) ?? errorCodeIndexes.get('INTERNAL')!;
}

/** The code for an index read from a completion; an out-of-range index means INTERNAL. */
export function errorCodeAt(index: number): ErrorCode {
  return ERROR_CODE_LIST[index] ?? 'INTERNAL';
}

/** The code a thrown value travels as: a HornbillError's own code, anything else INTERNAL. */
export function codeOfThrown(error: unknown): ErrorCode {
  return isHornbillError(error) ? error.code : 'INTERNAL';
}

export function failureFor(code: ErrorCode, requestId: number, workerIndex?: number): HornbillError {
  return new HornbillError(code, `request ${requestId} failed: ${ErrorCodes[code]}`, {
    requestId,
    workerIndex,
  });
}

/** The fields of one request as the caller fills them in (one object per caller, reused). */
export interface IoRequestFields {
  operation: number;
  offsetBytes: number;
  lengthBytes: number;
  /** First slab chunk of the payload (tryAllocate), or -1. The caller owns and frees it. */
  chunkIndex: number;
  requestId: number;
  flags: number;
}

/**
 * The request as a handler sees it. The server owns a bounded pool of these (one per ring
 * slot) and reuses them: a handler may keep the object until its returned promise settles,
 * never longer.
 */
export class IoRequest implements IoRequestFields {
  operation = 0;
  offsetBytes = 0;
  lengthBytes = 0;
  chunkIndex = -1;
  requestId = 0;
  flags = 0;
  /** The channel's in-flight slot; the handler has no use for it. */
  tag = 0;
  readonly slab: PayloadSlab;
  /** Bound once per pooled request, so a promise result costs no new closure. */
  onFulfilled: (value: unknown) => void = () => {};
  onRejected: (error: unknown) => void = () => {};

  constructor(slab: PayloadSlab) {
    this.slab = slab;
  }

  /** Zero-copy view of the first payload chunk (the whole chunk; the payload is its first lengthBytes). */
  payload(): Buffer {
    return this.slab.chunkBytes(this.chunkIndex);
  }
}

export interface IoHandlerContext {
  /** 0..workerCount-1, or 0 inline. */
  workerIndex: number;
  /** True when the handler runs on the frontend thread (worker count 0). */
  inline: boolean;
  slab: PayloadSlab;
  /** `IoChannelOptions.handlerData`, structured-cloned into each worker (SharedArrayBuffers stay shared). */
  handlerData: unknown;
}

export interface IoHandler {
  /**
   * Serves one request. Returns (or resolves to) an int32 value for the completion, or
   * nothing (0). A throw or rejection completes the request with the error's code (a
   * HornbillError's code, INTERNAL for anything else). Requests of one worker may be in the
   * handler concurrently (up to the ring capacity) when it returns promises.
   */
  handle(request: IoRequest): number | undefined | Promise<number | undefined>;
  /** Releases what the handler holds (sockets, files) when the channel stops the worker. */
  close?(): void | Promise<void>;
  /**
   * True if the worker may block in Atomics.wait while it has nothing to do: only for
   * handlers that need no event loop between requests (synchronous stores, checksums).
   * Otherwise the worker waits with Atomics.waitAsync and keeps its event loop running.
   */
  blocksWhenIdle?: boolean;
}

/** What a handler module exports: `export function createHandler(context) { ... }`. */
export interface IoHandlerModule {
  createHandler(context: IoHandlerContext): IoHandler | Promise<IoHandler>;
}

/** Loads a handler module and creates its handler (WORKER_HANDLER_INVALID when it cannot). */
export async function loadHandler(moduleUrl: string, context: IoHandlerContext): Promise<IoHandler> {
  let loaded: Partial<IoHandlerModule>;
  try {
    loaded = (await import(moduleUrl)) as Partial<IoHandlerModule>;
  } catch (error) {
    throw new HornbillError(
      'WORKER_HANDLER_INVALID',
      `cannot load handler module ${moduleUrl}`,
      {},
      { cause: error },
    );
  }
  if (typeof loaded.createHandler !== 'function') {
    throw new HornbillError('WORKER_HANDLER_INVALID', `${moduleUrl} does not export createHandler`);
  }
  const handler = await loaded.createHandler(context);
  if (handler === null || typeof handler !== 'object' || typeof handler.handle !== 'function') {
    throw new HornbillError('WORKER_HANDLER_INVALID', `createHandler of ${moduleUrl} returned no handle()`);
  }
  return handler;
}
