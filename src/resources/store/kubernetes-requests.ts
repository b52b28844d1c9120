/**
 * The pure half of the Kubernetes backend: where each kind lives in the API (group, version,
 * plural, paths), the query strings (label and field selectors), the request bodies (delete
 * options, merge patches, Events), and how an object the API server returns is reduced to
 * the shape the embedded store returns (no managedFields, no empty collections), so that
 * both backends hand controllers equal objects. Nothing here does I/O.
 */
import { createHash } from 'node:crypto';
import { API_GROUP, API_GROUP_VERSION, API_VERSION, formatTimestamp, type ObjectMeta } from '../api.ts';
import { createMergePatch, isPlainObject, type JsonObject } from '../json.ts';
import { formatLabelSelector, type LabelSelectorInput, toLabelRequirements } from '../labels.ts';
import { qualifiedNameProblem } from '../names.ts';
import { KIND_DEFINITIONS, type Kind } from '../registry.ts';
import {
  type DeleteOptions,
  type EventInput,
  type EventListOptions,
  type EventType,
  MAX_EVENT_MESSAGE_LENGTH,
  type ResourceEvent,
} from './types.ts';

/** Content type of a JSON merge patch (RFC 7386), which the API server takes for custom resources. */
export const MERGE_PATCH_CONTENT_TYPE = 'application/merge-patch+json';
/** Items per page of a list (the API server's continue tokens carry on from there). */
export const LIST_PAGE_SIZE = 500;
/** A list stops with an error beyond this many pages (LIST_PAGE_SIZE each). */
export const MAX_LIST_PAGES = 2_000;
/** Read-modify-write rounds of patch, delete and recordEvent when their own precondition fails. */
export const WRITE_ATTEMPTS = 5;
/** Name every write is recorded under in managedFields. */
export const DEFAULT_FIELD_MANAGER = 'hornbill';

/** Where a kind's objects live: `/apis/{group}/{version}/namespaces/{namespace}/{plural}`. */
export interface ResourceLocation {
  group: string;
  version: string;
  plural: string;
}

export function locationOf(kind: Kind): ResourceLocation {
  return { group: API_GROUP, version: API_VERSION, plural: KIND_DEFINITIONS[kind].plural };
}

/** The collection path (for a watch): one namespace, or all of them when absent. */
export function collectionPath(kind: Kind, namespace?: string): string {
  const { group, version, plural } = locationOf(kind);
  const scope = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  return `/apis/${group}/${version}${scope}/${plural}`;
}

/** The path of one object, or of its status subresource. */
export function objectPath(kind: Kind, namespace: string, name: string, subresource?: 'status'): string {
  const path = `${collectionPath(kind, namespace)}/${encodeURIComponent(name)}`;
  return subresource === undefined ? path : `${path}/${subresource}`;
}

/**
 * The `labelSelector` query value for a selector in either form, or undefined for none.
 * Parsed first, so that a malformed selector is INVALID_ARGUMENT here, as on the embedded
 * store, instead of a 400 from the server.
 */
export function labelSelectorQuery(selector: LabelSelectorInput | undefined): string | undefined {
  const requirements = toLabelRequirements(selector);
  return requirements.length === 0 ? undefined : formatLabelSelector(requirements);
}

/** Escapes a field selector value (fields.EscapeValue): `\`, `,` and `=` are backslash-escaped. */
export function escapeFieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (character) => `\\${character}`);
}

/** The `fieldSelector` of listEvents: `involvedObject.kind=Volume,involvedObject.name=vol1`. */
export function eventFieldSelector(options: EventListOptions): string | undefined {
  const filter = options.involvedObject ?? {};
  const parts: string[] = [];
  for (const field of ['kind', 'name', 'uid'] as const) {
    const value = filter[field];
    if (value !== undefined) parts.push(`involvedObject.${field}=${escapeFieldValue(value)}`);
  }
  return parts.length === 0 ? undefined : parts.join(',');
}

/** metav1.DeleteOptions, the body of a delete. */
export interface DeleteOptionsBody {
  apiVersion: 'v1';
  kind: 'DeleteOptions';
  propagationPolicy?: string;
  preconditions?: { uid?: string; resourceVersion?: string };
}

/** The body of a delete; `uidPrecondition` (the uid read before) applies unless the caller gave one. */
export function deleteOptionsBody(options: DeleteOptions, uidPrecondition?: string): DeleteOptionsBody {
  const body: DeleteOptionsBody = { apiVersion: 'v1', kind: 'DeleteOptions' };
  if (options.propagationPolicy !== undefined) body.propagationPolicy = options.propagationPolicy;
  const preconditions: { uid?: string; resourceVersion?: string } = {};
  const uid = options.preconditions?.uid ?? uidPrecondition;
  if (uid !== undefined) preconditions.uid = uid;
  if (options.preconditions?.resourceVersion !== undefined) {
    preconditions.resourceVersion = options.preconditions.resourceVersion;
  }
  if (Object.keys(preconditions).length > 0) body.preconditions = preconditions;
  return body;
}

