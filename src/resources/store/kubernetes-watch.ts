/**
 * A ResourceWatch over the API server's watch stream. One watch is a series of HTTP watch
 * requests, each from the last resourceVersion seen (an event's, or a BOOKMARK's): the API
 * server ends every request after `timeoutSeconds` and client-node's Watch aborts a stream
 * idle for 30 s, and both simply continue from the cursor, so the consumer sees one unbroken,
 * ordered stream. What cannot continue ends the iteration with an error: RESOURCE_GONE for
 * a resourceVersion the server no longer keeps (410 Gone, as an HTTP status or an ERROR
 * event; the Informer lists again), or the mapped HTTP or network failure.
 *
 * Buffering is bounded: events wait in a queue of at most `maxBufferedEvents`; a consumer
 * that falls further behind gets RESOURCE_GONE (list again) instead of unbounded memory.
 */
import { HornbillError } from '../../errors.ts';
import { fromKubernetesError, fromKubernetesStatus, type KubernetesStatus } from './kubernetes-errors.ts';
import type { ResourceWatch, WatchEvent, WatchEventType } from './types.ts';

export const DEFAULT_MAX_BUFFERED_EVENTS = 10_000;
/** A request that ends sooner than this without an event waits this long before the next. */
export const RECONNECT_DELAY_MS = 1_000;

/** One open watch request; `abort()` ends it (its `done` then fires, and is ignored). */
export interface WatchConnection {
  abort(): void;
}

/**
 * Opens one watch request from `resourceVersion`. `onEvent` gets each line's type and object;
 * `onDone` fires once when the request ends: null when the server closed it, else the error.
 */
export type WatchConnector = (
  resourceVersion: string,
  onEvent: (type: string, object: unknown) => void,
  onDone: (error: unknown) => void,
) => Promise<WatchConnection>;

/** Where a watch starts: after `resourceVersion`, with `initial` objects delivered as ADDED first. */
export interface WatchStart<T> {
  resourceVersion: string;
  initial: T[];
}

export interface KubernetesWatchOptions<T> {
  connect: WatchConnector;
  /** Runs at once; its failure (bad selector, a failed list) is raised by the first `next()`. */
  start: () => Promise<WatchStart<T>>;
  normalize: (raw: unknown) => T;
  resourceVersionOf: (object: T) => string;
  /** For error messages. */
  kind: string;
  namespace?: string;
  signal?: AbortSignal;
  maxBufferedEvents?: number;
  /** Milliseconds (default Date.now), for the reconnect pacing. */
  clock?: () => number;
  /** Called once when the watch ends, whatever the reason. */
  onEnd?: () => void;
}

const EVENT_TYPES = new Set<string>(['ADDED', 'MODIFIED', 'DELETED']);

export class KubernetesWatch<T> implements ResourceWatch<T> {
  private readonly options: KubernetesWatchOptions<T>;
  private readonly maxBuffered: number;
  private readonly clock: () => number;
  private started: Promise<WatchStart<T> | HornbillError> | undefined;
  private cursor = '';
  private buffer: WatchEvent<T>[] = [];
  private failure: HornbillError | undefined;
  private closed = false;
  /** The open request, or a promise of it while it opens. */
  private connection: Promise<WatchConnection> | undefined;
  /** When the last request was opened; undefined before the first. */
  private connectedAt: number | undefined;
  private eventsThisConnection = 0;
  private wake: (() => void) | undefined;
  private detach: () => void = () => {};

  constructor(options: KubernetesWatchOptions<T>) {
    this.options = options;
    this.maxBuffered = Math.max(1, options.maxBufferedEvents ?? DEFAULT_MAX_BUFFERED_EVENTS);
    this.clock = options.clock ?? Date.now;
    this.started = options
      .start()
      .catch((error: unknown) =>
        fromKubernetesError(error, { operation: 'watch', kind: options.kind, namespace: options.namespace }),
      );
    const signal = options.signal;
    if (signal?.aborted) this.close();
    else if (signal !== undefined) {
      const onAbort = () => this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      this.detach = () => signal.removeEventListener('abort', onAbort);
    }
  }

  /** The resourceVersion the next request would start from. */
  get resourceVersion(): string {
    return this.cursor;
  }

