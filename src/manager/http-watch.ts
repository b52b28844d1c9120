/**
 * The client side of a watch on the manager's HTTP API: one streaming GET whose body is
 * newline-delimited JSON events. The request starts when the watch is made (as the
 * embedded store's watch takes its starting point at once); events are parsed as they
 * arrive and buffered up to `MAX_BUFFERED_EVENTS`, beyond which the socket is paused, so a
 * slow consumer slows the server (TCP back-pressure) instead of growing memory.
 *
 * An `ERROR` line becomes the HornbillError it carries (RESOURCE_GONE: list again), thrown
 * by `next()` after the events before it; a broken connection is MANAGER_UNREACHABLE; a
 * stream the server ends cleanly (shutdown) ends the iteration, as a Kubernetes watch
 * does at its timeout — the Informer then watches again from its last resourceVersion.
 */
import type http from 'node:http';
import { fromWire, HornbillError, type WireError } from '../errors.ts';
import type { ResourceWatch, WatchEvent } from '../resources/store/types.ts';

export const MAX_BUFFERED_EVENTS = 1024;
/** A line longer than this is not an event the server sends. */
export const MAX_EVENT_LINE_BYTES = 8 * 1024 * 1024;
const EVENT_TYPES = new Set(['ADDED', 'MODIFIED', 'DELETED']);

/** Opens the streaming request; resolves with the response once its headers are in. */
export type WatchRequester = (abort: AbortSignal) => Promise<http.IncomingMessage>;

export class HttpWatch<T> implements ResourceWatch<T> {
  private readonly buffer: WatchEvent<T>[] = [];
  private failure: Error | undefined;
  private ended = false;
  private closed = false;
  private response: http.IncomingMessage | undefined;
  private readonly abort = new AbortController();
  private waiter: (() => void) | undefined;
  private partial = '';
  private readonly onClose: () => void;

  constructor(
    open: WatchRequester,
    options: { signal?: AbortSignal; onClose?: () => void; startError?: Error } = {},
  ) {
    this.onClose = options.onClose ?? (() => {});
    const signal = options.signal;
    if (options.startError !== undefined) {
      this.fail(options.startError);
      return;
    }
    if (signal?.aborted) {
      this.closed = true;
      return;
    }
    signal?.addEventListener('abort', () => this.close(), { once: true, signal: this.abort.signal });
    open(this.abort.signal).then(
      (response) => this.attach(response),
      (error: Error) => this.fail(error),
    );
  }

  private attach(response: http.IncomingMessage): void {
    this.response = response;
    if (this.closed) {
      response.destroy();
      return;
    }
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => this.receive(chunk));
    response.on('end', () => {
      if (this.partial.trim() !== '') this.parseLine(this.partial);
      this.partial = '';
      this.ended = true;
      this.wake();
    });
    response.on('error', (error) => this.fail(unreachable(error)));
    response.on('close', () => {
      if (!response.complete && !this.closed) this.fail(unreachable(new Error('the watch stream broke')));
    });
  }

  private receive(chunk: string): void {
    this.partial += chunk;
    let newline = this.partial.indexOf('\n');
    while (newline >= 0) {
      const line = this.partial.slice(0, newline);
      this.partial = this.partial.slice(newline + 1);
      if (line.trim() !== '') this.parseLine(line);
      newline = this.partial.indexOf('\n');
    }
    if (this.partial.length > MAX_EVENT_LINE_BYTES) {
      this.fail(badResponse(`a watch line is longer than ${MAX_EVENT_LINE_BYTES} bytes`));
      this.response?.destroy();
    }
    if (this.buffer.length >= MAX_BUFFERED_EVENTS) this.response?.pause();
    this.wake();
  }

  private parseLine(line: string): void {
    if (this.failure !== undefined) return;
    let event: { type?: unknown; object?: unknown };
    try {
      event = JSON.parse(line);
    } catch {
      this.fail(badResponse(`a watch line is not JSON: ${line.slice(0, 120)}`));
      return;
    }
    if (event.type === 'ERROR' && typeof event.object === 'object' && event.object !== null) {
      this.fail(fromWire(event.object as WireError));
      return;
    }
    if (typeof event.type !== 'string' || !EVENT_TYPES.has(event.type) || typeof event.object !== 'object') {
      this.fail(badResponse(`a watch line is not an event: ${line.slice(0, 120)}`));
      return;
    }
    this.buffer.push(event as WatchEvent<T>);
  }

  private fail(error: Error): void {
    if (this.failure === undefined && !this.closed) this.failure = error;
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }

  async next(): Promise<IteratorResult<WatchEvent<T>>> {
    for (;;) {
      if (this.closed) return { value: undefined, done: true };
      const event = this.buffer.shift();
      if (event !== undefined) {
        if (this.buffer.length < MAX_BUFFERED_EVENTS / 2 && this.response?.isPaused()) this.response.resume();
        return { value: event, done: false };
      }
      if (this.failure !== undefined) {
        const failure = this.failure;
        this.close();
        throw failure;
      }
      if (this.ended) {
        this.close();
        return { value: undefined, done: true };
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  async return(): Promise<IteratorResult<WatchEvent<T>>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.buffer.length = 0;
    this.abort.abort();
    this.response?.destroy();
    this.onClose();
    this.wake();
  }
}

export function unreachable(error: Error): HornbillError {
  return new HornbillError('MANAGER_UNREACHABLE', `the manager cannot be reached: ${error.message}`, {
    errno: (error as NodeJS.ErrnoException).code,
  });
}

export function badResponse(message: string): HornbillError {
  return new HornbillError('MANAGER_BAD_RESPONSE', message);
}
