/**
 * HttpResourceStore: the ResourceStore interface over the manager's HTTP resource API, for
 * processes that do not own the state store (tests, the e2e harness, operator tools). The
 * errors are the HornbillErrors the manager raised (same code, message and details); a
 * manager that cannot be reached is MANAGER_UNREACHABLE.
 *
 * ```ts
 * const store = new HttpResourceStore({ url: 'http://127.0.0.1:9500' });
 * const volume = await store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace }, spec: { size: '2Gi' } });
 * for await (const event of store.watch('Volume', { namespace, resourceVersion: volume.metadata.resourceVersion })) …
 * await store.close();
 * ```
 *
 * Requests time out after `timeoutMs` (default 30 s); a request that finds its kept-alive
 * connection closed by the server is sent once more on a new one (Node's documented retry).
 */
import http from 'node:http';
import { fromWire, HornbillError, type WireError } from '../errors.ts';
import type { ObjectKey } from '../resources/api.ts';
import { formatLabelSelector, type LabelSelectorInput, toLabelRequirements } from '../resources/labels.ts';
import {
  type AnyResource,
  type CreateInput,
  isKind,
  KIND_DEFINITIONS,
  type Kind,
  type ResourceOf,
} from '../resources/registry.ts';
import type {
  DeleteOptions,
  DeleteResult,
  EventInput,
  EventListOptions,
  ListOptions,
  PatchOptions,
  ResourceEvent,
  ResourceList,
  ResourceStore,
  ResourceWatch,
  WatchOptions,
} from '../resources/store/types.ts';
import { codeOfHttpStatus, MAX_BODY_BYTES } from './http-common.ts';
import { badResponse, HttpWatch, unreachable } from './http-watch.ts';
import { RESOURCE_API_PREFIX } from './resource-api.ts';

export interface HttpResourceStoreOptions {
  /** The manager's base URL, e.g. http://127.0.0.1:9500 */
  url: string;
  timeoutMs?: number;
}

/** Answers larger than this are refused (a list of many objects fits easily). */
const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

interface Answer {
  status: number;
  body: unknown;
}

export class HttpResourceStore implements ResourceStore {
  readonly backend = 'embedded';
  readonly url: string;
  private readonly base: URL;
  private readonly timeoutMs: number;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  private readonly watches = new Set<HttpWatch<unknown>>();
  private closed = false;

