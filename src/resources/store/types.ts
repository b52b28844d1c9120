/**
 * ResourceStore: Kubernetes API semantics over Hornbill's kinds, with two backends — the
 * embedded LMDB store (`hornbill up`) and the Kubernetes API server. Controllers are written
 * against this interface only.
 *
 * ```ts
 * const { items, resourceVersion } = await store.list('Volume', { namespace });
 * for await (const event of store.watch('Volume', { namespace, resourceVersion })) enqueue(keyOf(event.object));
 * const volume = await store.get({ kind: 'Volume', namespace, name });
 * await store.updateStatus({ ...volume, status: { ...volume.status, state: 'detached' } });
 * ```
 *
 * Every error is a HornbillError: RESOURCE_NOT_FOUND, RESOURCE_ALREADY_EXISTS,
 * RESOURCE_CONFLICT (stale resourceVersion: read again, retry), RESOURCE_INVALID (bad
 * spec; details.field), RESOURCE_GONE (watch from a compacted resourceVersion: list again),
 * RESOURCE_STORE_CLOSED, INVALID_ARGUMENT (malformed selector or resourceVersion).
 */
import type { ObjectKey } from '../api.ts';
import type { LabelSelectorInput } from '../labels.ts';
import type { AnyResource, CreateInput, Kind, ResourceOf } from '../registry.ts';

export interface ListOptions {
  /** All namespaces when absent. */
  namespace?: string;
  labelSelector?: LabelSelectorInput;
}

export interface ResourceList<T> {
  items: T[];
  /** Watch from here to see every change after the list. */
  resourceVersion: string;
}

export interface WatchOptions extends ListOptions {
  /**
   * Events after this version. Absent: an ADDED event for every current object first
   * (Kubernetes' "get state and start at most recent").
   */
  resourceVersion?: string;
  /** Aborting ends the watch (the iteration finishes). */
  signal?: AbortSignal;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/**
 * One change, in resourceVersion order. With a label selector, an object that starts
 * matching arrives as ADDED and one that stops matching as DELETED.
 */
export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

/** Iterate with `for await`; `close()` (or breaking out of the loop) ends it. */
export interface ResourceWatch<T> extends AsyncIterableIterator<WatchEvent<T>> {
  close(): void;
}

/** How dependents (objects whose ownerReferences name the deleted object) are treated. */
export type PropagationPolicy = 'Background' | 'Foreground' | 'Orphan';

export interface DeleteOptions {
  /**
   * Background (default): the object goes at once (or when its finalizers are removed) and
   * its dependents are deleted after it. Foreground: the object stays, with deletionTimestamp
   * and the `foregroundDeletion` finalizer, until its dependents with blockOwnerDeletion are
   * gone. Orphan: dependents lose their owner reference and stay.
   */
  propagationPolicy?: PropagationPolicy;
  /** Delete only this incarnation, or only this version (RESOURCE_CONFLICT otherwise). */
  preconditions?: { uid?: string; resourceVersion?: string };
}

export interface DeleteResult<T> {
  /** False when finalizers (or foreground deletion) keep the object, now with deletionTimestamp. */
  removed: boolean;
  /** The object as it is now, or as it was when removed. */
  object: T;
}

export interface PatchOptions {
  /** `status`: the patch may change only status (the status subresource). */
  subresource?: 'status';
}

export type EventType = 'Normal' | 'Warning';

/** The object an Event is about (core/v1 ObjectReference). */
export interface InvolvedObject {
  apiVersion?: string;
  kind: string;
  namespace: string;
  name: string;
  uid?: string;
  resourceVersion?: string;
  fieldPath?: string;
}

export interface EventInput {
  involvedObject: InvolvedObject;
  type: EventType;
  /** UpperCamelCase: Attached, Degraded, FailedScheduling, … */
  reason: string;
  /** For people; longer messages are cut at MAX_EVENT_MESSAGE_LENGTH. */
  message: string;
  /** Who reports it: `hornbill-volume-controller`, … */
  component: string;
  /** Where the component runs (a node name). */
  host?: string;
}

/**
 * A core/v1 Event. Repeats of the same (object, type, reason, message, component) are one
 * Event whose count grows and whose lastTimestamp moves, as Kubernetes' event recorder does.
 */
export interface ResourceEvent {
  apiVersion: 'v1';
  kind: 'Event';
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
  };
  involvedObject: InvolvedObject;
  type: EventType;
  reason: string;
  message: string;
  source: { component: string; host?: string };
  reportingComponent: string;
  reportingInstance: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
}

export interface EventListOptions {
  namespace?: string;
  /** Only Events about this object (each given field must match). */
  involvedObject?: { kind?: string; name?: string; uid?: string };
}

export const MAX_EVENT_MESSAGE_LENGTH = 1024;
export const FOREGROUND_DELETION_FINALIZER = 'foregroundDeletion';

export interface ResourceStore {
  readonly backend: 'embedded' | 'kubernetes';
  /** RESOURCE_NOT_FOUND when absent. */
  get<K extends Kind>(key: ObjectKey<K>): Promise<ResourceOf<K>>;
  /** Sorted by namespace, then name. */
  list<K extends Kind>(kind: K, options?: ListOptions): Promise<ResourceList<ResourceOf<K>>>;
  /** Assigns uid, resourceVersion, generation 1 and creationTimestamp; status is dropped. */
  create<K extends Kind>(object: CreateInput<K>): Promise<ResourceOf<K>>;
  /**
   * Replaces metadata (labels, annotations, finalizers, ownerReferences) and spec; status
   * changes are ignored. metadata.resourceVersion is required and must be current.
   * A spec change bumps generation. Removing the last finalizer of an object being deleted
   * removes it.
   */
  update<T extends AnyResource>(object: T): Promise<T>;
  /** The status subresource: only status changes; generation stays. */
  updateStatus<T extends AnyResource>(object: T): Promise<T>;
  /** JSON merge patch; `metadata.resourceVersion` in the patch is a precondition. */
  patch<K extends Kind>(
    key: ObjectKey<K>,
    patch: Record<string, unknown>,
    options?: PatchOptions,
  ): Promise<ResourceOf<K>>;
  delete<K extends Kind>(key: ObjectKey<K>, options?: DeleteOptions): Promise<DeleteResult<ResourceOf<K>>>;
  watch<K extends Kind>(kind: K, options?: WatchOptions): ResourceWatch<ResourceOf<K>>;
  recordEvent(input: EventInput): Promise<ResourceEvent>;
  /** Oldest first (by lastTimestamp). */
  listEvents(options?: EventListOptions): Promise<ResourceEvent[]>;
  /** Ends every watch; later calls fail with RESOURCE_STORE_CLOSED. */
  close(): Promise<void>;
}