/**
 * The merge patch from `stored` to `next`: of metadata and spec, or with `status` of status
 * only (what the status subresource takes). Empty when nothing changes.
 */
export function mergePatchBetween(
  stored: object,
  next: object,
  subresource?: 'status',
): JsonObject & { metadata?: JsonObject } {
  const pick = (object: object) => {
    const { status, ...rest } = object as JsonObject;
    if (subresource !== 'status') return rest;
    return status === undefined ? {} : { status };
  };
  return createMergePatch(pick(stored), pick(next)) as JsonObject & { metadata?: JsonObject };
}

/** The query of one watch request. */
export function watchQuery(options: {
  resourceVersion: string;
  labelSelector?: string;
  timeoutSeconds: number;
}): Record<string, string | number | boolean> {
  const query: Record<string, string | number | boolean> = {
    allowWatchBookmarks: true,
    resourceVersion: options.resourceVersion,
    timeoutSeconds: options.timeoutSeconds,
  };
  if (options.labelSelector !== undefined) query.labelSelector = options.labelSelector;
  return query;
}

/** RFC 3339 at second precision from a JSON string or the Date client-node deserializes to. */
export function timestampText(value: unknown): string | undefined {
  if (value instanceof Date)
    return Number.isNaN(value.getTime()) ? undefined : formatTimestamp(value.getTime());
  if (typeof value !== 'string' || value === '') return undefined;
  const milliseconds = Date.parse(value);
  return Number.isNaN(milliseconds) ? value : formatTimestamp(milliseconds);
}

/** Client-settable metadata with empty collections dropped (the embedded store keeps none). */
export function settableMetadata(metadata: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const field of ['labels', 'annotations']) {
    const value = metadata[field];
    if (isPlainObject(value) && Object.keys(value).length === 0) continue;
    if (value !== undefined && value !== null) out[field] = isPlainObject(value) ? { ...value } : value;
  }
  for (const field of ['finalizers', 'ownerReferences']) {
    const value = metadata[field];
    if (Array.isArray(value) && value.length === 0) continue;
    if (value !== undefined && value !== null) {
      out[field] = Array.isArray(value)
        ? value.map((item: unknown) => (isPlainObject(item) ? { ...item } : item))
        : value;
    }
  }
  return out;
}

/**
 * An object from the API server in the embedded store's shape: only the metadata fields of
 * ObjectMeta (no managedFields, selfLink, generateName or deletionGracePeriodSeconds),
 * empty collections dropped, timestamps at second precision.
 */
export function normalizeObject<T>(raw: unknown): T {
  if (!isPlainObject(raw) || !isPlainObject(raw.metadata)) return raw as T;
  const metadata = raw.metadata;
  const out: JsonObject = {
    name: metadata.name,
    namespace: metadata.namespace,
    uid: metadata.uid,
    resourceVersion: metadata.resourceVersion,
    generation: metadata.generation,
    creationTimestamp: timestampText(metadata.creationTimestamp),
    ...settableMetadata(metadata),
  };
  const deletionTimestamp = timestampText(metadata.deletionTimestamp);
  if (deletionTimestamp !== undefined) out.deletionTimestamp = deletionTimestamp;
  const object: JsonObject = { apiVersion: raw.apiVersion, kind: raw.kind, metadata: out };
  if (raw.spec !== undefined) object.spec = raw.spec;
  if (raw.status !== undefined && raw.status !== null) object.status = raw.status;
  return object as T;
}

/** The body of a create: the admitted metadata and spec; status never (the server drops it). */
export function createBody(kind: Kind, metadata: JsonObject, spec: JsonObject): JsonObject {
  const out: JsonObject = { namespace: metadata.namespace };
  if (typeof metadata.name === 'string') out.name = metadata.name;
  else out.generateName = metadata.generateName;
  return { apiVersion: API_GROUP_VERSION, kind, metadata: { ...out, ...settableMetadata(metadata) }, spec };
}

/** The body of a PUT of metadata and spec: the admitted object, its resourceVersion the precondition. */
export function replaceBody(object: { metadata: ObjectMeta; spec: unknown; kind: string }): JsonObject {
  const { metadata } = object;
  return {
    apiVersion: API_GROUP_VERSION,
    kind: object.kind,
    metadata: {
      name: metadata.name,
      namespace: metadata.namespace,
      uid: metadata.uid,
      resourceVersion: metadata.resourceVersion,
      ...settableMetadata(metadata as unknown as JsonObject),
    },
    spec: object.spec,
  };
}

// --- Events -------------------------------------------------------------------------------

function truncate(message: string): string {
  return message.length <= MAX_EVENT_MESSAGE_LENGTH
    ? message
    : `${message.slice(0, MAX_EVENT_MESSAGE_LENGTH - 3)}...`;
}

