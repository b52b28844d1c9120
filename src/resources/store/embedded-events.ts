/**
 * core/v1 Events in the embedded store: repeats are counted on one Event (Kubernetes'
 * event correlator does the same), and the store keeps at most `eventLimit` of them — the
 * least recently seen are dropped first (Kubernetes drops Events after an hour).
 */
import { createHash } from 'node:crypto';
import { formatTimestamp } from '../api.ts';
import { dnsLabelProblem } from '../names.ts';
import type { FieldError } from '../schema.ts';
import { invalid } from '../validation.ts';
import type { StateDatabase } from './embedded-database.ts';
import type { StateTransaction } from './embedded-transaction.ts';
import {
  type EventInput,
  type EventListOptions,
  MAX_EVENT_MESSAGE_LENGTH,
  type ResourceEvent,
} from './types.ts';

const REASON = /^[A-Z][A-Za-z0-9]{0,127}$/;

/** Checks an Event request; RESOURCE_INVALID names the bad field. */
export function admitEvent(input: EventInput): void {
  const errors: FieldError[] = [];
  const involved = input?.involvedObject;
  const text = (value: unknown, maximum: number) =>
    typeof value === 'string' && value.length > 0 && value.length <= maximum;
  if (involved === undefined || typeof involved !== 'object') {
    errors.push({ field: 'involvedObject', reason: 'is required' });
  } else {
    if (!text(involved.kind, 63))
      errors.push({ field: 'involvedObject.kind', reason: 'must be 1 to 63 characters' });
    if (!text(involved.name, 253))
      errors.push({ field: 'involvedObject.name', reason: 'must be 1 to 253 characters' });
    const namespaceProblem =
      typeof involved.namespace === 'string' ? dnsLabelProblem(involved.namespace) : 'is required';
    if (namespaceProblem !== undefined)
      errors.push({ field: 'involvedObject.namespace', reason: namespaceProblem });
  }
  if (input?.type !== 'Normal' && input?.type !== 'Warning') {
    errors.push({ field: 'type', reason: 'must be Normal or Warning' });
  }
  if (typeof input?.reason !== 'string' || !REASON.test(input.reason)) {
    errors.push({ field: 'reason', reason: 'must be UpperCamelCase, 1 to 128 letters and digits' });
  }
  if (typeof input?.message !== 'string') errors.push({ field: 'message', reason: 'must be a string' });
  if (!text(input?.component, 253))
    errors.push({ field: 'component', reason: 'must be 1 to 253 characters' });
  if (errors.length > 0) {
    throw invalid({ kind: 'Event', namespace: involved?.namespace, name: involved?.name }, errors);
  }
}

function truncate(message: string): string {
  return message.length <= MAX_EVENT_MESSAGE_LENGTH
    ? message
    : `${message.slice(0, MAX_EVENT_MESSAGE_LENGTH - 3)}...`;
}

/** What makes two Events the same Event. */
function correlationKey(
  event: Pick<ResourceEvent, 'involvedObject' | 'type' | 'reason' | 'message' | 'source'>,
): string {
  const { involvedObject: object } = event;
  const identity = [
    object.namespace,
    object.kind,
    object.name,
    object.uid ?? '',
    event.type,
    event.reason,
    event.message,
  ];
  identity.push(event.source.component, event.source.host ?? '');
  return createHash('sha256').update(JSON.stringify(identity)).digest('hex');
}

export function recordEvent(
  transaction: StateTransaction,
  input: EventInput,
  options: { eventLimit: number; newUid: () => string },
): ResourceEvent {
  admitEvent(input);
  const { database, state } = transaction;
  const now = formatTimestamp(transaction.nowMilliseconds);
  const source =
    input.host === undefined
      ? { component: input.component }
      : { component: input.component, host: input.host };
  const involvedObject = { ...input.involvedObject };
  const fresh = {
    involvedObject,
    type: input.type,
    reason: input.reason,
    message: truncate(input.message),
    source,
  };
  const key = correlationKey(fresh);
  const sequence = ++state.eventSequence;
  const previousSequence = database.eventSequenceOf(key);
  const previous = previousSequence === undefined ? undefined : database.getEvent(previousSequence);
  let event: ResourceEvent;
  if (previous !== undefined && previousSequence !== undefined) {
    database.removeEvent(previousSequence);
    event = {
      ...previous,
      metadata: { ...previous.metadata, resourceVersion: String(sequence) },
      count: previous.count + 1,
      lastTimestamp: now,
    };
  } else {
    state.eventCount++;
    event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name: `${involvedObject.name}.${sequence.toString(16).padStart(16, '0')}`,
        namespace: involvedObject.namespace,
        uid: options.newUid(),
        resourceVersion: String(sequence),
        creationTimestamp: now,
      },
      ...fresh,
      reportingComponent: input.component,
      reportingInstance: input.host ?? '',
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
    };
  }
  database.putEvent(sequence, event);
  database.putEventKey(key, sequence);
  while (state.eventCount > options.eventLimit) {
    const oldest = database.oldestEventSequence();
    if (oldest === undefined) break;
    const dropped = database.getEvent(oldest);
    database.removeEvent(oldest);
    if (dropped !== undefined) database.removeEventKey(correlationKey(dropped));
    state.eventCount--;
  }
  transaction.wroteEvents = true;
  return event;
}

export function listEvents(database: StateDatabase, options: EventListOptions = {}): ResourceEvent[] {
  const events: ResourceEvent[] = [];
  const filter = options.involvedObject ?? {};
  for (const [, event] of database.allEvents()) {
    if (options.namespace !== undefined && event.metadata.namespace !== options.namespace) continue;
    if (filter.kind !== undefined && event.involvedObject.kind !== filter.kind) continue;
    if (filter.name !== undefined && event.involvedObject.name !== filter.name) continue;
    if (filter.uid !== undefined && event.involvedObject.uid !== filter.uid) continue;
    events.push(event);
  }
  return events;
}