  constructor(options: HttpResourceStoreOptions) {
    this.base = new URL(options.url);
    if (this.base.protocol !== 'http:')
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `the manager URL must be http://HOST:PORT, not ${options.url}`,
      );
    this.url = this.base.origin;
    this.timeoutMs = options.timeoutMs ?? 30_000;
  }

  async get<K extends Kind>(key: ObjectKey<K>): Promise<ResourceOf<K>> {
    return (await this.call('GET', objectPath(key))) as ResourceOf<K>;
  }

  async list<K extends Kind>(kind: K, options: ListOptions = {}): Promise<ResourceList<ResourceOf<K>>> {
    const query = new URLSearchParams();
    const selector = selectorText(options.labelSelector);
    if (selector !== undefined) query.set('labelSelector', selector);
    const body = (await this.call('GET', collectionPath(kind, options.namespace), query)) as {
      items?: unknown;
      metadata?: { resourceVersion?: unknown };
    };
    if (!Array.isArray(body?.items) || typeof body.metadata?.resourceVersion !== 'string')
      throw badResponse('a list answer has no items or no resourceVersion');
    return { items: body.items as ResourceOf<K>[], resourceVersion: body.metadata.resourceVersion };
  }

  async create<K extends Kind>(object: CreateInput<K>): Promise<ResourceOf<K>> {
    const namespace = object?.metadata?.namespace;
    return (await this.call(
      'POST',
      collectionPath(object.kind, namespace ?? ''),
      undefined,
      object,
    )) as ResourceOf<K>;
  }

  async update<T extends AnyResource>(object: T): Promise<T> {
    return (await this.call('PUT', objectPath(keyOf(object)), undefined, object)) as T;
  }

  async updateStatus<T extends AnyResource>(object: T): Promise<T> {
    return (await this.call('PUT', `${objectPath(keyOf(object))}/status`, undefined, object)) as T;
  }

  async patch<K extends Kind>(
    key: ObjectKey<K>,
    patch: Record<string, unknown>,
    options: PatchOptions = {},
  ): Promise<ResourceOf<K>> {
    const path = options.subresource === 'status' ? `${objectPath(key)}/status` : objectPath(key);
    return (await this.call('PATCH', path, undefined, patch)) as ResourceOf<K>;
  }

  async delete<K extends Kind>(
    key: ObjectKey<K>,
    options: DeleteOptions = {},
  ): Promise<DeleteResult<ResourceOf<K>>> {
    const answer = await this.request('DELETE', objectPath(key), undefined, options);
    return { removed: answer.status === 200, object: answer.body as ResourceOf<K> };
  }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): ResourceWatch<ResourceOf<K>> {
    let startError: Error | undefined;
    const query = new URLSearchParams({ watch: '1' });
    let path = '';
    try {
      this.checkOpen();
      path = collectionPath(kind, options.namespace);
      const selector = selectorText(options.labelSelector);
      if (selector !== undefined) query.set('labelSelector', selector);
      if (options.resourceVersion !== undefined) query.set('resourceVersion', options.resourceVersion);
    } catch (error) {
      startError = error as Error;
    }
    const watch: HttpWatch<ResourceOf<K>> = new HttpWatch<ResourceOf<K>>(
      (abort) => this.openStream(path, query, abort),
      { signal: options.signal, startError, onClose: () => this.watches.delete(watch as HttpWatch<unknown>) },
    );
    this.watches.add(watch as HttpWatch<unknown>);
    return watch;
  }

  async recordEvent(input: EventInput): Promise<ResourceEvent> {
    const namespace = input?.involvedObject?.namespace;
    if (typeof namespace !== 'string' || namespace === '') {
      throw new HornbillError('RESOURCE_INVALID', 'an Event needs involvedObject.namespace', {
        field: 'involvedObject.namespace',
      });
    }
    return (await this.call(
      'POST',
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/events`,
      undefined,
      input,
    )) as ResourceEvent;
  }

  async listEvents(options: EventListOptions = {}): Promise<ResourceEvent[]> {
    const query = new URLSearchParams();
    const fields = Object.entries(options.involvedObject ?? {})
      .filter(([, value]) => value !== undefined)
      .map(([field, value]) => `involvedObject.${field}=${value}`);
    if (fields.length > 0) query.set('fieldSelector', fields.join(','));
    const path =
      options.namespace === undefined
        ? '/api/v1/events'
        : `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/events`;
    const body = (await this.call('GET', path, query)) as { items?: unknown };
    if (!Array.isArray(body?.items)) throw badResponse('an event list answer has no items');
    return body.items as ResourceEvent[];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watches]) watch.close();
    this.agent.destroy();
  }

  private checkOpen(): void {
    if (this.closed) throw new HornbillError('RESOURCE_STORE_CLOSED', `the store for ${this.url} is closed`);
  }

  private async call(
    method: string,
    path: string,
    query?: URLSearchParams,
    body?: unknown,
  ): Promise<unknown> {
    return (await this.request(method, path, query, body)).body;
  }

  private async request(
    method: string,
    path: string,
    query?: URLSearchParams,
    body?: unknown,
  ): Promise<Answer> {
    this.checkOpen();
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    if (payload !== undefined && payload.length > MAX_BODY_BYTES) {
      throw new HornbillError(
        'MANAGER_BODY_TOO_LARGE',
        `the request body is larger than ${MAX_BODY_BYTES} bytes`,
        {
          limitBytes: MAX_BODY_BYTES,
        },
      );
    }
    const target = new URL(path, this.base);
    if (query !== undefined) target.search = query.toString();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.send(method, target, payload);
      } catch (error) {
        if (!(error instanceof StaleConnection)) throw error;
        if (attempt > 0) throw error.cause;
      }
    }
  }

  /** One attempt; a reset of a reused connection rejects with StaleConnection (send again). */
  private send(method: string, target: URL, payload: Buffer | undefined): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = { accept: 'application/json' };
      if (payload !== undefined) {
        headers['content-type'] = method === 'PATCH' ? 'application/merge-patch+json' : 'application/json';
        headers['content-length'] = payload.length;
      }
      const request = http.request(target, { method, headers, agent: this.agent, timeout: this.timeoutMs });
      request.on('timeout', () =>
        request.destroy(new Error(`no answer to ${method} ${target.pathname} in ${this.timeoutMs} ms`)),
      );
      request.on('error', (error: NodeJS.ErrnoException) => {
        const cause = unreachable(error);
        if (request.reusedSocket && error.code === 'ECONNRESET') reject(new StaleConnection(cause));
        else reject(cause);
      });
      request.on('response', (response) => {
        readAnswer(response).then(resolve, reject);
      });
      request.end(payload);
    });
  }

  /** The streaming GET of a watch; rejects with the answer's error when it is not 200. */
  private openStream(
    path: string,
    query: URLSearchParams,
    abort: AbortSignal,
  ): Promise<http.IncomingMessage> {
    const target = new URL(path, this.base);
    target.search = query.toString();
    return new Promise((resolve, reject) => {
      const request = http.request(target, {
        method: 'GET',
        headers: { accept: 'application/json' },
        agent: false,
        signal: abort,
      });
      request.on('socket', (socket) => socket.setKeepAlive(true, 10_000));
      request.on('error', (error) => reject(unreachable(error)));
      request.on('response', (response) => {
        if (response.statusCode === 200) resolve(response);
        else
          readAnswer(response).then(
            () => reject(badResponse(`a watch was answered ${response.statusCode}`)),
            reject,
          );
      });
      request.end();
    });
  }
}

/** A kept-alive connection reset at once: the server had closed it while idle, so the request most likely never reached it. */
class StaleConnection {
  readonly cause: HornbillError;
  constructor(cause: HornbillError) {
    this.cause = cause;
  }
}

/** Reads and parses an answer; rejects with the manager's error for any status but 2xx. */
function readAnswer(response: http.IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    response.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > MAX_RESPONSE_BYTES) {
        response.destroy();
        reject(badResponse(`an answer is larger than ${MAX_RESPONSE_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.on('error', (error) => reject(unreachable(error)));
    response.on('end', () => {
      const status = response.statusCode ?? 0;
      const text = Buffer.concat(chunks, length).toString('utf8');
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        body = undefined;
      }
      if (status >= 200 && status < 300) {
        if (body === undefined) reject(badResponse(`the answer (${status}) is not JSON`));
        else resolve({ status, body });
        return;
      }
      const wire = body as Partial<WireError> | undefined;
      if (typeof wire?.code === 'string' && typeof wire.message === 'string') {
        reject(
          fromWire({ code: wire.code, message: wire.message, details: wire.details ?? {} } as WireError),
        );
      } else {
        reject(
          new HornbillError(
            codeOfHttpStatus(status),
            `the manager answered ${status}: ${text.slice(0, 200)}`,
            { status },
          ),
        );
      }
    });
  });
}

function pluralOf(kind: Kind): string {
  if (!isKind(kind))
    throw new HornbillError('INVALID_ARGUMENT', `${JSON.stringify(kind)} is not a Hornbill kind`);
  return KIND_DEFINITIONS[kind].plural;
}

function collectionPath(kind: Kind, namespace: string | undefined): string {
  const plural = pluralOf(kind);
  return namespace === undefined
    ? `${RESOURCE_API_PREFIX}/${plural}`
    : `${RESOURCE_API_PREFIX}/namespaces/${encodeURIComponent(namespace)}/${plural}`;
}

function objectPath(key: ObjectKey): string {
  const name = encodeURIComponent(key.name);
  return `${collectionPath(key.kind as Kind, key.namespace)}/${name}`;
}

function keyOf(object: AnyResource): ObjectKey {
  return {
    kind: object.kind,
    namespace: object.metadata?.namespace,
    name: object.metadata?.name,
  } as ObjectKey;
}

function selectorText(selector: LabelSelectorInput | undefined): string | undefined {
  if (selector === undefined) return undefined;
  if (typeof selector === 'string') return selector;
  return formatLabelSelector(toLabelRequirements(selector));
}