  async next(): Promise<IteratorResult<WatchEvent<T>>> {
    if (this.started !== undefined) {
      const started = await this.started;
      this.started = undefined;
      if (this.closed) return { value: undefined, done: true };
      if (started instanceof HornbillError) {
        this.close();
        throw started;
      }
      this.cursor = started.resourceVersion;
      this.buffer = started.initial.map((object) => ({ type: 'ADDED', object }));
    }
    for (;;) {
      const event = this.buffer.shift();
      if (event !== undefined) return { value: event, done: false };
      if (this.failure !== undefined) {
        const failure = this.failure;
        this.failure = undefined;
        this.close();
        throw failure;
      }
      if (this.closed) return { value: undefined, done: true };
      if (this.connection === undefined) await this.connect();
      else await this.sleep();
    }
  }

  private async connect(): Promise<void> {
    const previousLasted =
      this.connectedAt === undefined ? Number.POSITIVE_INFINITY : this.clock() - this.connectedAt;
    if (this.eventsThisConnection === 0 && previousLasted < RECONNECT_DELAY_MS) {
      // The server ended the last request at once: do not spin.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RECONNECT_DELAY_MS);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
      if (this.closed) return;
    }
    this.connectedAt = this.clock();
    this.eventsThisConnection = 0;
    let ended = false;
    const onDone = (error: unknown) => {
      if (ended) return;
      ended = true;
      this.connection = undefined;
      if (!this.closed && error !== null && error !== undefined && !isIdleTimeout(error)) {
        this.fail(
          fromKubernetesError(error, {
            operation: 'watch',
            kind: this.options.kind,
            namespace: this.options.namespace,
          }),
        );
      }
      this.notify();
    };
    const onEvent = (type: string, object: unknown) => {
      if (ended || this.closed) return;
      this.receive(type, object);
    };
    const opening = this.options.connect(this.cursor, onEvent, onDone).catch((error: unknown) => {
      onDone(error);
      return { abort() {} };
    });
    if (!ended) this.connection = opening;
    const connection = await opening;
    if (this.closed || ended) connection.abort();
  }

  private receive(type: string, object: unknown): void {
    this.eventsThisConnection++;
    const version = resourceVersionOfRaw(object);
    if (type === 'BOOKMARK') {
      if (version !== undefined) this.cursor = version;
      return;
    }
    if (type === 'ERROR') {
      this.fail(
        fromKubernetesStatus((object ?? {}) as KubernetesStatus, {
          operation: 'watch',
          kind: this.options.kind,
          namespace: this.options.namespace,
        }),
      );
      return;
    }
    if (!EVENT_TYPES.has(type)) return;
    if (this.buffer.length >= this.maxBuffered) {
      this.fail(
        new HornbillError(
          'RESOURCE_GONE',
          `watch ${this.options.kind}: the consumer fell ${this.maxBuffered} events behind; list again`,
          { kind: this.options.kind, namespace: this.options.namespace, resourceVersion: this.cursor },
        ),
      );
      return;
    }
    const normalized = this.options.normalize(object);
    this.buffer.push({ type: type as WatchEventType, object: normalized });
    this.cursor = version ?? this.options.resourceVersionOf(normalized);
    this.notify();
  }

  /** Ends the stream with `error` after the events already received. */
  private fail(error: HornbillError): void {
    if (this.failure === undefined) this.failure = error;
    void this.connection?.then((connection) => connection.abort());
    this.notify();
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
    });
  }

  private notify(): void {
    this.wake?.();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.detach();
    this.buffer = [];
    void this.connection?.then((connection) => connection.abort());
    this.notify();
    this.options.onEnd?.();
  }

  async return(): Promise<IteratorResult<WatchEvent<T>>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** client-node's Watch aborts a stream with no data for 30 s with a TimeoutError: continue. */
function isIdleTimeout(error: unknown): boolean {
  return error instanceof Error && error.name === 'TimeoutError' && httpStatus(error) === undefined;
}

function httpStatus(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' ? status : undefined;
}

function resourceVersionOfRaw(object: unknown): string | undefined {
  const version = (object as { metadata?: { resourceVersion?: unknown } } | null)?.metadata?.resourceVersion;
  return typeof version === 'string' && version !== '' ? version : undefined;
}
