/**
 * The manager's Prometheus metrics (prom-client): the default process metrics, HTTP
 * requests by route, open watches, and every store write — the API's and the controllers'
 * alike, because the controllers are handed the same `MeteredStore`.
 *
 * | metric | type | labels |
 * |---|---|---|
 * | `hornbill_manager_http_requests_total` | counter | method, route (the pattern), status |
 * | `hornbill_manager_http_request_duration_seconds` | histogram | method, route |
 * | `hornbill_manager_watches_open` | gauge | |
 * | `hornbill_manager_store_writes_total` | counter | operation, kind, outcome (`ok` or the error code) |
 * | `hornbill_manager_store_write_duration_seconds` | histogram | operation |
 * | `hornbill_manager_controllers_running` | gauge | (1 when the controllers run) |
 * | `hornbill_manager_leader` | gauge | (1 while this manager holds the leader Lease; the embedded manager is always 1) |
 *
 * `meteredStore` also reports a RESOURCE_STORE_FAILED write: the embedded store stops after
 * a commit that did not reach the disk, and the manager must then stop too (to be restarted).
 */
import client from 'prom-client';
import { isHornbillError } from '../errors.ts';
import { registerProcessMetrics } from '../metrics/families.ts';
import type { AnyResource } from '../resources/registry.ts';
import type { ResourceStore } from '../resources/store/types.ts';

export class ManagerMetrics {
  readonly registry = new client.Registry();
  readonly httpRequests: client.Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: client.Histogram<'method' | 'route'>;
  readonly watchesOpen: client.Gauge;
  readonly storeWrites: client.Counter<'operation' | 'kind' | 'outcome'>;
  readonly storeWriteDuration: client.Histogram<'operation'>;
  readonly controllersRunning: client.Gauge;
  readonly leader: client.Gauge;

  constructor() {
    registerProcessMetrics(this.registry, 'hornbill_manager_', {});
    const registers = [this.registry];
    this.httpRequests = new client.Counter({
      name: 'hornbill_manager_http_requests_total',
      help: 'HTTP requests answered by the manager, by route pattern and status.',
      labelNames: ['method', 'route', 'status'],
      registers,
    });
    this.httpDuration = new client.Histogram({
      name: 'hornbill_manager_http_request_duration_seconds',
      help: 'Time from request to the end of the answer (watches: their whole life).',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300],
      registers,
    });
    this.watchesOpen = new client.Gauge({
      name: 'hornbill_manager_watches_open',
      help: 'Watch streams open on the HTTP API.',
      registers,
    });
    this.storeWrites = new client.Counter({
      name: 'hornbill_manager_store_writes_total',
      help: 'Writes to the resource store (API and controllers), by operation, kind and outcome.',
      labelNames: ['operation', 'kind', 'outcome'],
      registers,
    });
    this.storeWriteDuration = new client.Histogram({
      name: 'hornbill_manager_store_write_duration_seconds',
      help: 'Time a store write takes until durable.',
      labelNames: ['operation'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1],
      registers,
    });
    this.controllersRunning = new client.Gauge({
      name: 'hornbill_manager_controllers_running',
      help: '1 while the controllers run in this manager, 0 otherwise.',
      registers,
    });
    this.leader = new client.Gauge({
      name: 'hornbill_manager_leader',
      help: '1 while this manager holds the leader Lease (Kubernetes mode; the embedded manager is always the leader).',
      registers,
    });
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.httpRequests.inc({ method, route, status: String(status) });
    this.httpDuration.observe({ method, route }, seconds);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

type WriteOperation = 'create' | 'update' | 'updateStatus' | 'patch' | 'delete' | 'recordEvent';

/** A ResourceStore that counts and times every write of the store it wraps. */
export function meteredStore(
  store: ResourceStore,
  metrics: ManagerMetrics,
  /** Called when a write fails with RESOURCE_STORE_FAILED: the store serves nothing more. */
  onStoreFailed: (error: Error) => void = () => {},
): ResourceStore {
  async function measure<T>(operation: WriteOperation, kind: string, write: () => Promise<T>): Promise<T> {
    const end = metrics.storeWriteDuration.startTimer({ operation });
    try {
      const result = await write();
      metrics.storeWrites.inc({ operation, kind, outcome: 'ok' });
      return result;
    } catch (error) {
      metrics.storeWrites.inc({ operation, kind, outcome: isHornbillError(error) ? error.code : 'INTERNAL' });
      if (isHornbillError(error, 'RESOURCE_STORE_FAILED')) onStoreFailed(error);
      throw error;
    } finally {
      end();
    }
  }
  const kindOf = (object: { kind?: unknown }) => (typeof object?.kind === 'string' ? object.kind : 'unknown');
  return {
    backend: store.backend,
    get: (key) => store.get(key),
    list: (kind, options) => store.list(kind, options),
    watch: (kind, options) => store.watch(kind, options),
    listEvents: (options) => store.listEvents(options),
    close: () => store.close(),
    create: (object) => measure('create', kindOf(object), () => store.create(object)),
    update: <T extends AnyResource>(object: T) =>
      measure('update', kindOf(object), () => store.update(object)),
    updateStatus: <T extends AnyResource>(object: T) =>
      measure('updateStatus', kindOf(object), () => store.updateStatus(object)),
    patch: (key, patch, options) => measure('patch', key.kind, () => store.patch(key, patch, options)),
    delete: (key, options) => measure('delete', key.kind, () => store.delete(key, options)),
    recordEvent: (input) => measure('recordEvent', 'Event', () => store.recordEvent(input)),
  } satisfies ResourceStore as ResourceStore;
}
