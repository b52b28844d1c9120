/**
 * Subscriptions: `volumeChanged(name)` and `events(kind, name)`.
 *
 * volumeChanged watches Volume, Engine and Replica (store.watch, from the resourceVersion
 * of a list taken when the subscription starts) and sends one VolumeChange per change that
 * touches a volume: its state and robustness at that change (Volume events carry the
 * object as it was then, so transitions arrive in order), and through `volume` the
 * replicas with their modes and rebuild progress read afresh for each payload.
 *
 * Events are not a watchable kind, so one EventPoller per server reads listEvents every
 * EVENT_POLL_INTERVAL_MS while someone subscribes, and hands out what is new or counted
 * again. Each subscriber may fall at most MAX_PENDING_PAYLOADS behind; then its
 * subscription ends with GRAPHQL_LIMIT_REACHED.
 */
import { Repeater } from 'graphql-yoga';
import { HornbillError } from '../errors.ts';
import type { Kind, ResourceEvent, ResourceStore, Volume, WatchEventType } from '../resources/index.ts';
import { builder, EventRef, VolumeRef } from './builder.ts';
import { type GraphQLContext, RequestLoader } from './context.ts';
import { VolumeRobustnessEnum, VolumeStateEnum } from './types/volume.ts';

export const EVENT_POLL_INTERVAL_MS = 400;
/** Repeater's own bound on pushes waiting for a consumer. */
export const MAX_PENDING_PAYLOADS = 1024;
export const MAX_SUBSCRIPTIONS = 256;

interface VolumeChange {
  type: WatchEventType;
  kind: 'Volume' | 'Engine' | 'Replica';
  objectName: string;
  volumeName: string;
  volume: Volume | undefined;
}

/** Counts live subscriptions of one server, ends them on close. */
export class SubscriptionRegistry {
  private readonly stops = new Set<() => void>();
  closed = false;

  /** Registers a subscription; GRAPHQL_LIMIT_REACHED when MAX_SUBSCRIPTIONS are open. */
  add(stop: () => void): () => void {
    if (this.closed) throw new HornbillError('GRAPHQL_LIMIT_REACHED', 'the GraphQL server is closing');
    if (this.stops.size >= MAX_SUBSCRIPTIONS) {
      throw new HornbillError(
        'GRAPHQL_LIMIT_REACHED',
        `the server serves its maximum of ${MAX_SUBSCRIPTIONS} subscriptions`,
      );
    }
    this.stops.add(stop);
    return () => this.stops.delete(stop);
  }

  get size(): number {
    return this.stops.size;
  }

  closeAll(): void {
    this.closed = true;
    for (const stop of [...this.stops]) stop();
    this.stops.clear();
  }
}

function volumeNameOf(
  kind: VolumeChange['kind'],
  object: { metadata: { name: string }; spec: unknown },
): string {
  if (kind === 'Volume') return object.metadata.name;
  return (object.spec as { volumeName: string }).volumeName;
}

function overflow(): HornbillError {
  return new HornbillError(
    'GRAPHQL_LIMIT_REACHED',
    `the subscriber fell more than ${MAX_PENDING_PAYLOADS} changes behind; subscribe again`,
  );
}

/** Hands `value` to the subscriber, or ends the subscription when it fell too far behind. */
function deliver<T>(
  push: (value: T) => Promise<unknown>,
  stop: (error?: unknown) => unknown,
  value: T,
): void {
  try {
    push(value).catch(() => stop(overflow()));
  } catch {
    stop(overflow());
  }
}

export function volumeChanges(
  context: GraphQLContext,
  registry: SubscriptionRegistry,
  name: string | undefined,
): Repeater<VolumeChange> {
  const { store, namespace } = context;
  return new Repeater<VolumeChange>(async (push, stop) => {
    const unregister = registry.add(() => stop());
    const abort = new AbortController();
    try {
      const kinds = ['Volume', 'Engine', 'Replica'] as const;
      // The volumes as the Volume watch has seen them: an Engine or Replica change reports its
      // volume's state from here, so that states never go backwards across kinds.
      const volumes = new Map<string, Volume>();
      const volumeList = await store.list('Volume', { namespace });
      for (const volume of volumeList.items) volumes.set(volume.metadata.name, volume);
      const pump = async (kind: VolumeChange['kind']) => {
        const resourceVersion =
          kind === 'Volume'
            ? volumeList.resourceVersion
            : (await store.list(kind, { namespace })).resourceVersion;
        const watch = store.watch(kind as Kind, { namespace, resourceVersion, signal: abort.signal });
        try {
          for await (const event of watch) {
            const object = event.object as { metadata: { name: string }; spec: unknown };
            const volumeName = volumeNameOf(kind, object);
            if (kind === 'Volume') {
              if (event.type === 'DELETED') volumes.delete(volumeName);
              else volumes.set(volumeName, event.object as Volume);
            }
            if (name !== undefined && volumeName !== name) continue;
            deliver(push, stop, {
              type: event.type,
              kind,
              objectName: object.metadata.name,
              volumeName,
              volume: volumes.get(volumeName),
            });
          }
        } finally {
          watch.close();
        }
      };
      Promise.all(kinds.map(pump)).catch((error) => {
        if (!abort.signal.aborted) stop(error);
      });
      await stop;
    } finally {
      abort.abort();
      unregister();
    }
  });
}

