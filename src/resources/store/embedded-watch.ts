/**
 * A watch on the embedded store reads the change log in LMDB from its own cursor, a batch
 * at a time, and sleeps when it has caught up. It buffers at most one batch, so a slow
 * consumer costs no memory; if it falls so far behind that the log is compacted past its
 * cursor, the next read is RESOURCE_GONE and the consumer lists again.
 */
import { type LabelRequirement, matchesLabels } from '../labels.ts';
import type { ChangeRecord, StoredObject } from './embedded-database.ts';
import type { ResourceWatch, WatchEvent } from './types.ts';

/** Change-log entries read per batch. */
export const WATCH_BATCH = 256;

/** What a watch needs from its store. */
export interface ChangeSource {
  /** Entries after `revision` that are on disk (RESOURCE_GONE when compacted, RESOURCE_STORE_CLOSED when closed). */
  readChanges(after: number, limit: number): (ChangeRecord & { revision: number })[];
  /** Calls `wake` once when new durable changes arrive or the store closes; returns an unsubscribe. */
  subscribe(wake: () => void): () => void;
}

export interface WatchFilter {
  kind: string;
  namespace?: string;
  requirements: LabelRequirement[];
}

/** The event a consumer with `filter` sees for a change, if any (selector enter/leave included). */
export function eventFor(change: ChangeRecord, filter: WatchFilter): WatchEvent<StoredObject> | undefined {
  const { object } = change;
  if (object.kind !== filter.kind) return undefined;
  if (filter.namespace !== undefined && object.metadata.namespace !== filter.namespace) return undefined;
  const matchesNow = matchesLabels(filter.requirements, object.metadata.labels);
  if (change.type !== 'MODIFIED') return matchesNow ? { type: change.type, object } : undefined;
  const matchedBefore = matchesLabels(filter.requirements, change.previousLabels);
  if (matchesNow) return { type: matchedBefore ? 'MODIFIED' : 'ADDED', object };
  return matchedBefore ? { type: 'DELETED', object } : undefined;
}

/** Where a watch starts: its selector, the revision after which it reads, and the initial ADDED objects. */
export interface WatchStart {
  requirements: LabelRequirement[];
  after: number;
  initial: StoredObject[];
}

export class EmbeddedWatch implements ResourceWatch<StoredObject> {
  private readonly source: ChangeSource;
  private filter: WatchFilter;
  /** Settles when the start is known; its failure is raised by the first `next()`. */
  private started: Promise<WatchStart | Error> | undefined;
  private cursor = 0;
  private buffer: WatchEvent<StoredObject>[] = [];
  private closed = false;
  private wake: (() => void) | undefined;
  /** Removes the abort listener (a long-lived signal may serve many watches). */
  private detach: () => void = () => {};

  /** `start` runs at once; its errors (bad selector, RESOURCE_GONE) surface at the first `next()`. */
  constructor(
    source: ChangeSource,
    filter: Omit<WatchFilter, 'requirements'>,
    options: { start: () => Promise<WatchStart>; signal?: AbortSignal },
  ) {
    this.source = source;
    this.filter = { ...filter, requirements: [] };
    this.started = options.start().catch((error: Error) => error);
    const signal = options.signal;
    if (signal?.aborted) this.closed = true;
    else if (signal !== undefined) {
      const onAbort = () => this.close();
      signal.addEventListener('abort', onAbort, { once: true });
      this.detach = () => signal.removeEventListener('abort', onAbort);
    }
  }

  async next(): Promise<IteratorResult<WatchEvent<StoredObject>>> {
    if (this.started !== undefined) {
      const started = await this.started;
      this.started = undefined;
      if (started instanceof Error) throw started;
      if (this.closed) return { value: undefined, done: true };
      const { requirements, after, initial } = started;
      this.filter.requirements = requirements;
      this.cursor = after;
      this.buffer = initial.map((object) => ({ type: 'ADDED', object }));
    }
    for (;;) {
      const event = this.buffer.shift();
      if (event !== undefined) return { value: event, done: false };
      if (this.closed) return { value: undefined, done: true };
      const changes = this.source.readChanges(this.cursor, WATCH_BATCH);
      for (const change of changes) {
        this.cursor = change.revision;
        const visible = eventFor(change, this.filter);
        if (visible !== undefined) this.buffer.push(visible);
      }
      if (changes.length === 0) await this.sleep();
    }
  }

  private sleep(): Promise<void> {
    return new Promise((resolve) => {
      let unsubscribe = () => {};
      this.wake = () => {
        this.wake = undefined;
        unsubscribe();
        resolve();
      };
      unsubscribe = this.source.subscribe(this.wake);
    });
  }

  close(): void {
    this.closed = true;
    this.detach();
    this.buffer = [];
    this.wake?.();
  }

  async return(): Promise<IteratorResult<WatchEvent<StoredObject>>> {
    this.close();
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
