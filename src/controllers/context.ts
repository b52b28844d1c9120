/**
 * What every controller shares: the store, the namespace, the log, the event recorder,
 * the settings, the instance manager monitors, and a way to wake other controllers.
 * Names of the children controllers create are deterministic (`names` below), so that a
 * reconcile repeated after a crash finds what the previous one made instead of making it
 * twice.
 */
import { createHash } from 'node:crypto';
import { isHornbillError } from '../errors.ts';
import {
  type AnyResource,
  type Condition,
  type ConditionInput,
  type Kind,
  type ResourceOf,
  type ResourceStore,
  resolveSettings,
  type SettingValues,
  setCondition,
} from '../resources/index.ts';
import type { InstanceManagerMonitors } from './instance-manager-monitor.ts';

export const VOLUME_FINALIZER = 'hornbill.io/volume';
export const ENGINE_FINALIZER = 'hornbill.io/engine';
export const REPLICA_FINALIZER = 'hornbill.io/replica';
export const VOLUME_LABEL = 'hornbill.io/volume';
export const NODE_LABEL = 'hornbill.io/node';
/** Engine annotation set by the volume controller when it salvaged the volume (a record). */
export const SALVAGED_AT_ANNOTATION = 'hornbill.io/salvaged-at';
/** Engine annotation set by the API (revertSnapshot): the snapshot to revert to; the engine controller removes it. */
export const REVERT_SNAPSHOT_ANNOTATION = 'hornbill.io/revert-snapshot';
/** Engine annotation set by the API (purgeSnapshots): when a purge was asked for. */
export const PURGE_REQUESTED_ANNOTATION = 'hornbill.io/purge-requested-at';
/** Engine annotation set by the engine controller: the purge request time it carried out (or gave up on). */
export const PURGE_HANDLED_ANNOTATION = 'hornbill.io/purge-handled-at';

export type LogRecord = Record<string, unknown>;

/** The same Event (object, reason, message) is logged at most this often. */
const REPEAT_LOG_INTERVAL_MS = 60_000;
const MAXIMUM_REMEMBERED_EVENTS = 10_000;

/** The controllers that can be woken by key. */
export type QueueName = 'volume' | 'engine' | 'replica' | 'node' | 'snapshot' | 'setting';

export interface ControllerContext {
  store: ResourceStore;
  namespace: string;
  monitors: InstanceManagerMonitors;
  log(record: LogRecord): void;
  /** Queues a key of another controller. */
  enqueue(queue: QueueName, name: string): void;
  /** Every setting's current value (defaults where no Setting resource exists). */
  settings(): Promise<SettingValues>;
  /** Records a core/v1 Event about `object`; failures are logged, never thrown. */
  event(
    object: AnyResource,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    component: string,
    options?: { throttleMs?: number },
  ): Promise<void>;
}

export function createContext(options: {
  store: ResourceStore;
  namespace: string;
  monitors: InstanceManagerMonitors;
  log(record: LogRecord): void;
  enqueue(queue: QueueName, name: string): void;
}): ControllerContext {
  const { store, namespace, log } = options;
  const lastLogged = new Map<string, number>();
  const lastRecorded = new Map<string, number>();
  return {
    ...options,
    async settings() {
      const { items } = await store.list('Setting', { namespace });
      return resolveSettings(items);
    },
    async event(object, type, reason, message, component, options = {}) {
      const throttleKey = `${object.kind}/${object.metadata.name}/${reason}/${message}`;
      if (options.throttleMs !== undefined) {
        // A condition seen on every reconcile: recorded (and counted) once per throttleMs.
        if ((lastRecorded.get(throttleKey) ?? 0) + options.throttleMs > Date.now()) return;
        if (lastRecorded.size >= MAXIMUM_REMEMBERED_EVENTS) lastRecorded.clear();
        lastRecorded.set(throttleKey, Date.now());
      }
      try {
        await store.recordEvent({
          involvedObject: {
            apiVersion: object.apiVersion,
            kind: object.kind,
            namespace: object.metadata.namespace,
            name: object.metadata.name,
            uid: object.metadata.uid,
          },
          type,
          reason,
          message,
          component,
        });
        // A repeated Event is counted by the store; the log says it once a minute.
        const key = `${object.kind}/${object.metadata.name}/${reason}/${message}`;
        const now = Date.now();
        if ((lastLogged.get(key) ?? 0) + REPEAT_LOG_INTERVAL_MS <= now) {
          if (lastLogged.size >= MAXIMUM_REMEMBERED_EVENTS) lastLogged.clear();
          lastLogged.set(key, now);
          log({
            level: type === 'Warning' ? 'warn' : 'info',
            component,
            event: reason,
            object: `${object.kind}/${object.metadata.name}`,
            message,
          });
        }
      } catch (error) {
        log({ level: 'warn', component, message: 'recording an event failed', reason, error: String(error) });
      }
    },
  };
}

/** Deterministic names of the objects controllers create. */
export const names = {
  engine: (volume: string) => `${volume}-e-0`,
  /** The replica in slot `index` of a volume incarnation: the same every time it is computed. */
  replica: (volume: string, volumeUid: string, index: number) =>
    `${volume}-r-${shortHash(`${volumeUid}/${index}`)}`,
  instanceManager: (nodeID: string) => `instance-manager-${nodeID}`,
  /** The default disk of a disk path. */
  disk: (path: string) => `default-disk-${shortHash(path)}`,
  volumeAttachment: (volume: string) => volume,
};

export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 8);
}

/** The object, or undefined when it does not exist. */
export async function getOrUndefined<K extends Kind>(
  store: ResourceStore,
  kind: K,
  namespace: string,
  name: string,
): Promise<ResourceOf<K> | undefined> {
  try {
    return await store.get({ kind, namespace, name });
  } catch (error) {
    if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
    throw error;
  }
}

/** Conditions with `input` set; `changed` says whether status, reason or message moved. */
export function withCondition(
  conditions: Condition[] | undefined,
  input: ConditionInput,
): { conditions: Condition[]; changed: boolean } {
  const previous = conditions?.find((condition) => condition.type === input.type);
  const changed =
    previous === undefined ||
    previous.status !== input.status ||
    previous.reason !== input.reason ||
    previous.message !== input.message;
  return { conditions: setCondition(conditions, input), changed };
}

/** Structural equality of JSON values (for "did the status change" checks). */
export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const result: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const entry = (value as Record<string, unknown>)[key];
      if (entry !== undefined) result[key] = sortKeys(entry);
    }
    return result;
  }
  return value;
}

export function nowTimestamp(): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function timestampMs(timestamp: string | undefined): number | undefined {
  if (timestamp === undefined) return undefined;
  const value = Date.parse(timestamp);
  return Number.isNaN(value) ? undefined : value;
}