/** One poll loop for every `events` subscriber of a server. */
export class EventPoller {
  private readonly subscribers = new Set<(event: ResourceEvent) => void>();
  private readonly seen = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private primed = false;
  private readonly store: ResourceStore;
  private readonly namespace: string;
  private readonly log: (record: Record<string, unknown>) => void;

  constructor(store: ResourceStore, namespace: string, log: (record: Record<string, unknown>) => void) {
    this.store = store;
    this.namespace = namespace;
    this.log = log;
  }

  /** Starts polling (and reads the current Events as already seen) before the first subscriber. */
  async subscribe(listener: (event: ResourceEvent) => void): Promise<() => void> {
    if (!this.primed) {
      await this.poll(false);
      this.primed = true;
    }
    this.subscribers.add(listener);
    this.timer ??= setInterval(() => void this.poll(true), EVENT_POLL_INTERVAL_MS);
    return () => {
      this.subscribers.delete(listener);
      if (this.subscribers.size === 0) this.stop();
    };
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.primed = false;
    this.seen.clear();
  }

  private polling = false;

  private async poll(deliver: boolean): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      const events = await this.store.listEvents({ namespace: this.namespace });
      const present = new Set<string>();
      for (const event of events) {
        const key = event.metadata.uid;
        const version = `${event.count}/${event.lastTimestamp}/${event.metadata.resourceVersion}`;
        present.add(key);
        if (this.seen.get(key) === version) continue;
        this.seen.set(key, version);
        if (deliver) for (const subscriber of this.subscribers) subscriber(event);
      }
      for (const key of this.seen.keys()) if (!present.has(key)) this.seen.delete(key);
    } catch (error) {
      this.log({
        level: 'warn',
        component: 'graphql',
        message: 'polling events failed',
        error: String(error),
      });
    } finally {
      this.polling = false;
    }
  }
}

export function eventStream(
  poller: EventPoller,
  registry: SubscriptionRegistry,
  filter: { kind?: string | null; name?: string | null },
): Repeater<ResourceEvent> {
  return new Repeater<ResourceEvent>(async (push, stop) => {
    const unregister = registry.add(() => stop());
    const unsubscribe = await poller.subscribe((event) => {
      if (filter.kind != null && event.involvedObject.kind !== filter.kind) return;
      if (filter.name != null && event.involvedObject.name !== filter.name) return;
      deliver(push, stop, event);
    });
    await stop;
    unsubscribe();
    unregister();
  });
}

const VolumeChangeRef = builder.objectRef<VolumeChange>('VolumeChange').implement({
  description: 'A change to a volume, its engine or one of its replicas.',
  fields: (t) => ({
    type: t.string({
      description: 'ADDED, MODIFIED or DELETED (of the changed object).',
      resolve: (change) => change.type,
    }),
    kind: t.string({
      description: 'Volume, Engine or Replica: what changed.',
      resolve: (change) => change.kind,
    }),
    objectName: t.exposeString('objectName'),
    volumeName: t.exposeString('volumeName'),
    state: t.field({
      type: VolumeStateEnum,
      nullable: true,
      resolve: (change) => change.volume?.status?.state,
    }),
    robustness: t.field({
      type: VolumeRobustnessEnum,
      nullable: true,
      resolve: (change) => change.volume?.status?.robustness,
    }),
    volume: t.field({
      type: VolumeRef,
      nullable: true,
      description: 'The volume at this change; null once it is deleted.',
      resolve: (change) => change.volume,
    }),
  }),
});

/** What the subscription resolvers need from the server (in the context). */
export interface SubscriptionServices {
  registry: SubscriptionRegistry;
  events: EventPoller;
}

builder.subscriptionType({
  fields: (t) => ({
    volumeChanged: t.field({
      type: VolumeChangeRef,
      description: 'Changes of one volume (or of every volume), its engine and replicas.',
      args: { name: t.arg.string() },
      subscribe: (_root, { name }, context) =>
        volumeChanges(context, context.services.registry, name ?? undefined),
      resolve: (change, _arguments, context) => {
        // Each payload reads the replicas and engine as they are now.
        context.loader = new RequestLoader(context.store, context.namespace);
        return change;
      },
    }),
    events: t.field({
      type: EventRef,
      description: 'New Events (and repeats), optionally only about one object.',
      args: { kind: t.arg.string(), name: t.arg.string() },
      subscribe: (_root, args, context) =>
        eventStream(context.services.events, context.services.registry, args),
      resolve: (event) => event,
    }),
  }),
});