/** What makes two Events the same Event: object, type, reason, message and source. */
export function eventCorrelationKey(input: EventInput): string {
  const object = input.involvedObject;
  const identity = [
    object.namespace,
    object.kind,
    object.name,
    object.uid ?? '',
    input.type,
    input.reason,
    truncate(input.message),
    input.component,
    input.host ?? '',
  ];
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

/**
 * A deterministic Event name, `<object>.<16 hex of the correlation key>`, so that repeats
 * land on one Event across restarts and manager replicas. The object part is cut and
 * cleaned to keep the name a DNS subdomain of at most 253 characters.
 */
export function eventName(input: EventInput): string {
  const suffix = eventCorrelationKey(input).slice(0, 16);
  const base = input.involvedObject.name
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 253 - suffix.length - 1)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return base === '' ? suffix : `${base}.${suffix}`;
}

/** The core/v1 Event a first occurrence creates. */
export function newEventBody(input: EventInput, nowMilliseconds: number): JsonObject {
  const now = formatTimestamp(nowMilliseconds);
  const source: JsonObject = { component: input.component };
  if (input.host !== undefined) source.host = input.host;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: eventName(input), namespace: input.involvedObject.namespace },
    involvedObject: { ...input.involvedObject },
    type: input.type,
    reason: input.reason,
    message: truncate(input.message),
    source,
    // The API server checks these two on Events: a qualified name, and at most 128 characters.
    reportingComponent: qualifiedNameProblem(input.component) === undefined ? input.component : '',
    reportingInstance: (input.host ?? '').slice(0, 128),
    count: 1,
    firstTimestamp: now,
    lastTimestamp: now,
  };
}

/** The merge patch that counts one more occurrence; the resourceVersion makes it conditional. */
export function repeatEventPatch(
  count: number,
  resourceVersion: string,
  nowMilliseconds: number,
): JsonObject {
  return { metadata: { resourceVersion }, count: count + 1, lastTimestamp: formatTimestamp(nowMilliseconds) };
}

function text(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : fallback;
}

/**
 * A core/v1 Event from the API server (JSON, or client-node's model with Date fields) in the
 * ResourceEvent shape. Events written through events.k8s.io/v1 carry eventTime and series
 * instead of the legacy timestamps and count; those fill the gaps.
 */
export function normalizeEvent(raw: unknown): ResourceEvent {
  const event = (isPlainObject(raw) ? raw : { ...(raw as object) }) as JsonObject;
  const metadata = (event.metadata ?? {}) as JsonObject;
  const series = (event.series ?? {}) as JsonObject;
  const involved = (event.involvedObject ?? {}) as JsonObject;
  const source = (event.source ?? {}) as JsonObject;
  const creationTimestamp = timestampText(metadata.creationTimestamp) ?? '';
  const firstTimestamp =
    timestampText(event.firstTimestamp) ?? timestampText(event.eventTime) ?? creationTimestamp;
  const lastTimestamp =
    timestampText(event.lastTimestamp) ?? timestampText(series.lastObservedTime) ?? firstTimestamp;
  const involvedObject: JsonObject = {};
  for (const field of ['apiVersion', 'kind', 'namespace', 'name', 'uid', 'resourceVersion', 'fieldPath']) {
    if (typeof involved[field] === 'string' && involved[field] !== '')
      involvedObject[field] = involved[field];
  }
  if (involvedObject.kind === undefined) involvedObject.kind = '';
  if (involvedObject.name === undefined) involvedObject.name = '';
  if (involvedObject.namespace === undefined) involvedObject.namespace = text(metadata.namespace);
  const eventSource: { component: string; host?: string } = {
    component: text(source.component, text(event.reportingComponent)),
  };
  if (typeof source.host === 'string' && source.host !== '') eventSource.host = source.host;
  const count =
    typeof event.count === 'number' && event.count > 0
      ? event.count
      : typeof series.count === 'number'
        ? series.count
        : 1;
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: {
      name: text(metadata.name),
      namespace: text(metadata.namespace),
      uid: text(metadata.uid),
      resourceVersion: text(metadata.resourceVersion),
      creationTimestamp,
    },
    involvedObject: involvedObject as unknown as ResourceEvent['involvedObject'],
    type: (event.type === 'Warning' ? 'Warning' : 'Normal') as EventType,
    reason: text(event.reason),
    message: text(event.message),
    source: eventSource,
    reportingComponent: text(event.reportingComponent, eventSource.component),
    reportingInstance: text(event.reportingInstance),
    count,
    firstTimestamp,
    lastTimestamp,
  };
}

/** Oldest first by lastTimestamp, then by name (the order listEvents promises). */
export function sortEvents(events: ResourceEvent[]): ResourceEvent[] {
  return events.sort(
    (left, right) =>
      left.lastTimestamp.localeCompare(right.lastTimestamp) ||
      left.metadata.namespace.localeCompare(right.metadata.namespace) ||
      left.metadata.name.localeCompare(right.metadata.name),
  );
}

/** By namespace, then name (the order list promises). */
export function sortObjects<T extends { metadata: { namespace: string; name: string } }>(items: T[]): T[] {
  return items.sort(
    (left, right) =>
      (left.metadata.namespace < right.metadata.namespace
        ? -1
        : left.metadata.namespace > right.metadata.namespace
          ? 1
          : 0) ||
      (left.metadata.name < right.metadata.name ? -1 : left.metadata.name > right.metadata.name ? 1 : 0),
  );
}
