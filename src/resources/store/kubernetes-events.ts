import type { ConfigurationOptions, CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { isHornbillError } from '../../errors.ts';
import { admitEvent } from './embedded-events.ts';
import type { RequestDescription } from './kubernetes-errors.ts';
import {
  eventCorrelationKey,
  eventFieldSelector,
  LIST_PAGE_SIZE,
  MAX_LIST_PAGES,
  MERGE_PATCH_CONTENT_TYPE,
  newEventBody,
  normalizeEvent,
  repeatEventPatch,
  sortEvents,
  WRITE_ATTEMPTS,
} from './kubernetes-requests.ts';
import type { EventInput, EventListOptions, ResourceEvent } from './types.ts';

/** Events whose count this process remembers (to skip a read on a repeat). */
const EVENT_CACHE_LIMIT = 4_096;

interface CachedEvent {
  name: string;
  namespace: string;
  count: number;
  resourceVersion: string;
}

/** What the Events part needs of the store: the core API, its request runner and clock. */
export interface KubernetesEventsOptions {
  core: CoreV1Api;
  /** Runs one request; every failure becomes a HornbillError (KubernetesResourceStore.call). */
  call<T>(request: RequestDescription, send: () => Promise<T>): Promise<T>;
  requestOptions(contentType?: string): ConfigurationOptions;
  clock: () => number;
}

/** The core/v1 Events of the Kubernetes resource store (recordEvent, listEvents). */
export class KubernetesEvents {
  private readonly options: KubernetesEventsOptions;
  private readonly events = new Map<string, CachedEvent>();

  constructor(options: KubernetesEventsOptions) {
    this.options = options;
  }

  /**
   * Writes a core/v1 Event. Repeats (same object, type, reason, message, component, host)
   * are one Event, named from their correlation key, whose count grows and whose
   * lastTimestamp moves; each repeat is a merge patch made conditional on the
   * resourceVersion last seen, so concurrent writers never lose a count.
   */
  async record(input: EventInput): Promise<ResourceEvent> {
    admitEvent(input);
    const key = eventCorrelationKey(input);
    const body = newEventBody(input, this.options.clock());
    const name = (body.metadata as { name: string }).name;
    const namespace = input.involvedObject.namespace;
    const request = { operation: 'recordEvent', kind: 'Event', namespace, name };
    for (let attempt = 1; ; attempt++) {
      const known = this.events.get(key);
      try {
        const raw =
          known === undefined
            ? await this.options.call(request, () =>
                this.options.core.createNamespacedEvent(
                  { namespace, body: body as unknown as CoreV1Event },
                  this.options.requestOptions(),
                ),
              )
            : await this.options.call(request, () =>
                this.options.core.patchNamespacedEvent(
                  {
                    namespace,
                    name,
                    body: repeatEventPatch(known.count, known.resourceVersion, this.options.clock()),
                  },
                  this.options.requestOptions(MERGE_PATCH_CONTENT_TYPE),
                ),
              );
        return this.rememberEvent(key, normalizeEvent(raw));
      } catch (error) {
        if (attempt >= WRITE_ATTEMPTS) throw error;
        if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) {
          this.events.delete(key); // expired (the API server keeps Events for an hour): create it again
        } else if (
          isHornbillError(error, 'RESOURCE_ALREADY_EXISTS') ||
          isHornbillError(error, 'RESOURCE_CONFLICT')
        ) {
          const current = await this.options.call(request, () =>
            this.options.core.readNamespacedEvent({ namespace, name }, this.options.requestOptions()),
          );
          this.rememberEvent(key, normalizeEvent(current));
        } else {
          throw error;
        }
      }
    }
  }

  private rememberEvent(key: string, event: ResourceEvent): ResourceEvent {
    this.events.delete(key);
    this.events.set(key, {
      name: event.metadata.name,
      namespace: event.metadata.namespace,
      count: event.count,
      resourceVersion: event.metadata.resourceVersion,
    });
    if (this.events.size > EVENT_CACHE_LIMIT) {
      const oldest = this.events.keys().next().value;
      if (oldest !== undefined) this.events.delete(oldest);
    }
    return event;
  }

  async list(options: EventListOptions = {}): Promise<ResourceEvent[]> {
    const fieldSelector = eventFieldSelector(options);
    const namespace = options.namespace;
    const events: ResourceEvent[] = [];
    let continueToken: string | undefined;
    for (let page = 0; page < MAX_LIST_PAGES; page++) {
      const query = { fieldSelector, limit: LIST_PAGE_SIZE, _continue: continueToken };
      const list = await this.options.call({ operation: 'listEvents', kind: 'Event', namespace }, () =>
        namespace === undefined
          ? this.options.core.listEventForAllNamespaces(query, this.options.requestOptions())
          : this.options.core.listNamespacedEvent({ ...query, namespace }, this.options.requestOptions()),
      );
      for (const item of list.items ?? []) events.push(normalizeEvent(item));
      continueToken = list.metadata?._continue;
      if (continueToken === undefined || continueToken === '') break;
    }
    return sortEvents(events);
  }
}
