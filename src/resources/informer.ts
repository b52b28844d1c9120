/**
 * An informer: a local cache of one kind kept current by list + watch, for level-triggered
 * controllers. It works over any ResourceStore. When a watch reports RESOURCE_GONE (the
 * store compacted past it, like Kubernetes' 410 Gone) it lists again, and tells handlers
 * about every difference the re-list found — including objects deleted meanwhile. Other
 * failures are retried with exponential back-off.
 *
 * ```ts
 * const volumes = new Informer(store, 'Volume', { namespace });
 * volumes.addHandler({ added: enqueue, modified: enqueue, deleted: enqueue });
 * await volumes.start();               // resolves once the first list is in the cache
 * const volume = volumes.get(namespace, 'vol1');
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { isHornbillError } from '../errors.ts';
import { type Logger, silentLogger } from '../logging.ts';
import type { LabelSelectorInput } from './labels.ts';
import type { Kind, ResourceOf } from './registry.ts';
import type { ResourceStore, ResourceWatch, WatchEvent } from './store/types.ts';

export interface InformerHandler<T> {
  added?(object: T): void;
  modified?(object: T, previous: T): void;
  deleted?(object: T): void;
}

export interface InformerOptions {
  namespace?: string;
  labelSelector?: LabelSelectorInput;
  logger?: Logger;
  /** First back-off after a failure (default 200 ms); doubles up to maximumRetryDelayMs. */
  retryDelayMs?: number;
  /** Default 30 s. */
  maximumRetryDelayMs?: number;
}

export class Informer<K extends Kind> {
  private readonly store: ResourceStore;
  private readonly kind: K;
  private readonly options: InformerOptions;
  private readonly logger: Logger;
  private readonly cache = new Map<string, ResourceOf<K>>();
  private readonly handlers: InformerHandler<ResourceOf<K>>[] = [];
  private readonly stopping = new AbortController();
  private watch: ResourceWatch<ResourceOf<K>> | undefined;
  private running: Promise<void> | undefined;
  private synced = false;
  private lastResourceVersion: string | undefined;
  /** How many times the informer listed (the first list and every re-list). */
  listCount = 0;

  constructor(store: ResourceStore, kind: K, options: InformerOptions = {}) {
    this.store = store;
    this.kind = kind;
    this.options = options;
    this.logger = options.logger ?? silentLogger;
  }

  /** A handler added after the first list is told about every cached object as added. */
  addHandler(handler: InformerHandler<ResourceOf<K>>): void {
    this.handlers.push(handler);
    if (this.synced) for (const object of this.cache.values()) this.call(handler, 'added', object);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** The resourceVersion of the last list or event seen. */
  get resourceVersion(): string | undefined {
    return this.lastResourceVersion;
  }

  get(namespace: string, name: string): ResourceOf<K> | undefined {
    return this.cache.get(`${namespace}/${name}`);
  }

  list(): ResourceOf<K>[] {
    return [...this.cache.values()];
  }

  /** Starts listing and watching; resolves after the first list (rejects if stopped first). */
  start(): Promise<void> {
    if (this.running !== undefined) throw new Error('informer already started');
    return new Promise((resolve, reject) => {
      this.running = this.run(resolve).catch((error: unknown) => {
        this.logger('error', 'informer stopped on an unexpected error', {
          kind: this.kind,
          error: String(error),
        });
      });
      this.stopping.signal.addEventListener('abort', () => reject(new Error('informer stopped')), {
        once: true,
      });
    });
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    this.watch?.close();
    await this.running;
  }

  private async run(onSynced: () => void): Promise<void> {
    const initialDelay = this.options.retryDelayMs ?? 200;
    let delay = initialDelay;
    while (!this.stopping.signal.aborted) {
      try {
        const { namespace, labelSelector } = this.options;
        const listed = await this.store.list(this.kind, { namespace, labelSelector });
        this.listCount++;
        this.replace(listed.items);
        this.lastResourceVersion = listed.resourceVersion;
        this.synced = true;
        onSynced();
        delay = initialDelay;
        await this.watchFrom(listed.resourceVersion);
      } catch (error) {
        if (this.stopping.signal.aborted || isHornbillError(error, 'RESOURCE_STORE_CLOSED')) return;
        if (isHornbillError(error, 'RESOURCE_GONE')) {
          this.logger('debug', 'watch too old; listing again', { kind: this.kind });
          continue;
        }
        this.logger('warn', 'list or watch failed; retrying', {
          kind: this.kind,
          error: String(error),
          delay,
        });
        await sleep(delay, undefined, { signal: this.stopping.signal }).catch(() => {});
        delay = Math.min(delay * 2, this.options.maximumRetryDelayMs ?? 30_000);
      }
    }
  }

  /** Watches until stopped; a watch that ends by itself is opened again from the last version. */
  private async watchFrom(resourceVersion: string): Promise<void> {
    let version = resourceVersion;
    while (!this.stopping.signal.aborted) {
      this.watch = this.store.watch(this.kind, {
        namespace: this.options.namespace,
        labelSelector: this.options.labelSelector,
        resourceVersion: version,
        signal: this.stopping.signal,
      });
      for await (const event of this.watch) {
        this.apply(event);
        version = event.object.metadata.resourceVersion;
      }
    }
  }

  private keyOf(object: ResourceOf<K>): string {
    return `${object.metadata.namespace}/${object.metadata.name}`;
  }

  private apply(event: WatchEvent<ResourceOf<K>>): void {
    const key = this.keyOf(event.object);
    const previous = this.cache.get(key);
    this.lastResourceVersion = event.object.metadata.resourceVersion;
    if (event.type === 'DELETED') {
      this.cache.delete(key);
      this.notify('deleted', event.object);
      return;
    }
    this.cache.set(key, event.object);
    if (previous === undefined) this.notify('added', event.object);
    else this.notify('modified', event.object, previous);
  }

  /** Makes the cache equal to `items`, telling handlers about each difference. */
  private replace(items: ResourceOf<K>[]): void {
    const seen = new Set<string>();
    for (const item of items) {
      const key = this.keyOf(item);
      seen.add(key);
      const previous = this.cache.get(key);
      this.cache.set(key, item);
      if (previous === undefined) this.notify('added', item);
      else if (previous.metadata.resourceVersion !== item.metadata.resourceVersion)
        this.notify('modified', item, previous);
    }
    for (const [key, object] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.notify('deleted', object);
    }
  }

  private notify(
    type: keyof InformerHandler<ResourceOf<K>>,
    object: ResourceOf<K>,
    previous?: ResourceOf<K>,
  ): void {
    for (const handler of this.handlers) this.call(handler, type, object, previous);
  }

  private call(
    handler: InformerHandler<ResourceOf<K>>,
    type: keyof InformerHandler<ResourceOf<K>>,
    object: ResourceOf<K>,
    previous?: ResourceOf<K>,
  ): void {
    try {
      if (type === 'modified') handler.modified?.(object, previous as ResourceOf<K>);
      else handler[type]?.(object);
    } catch (error) {
      this.logger('error', 'informer handler threw', { kind: this.kind, type, error: String(error) });
    }
  }
}
