/**
 * The Kubernetes ResourceStore: Hornbill's objects as custom resources (deploy/crds/) in the
 * API server, through @kubernetes/client-node. Kubernetes is the distributed engine here —
 * etcd keeps the objects, the API server gives resourceVersions, optimistic concurrency,
 * watches, finalizers and (through kube-controller-manager) garbage collection.
 *
 * - Admission runs here first (validation.ts), so both backends refuse the same input with
 *   the same RESOURCE_INVALID field; the CRD schemas are the second line.
 * - update and patch read the object first, because the kinds' change rules (immutable
 *   fields, no shrinking) need the stored object; the write carries that resourceVersion, so
 *   the check and the write see the same object or the write fails with 409.
 * - Status goes through the status subresource; patches are JSON merge patches.
 * - Watches continue across the API server's request timeouts from the last resourceVersion
 *   (BOOKMARKs included); 410 Gone is RESOURCE_GONE, and the Informer lists again.
 * - Every request has a timeout, and every failure is a HornbillError (kubernetes-errors.ts).
 *
 * ```ts
 * const store = await openKubernetesStore({ kubeconfig: process.env.KUBECONFIG });
 * const volume = await store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace }, spec: { size: '2Gi' } });
 * ```
 */
import {
  type ConfigurationOptions,
  CoreV1Api,
  CustomObjectsApi,
  type HttpLibrary,
  type KubeConfig,
  Watch,
} from '@kubernetes/client-node';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { type Logger, silentLogger } from '../../logging.ts';
import { DEFAULT_NAMESPACE, describeKey, type ObjectKey } from '../api.ts';
import { isPlainObject, type JsonObject, jsonEqual } from '../json.ts';
import { type AnyResource, type CreateInput, KINDS, type Kind, type ResourceOf } from '../registry.ts';
import { admitCreate, admitUpdate } from '../validation.ts';
import {
  admitStatus,
  checkKey,
  checkKind,
  checkNoNewFinalizers,
  checkPreconditions,
  keyOfRequest,
  mergedMetadata,
  patchedObject,
  requireResourceVersion,
} from './kubernetes-admission.ts';
import {
  contextNamespace,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type KubeConfigOptions,
  kubernetesRequestOptions,
  loadKubeConfig,
} from './kubernetes-config.ts';
import { fromKubernetesError, type RequestDescription } from './kubernetes-errors.ts';
import { KubernetesEvents } from './kubernetes-events.ts';
import {
  collectionPath,
  createBody,
  DEFAULT_FIELD_MANAGER,
  deleteOptionsBody,
  LIST_PAGE_SIZE,
  labelSelectorQuery,
  locationOf,
  MAX_LIST_PAGES,
  MERGE_PATCH_CONTENT_TYPE,
  mergePatchBetween,
  normalizeObject,
  replaceBody,
  sortObjects,
  WRITE_ATTEMPTS,
  watchQuery,
} from './kubernetes-requests.ts';
import { KubernetesWatch, type WatchConnection } from './kubernetes-watch.ts';
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
} from './types.ts';

export { DEFAULT_REQUEST_TIMEOUT_MS, kubernetesRequestOptions, loadKubeConfig } from './kubernetes-config.ts';

/**
 * The API server ends each watch request after this long (the client continues from the
 * last resourceVersion). Below client-node's 30 s idle timeout, and the server sends a
 * BOOKMARK just before it ends the request, so an idle watch keeps a fresh resourceVersion.
 */
export const DEFAULT_WATCH_TIMEOUT_SECONDS = 25;

export interface KubernetesStoreOptions extends KubeConfigOptions {
  /**
   * Where the manager's own objects live (its leader-election Lease). Default: the
   * context's namespace (in a pod, the service account's), else hornbill-system. Resource
   * operations name their namespace themselves and are not limited to this one.
   */
  namespace?: string;
  /** Checks at open that the API server serves every Hornbill kind (default true). */
  probe?: boolean;
  /** Per request, watches excepted (default 30 s). */
  requestTimeoutMs?: number;
  watchTimeoutSeconds?: number;
  /** Recorded in managedFields (default `hornbill`). */
  fieldManager?: string;
  logger?: Logger;
  /** Milliseconds since the epoch (default Date.now), for Event timestamps. */
  clock?: () => number;
  /**
   * Replaces client-node's HTTP transport for requests (watches excepted). Unit tests record
   * the requests the store builds with it; production leaves it unset.
   */
  httpApi?: HttpLibrary;
}

/** Opens the store and (unless `probe` is false) checks that every Hornbill kind is served. */
export async function openKubernetesStore(
  options: KubernetesStoreOptions = {},
): Promise<KubernetesResourceStore> {
  const kubeConfig = loadKubeConfig(options);
  const store = new KubernetesResourceStore(kubeConfig, options);
  if (options.probe ?? true) {
    try {
      await store.checkResourceTypes();
    } catch (error) {
      await store.close();
      throw error;
    }
  }
  return store;
}

export class KubernetesResourceStore implements ResourceStore {
  readonly backend = 'kubernetes';
  readonly kubeConfig: KubeConfig;
  /** The manager's namespace (its Lease); see KubernetesStoreOptions.namespace. */
  readonly namespace: string;
  private readonly customObjects: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly watcher: Watch;
  private readonly requestTimeoutMs: number;
  private readonly watchTimeoutSeconds: number;
  private readonly fieldManager: string;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly httpApi: HttpLibrary | undefined;
  /** Aborted by close(): ends every request in flight. */
  private readonly closing = new AbortController();
  private readonly watches = new Set<ResourceWatch<unknown>>();
  private readonly eventRecorder: KubernetesEvents;
  private closed = false;

  constructor(kubeConfig: KubeConfig, options: KubernetesStoreOptions = {}) {
    this.kubeConfig = kubeConfig;
    this.namespace = options.namespace ?? contextNamespace(kubeConfig) ?? DEFAULT_NAMESPACE;
    this.customObjects = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.watcher = new Watch(kubeConfig);
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.watchTimeoutSeconds = options.watchTimeoutSeconds ?? DEFAULT_WATCH_TIMEOUT_SECONDS;
    this.fieldManager = options.fieldManager ?? DEFAULT_FIELD_MANAGER;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? Date.now;
    this.httpApi = options.httpApi;
    this.eventRecorder = new KubernetesEvents({
      core: this.core,
      call: (request, send) => this.call(request, send),
      requestOptions: (contentType) => this.requestOptions(contentType),
      clock: this.clock,
    });
  }

  private checkUsable(): void {
    if (this.closed)
      throw new HornbillError('RESOURCE_STORE_CLOSED', 'the Kubernetes resource store is closed');
  }

  /** Per-request options: a timeout and close() as the signal, and optionally a content type. */
  private requestOptions(contentType?: string): ConfigurationOptions {
    return kubernetesRequestOptions({
      timeoutMs: this.requestTimeoutMs,
      signal: this.closing.signal,
      contentType,
      httpApi: this.httpApi,
    });
  }

  /** Runs one request; every failure becomes a HornbillError. */
  private async call<T>(request: RequestDescription, send: () => Promise<T>): Promise<T> {
    this.checkUsable();
    try {
      return await send();
    } catch (error) {
      if (this.closed) {
        throw new HornbillError('RESOURCE_STORE_CLOSED', 'the Kubernetes resource store is closed', {
          ...request,
        });
      }
      const mapped = fromKubernetesError(error, request);
      this.logger('debug', 'Kubernetes request failed', {
        ...request,
        code: mapped.code,
        error: mapped.message,
      });
      throw mapped;
    }
  }

  /**
   * Checks through discovery that the API server serves every Hornbill kind with its status
   * subresource: KUBERNETES_RESOURCE_TYPE_MISSING names the ones it does not.
   */
  async checkResourceTypes(): Promise<void> {
    const { group, version } = locationOf('Volume');
    const served = new Set<string>();
    try {
      const list = await this.call({ operation: 'discover' }, () =>
        this.customObjects.getAPIResources({ group, version }, this.requestOptions()),
      );
      for (const resource of list.resources ?? []) served.add(resource.name);
    } catch (error) {
      if (!isHornbillError(error) || (error.details.status !== 404 && error.code !== 'RESOURCE_NOT_FOUND'))
        throw error;
    }
    const missing = KINDS.map((kind) => locationOf(kind).plural).filter(
      (plural) => !served.has(plural) || !served.has(`${plural}/status`),
    );
    if (missing.length > 0) {
      throw new HornbillError(
        'KUBERNETES_RESOURCE_TYPE_MISSING',
        `the API server does not serve ${missing.map((plural) => `${plural}.${group}`).join(', ')} (with status): apply deploy/crds/`,
        { group, version, missing },
      );
    }
  }

  async get<K extends Kind>(key: ObjectKey<K>): Promise<ResourceOf<K>> {
    checkKey(key);
    const raw = await this.call({ operation: 'get', ...key }, () =>
      this.customObjects.getNamespacedCustomObject(
        { ...locationOf(key.kind), namespace: key.namespace, name: key.name },
        this.requestOptions(),
      ),
    );
    return normalizeObject<ResourceOf<K>>(raw);
  }

  async list<K extends Kind>(kind: K, options: ListOptions = {}): Promise<ResourceList<ResourceOf<K>>> {
    checkKind(kind);
    const labelSelector = labelSelectorQuery(options.labelSelector);
    const items: ResourceOf<K>[] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    for (let page = 0; ; page++) {
      if (page >= MAX_LIST_PAGES) {
        throw new HornbillError(
          'KUBERNETES_REQUEST_FAILED',
          `list ${kind}: more than ${MAX_LIST_PAGES} pages`,
          {
            status: 0,
            kind,
            namespace: options.namespace,
          },
        );
      }
      const query = { ...locationOf(kind), labelSelector, limit: LIST_PAGE_SIZE, _continue: continueToken };
      const namespace = options.namespace;
      const raw = (await this.call({ operation: 'list', kind, namespace }, () =>
        namespace === undefined
          ? this.customObjects.listClusterCustomObject(query, this.requestOptions())
          : this.customObjects.listNamespacedCustomObject({ ...query, namespace }, this.requestOptions()),
      )) as { items?: unknown[]; metadata?: { resourceVersion?: string; continue?: string } };
      for (const item of raw.items ?? []) items.push(normalizeObject<ResourceOf<K>>(item));
      resourceVersion = raw.metadata?.resourceVersion ?? resourceVersion;
      continueToken = raw.metadata?.continue;
      if (continueToken === undefined || continueToken === '') break;
    }
    return { items: sortObjects(items), resourceVersion };
  }

  async create<K extends Kind>(object: CreateInput<K>): Promise<ResourceOf<K>> {
    this.checkUsable();
    const { kind, metadata, spec } = admitCreate(object);
    const namespace = metadata.namespace as string;
    const name = typeof metadata.name === 'string' ? metadata.name : undefined;
    const raw = await this.call({ operation: 'create', kind, namespace, name }, () =>
      this.customObjects.createNamespacedCustomObject(
        {
          ...locationOf(kind),
          namespace,
          body: createBody(kind, metadata, spec),
          fieldManager: this.fieldManager,
        },
        this.requestOptions(),
      ),
    );
    return normalizeObject<ResourceOf<K>>(raw);
  }

  async update<T extends AnyResource>(object: T): Promise<T> {
    this.checkUsable();
    const key = keyOfRequest(object);
    const request = object as unknown as JsonObject & { metadata: JsonObject };
    const requestMetadata = request.metadata;
    requireResourceVersion(key, requestMetadata.resourceVersion);
    const stored = (await this.get(key)) as AnyResource;
    checkPreconditions(key, requestMetadata, stored);
    const candidate = {
      apiVersion: stored.apiVersion,
      kind: stored.kind,
      metadata: mergedMetadata(stored.metadata, requestMetadata),
      spec: request.spec,
      status: stored.status,
    };
    const admitted = admitUpdate(candidate, stored as never) as unknown as AnyResource;
    checkNoNewFinalizers(key, stored, admitted);
    if (jsonEqual(admitted, stored)) return stored as T;
    const raw = await this.call({ operation: 'update', ...key }, () =>
      this.customObjects.replaceNamespacedCustomObject(
        {
          ...locationOf(key.kind),
          namespace: key.namespace,
          name: key.name,
          body: replaceBody(admitted),
          fieldManager: this.fieldManager,
        },
        this.requestOptions(),
      ),
    );
    return normalizeObject<T>(raw);
  }

  async updateStatus<T extends AnyResource>(object: T): Promise<T> {
    this.checkUsable();
    const key = keyOfRequest(object);
    const request = object as unknown as JsonObject & { metadata: JsonObject };
    const metadata = request.metadata;
    requireResourceVersion(key, metadata.resourceVersion);
    const status = request.status;
    admitStatus(key, status);
    const body: JsonObject = {
      apiVersion: object.apiVersion,
      kind: key.kind,
      metadata: { name: key.name, namespace: key.namespace, resourceVersion: metadata.resourceVersion },
      spec: request.spec,
    };
    if (typeof metadata.uid === 'string' && metadata.uid !== '')
      (body.metadata as JsonObject).uid = metadata.uid;
    if (status !== undefined) body.status = status;
    const raw = await this.call({ operation: 'updateStatus', ...key }, () =>
      this.customObjects.replaceNamespacedCustomObjectStatus(
        {
          ...locationOf(key.kind),
          namespace: key.namespace,
          name: key.name,
          body,
          fieldManager: this.fieldManager,
        },
        this.requestOptions(),
      ),
    );
    return normalizeObject<T>(raw);
  }

  async patch<K extends Kind>(
    key: ObjectKey<K>,
    patch: Record<string, unknown>,
    options: PatchOptions = {},
  ): Promise<ResourceOf<K>> {
    this.checkUsable();
    checkKey(key);
    if (!isPlainObject(patch)) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `a merge patch of ${describeKey(key)} must be a JSON object`,
        {
          ...key,
        },
      );
    }
    const patchMetadata = isPlainObject(patch.metadata) ? patch.metadata : {};
    const requested =
      typeof patchMetadata.resourceVersion === 'string' && patchMetadata.resourceVersion !== ''
        ? patchMetadata.resourceVersion
        : undefined;
    for (let attempt = 1; ; attempt++) {
      const stored = (await this.get(key)) as AnyResource;
      if (requested !== undefined) checkPreconditions(key, { resourceVersion: requested }, stored);
      const next = patchedObject(key, stored, patch, options);
      // The server gets the difference between what admission saw and what we read, made
      // conditional on that read, so it stores exactly what was admitted.
      const difference = mergePatchBetween(stored, next, options.subresource);
      if (Object.keys(difference).length === 0) return stored as ResourceOf<K>;
      const body = {
        ...difference,
        metadata: { ...difference.metadata, resourceVersion: stored.metadata.resourceVersion },
      };
      try {
        const raw = await this.call({ operation: 'patch', ...key }, () => {
          const request = {
            ...locationOf(key.kind),
            namespace: key.namespace,
            name: key.name,
            body,
            fieldManager: this.fieldManager,
          };
          const requestOptions = this.requestOptions(MERGE_PATCH_CONTENT_TYPE);
          return options.subresource === 'status'
            ? this.customObjects.patchNamespacedCustomObjectStatus(request, requestOptions)
            : this.customObjects.patchNamespacedCustomObject(request, requestOptions);
        });
        return normalizeObject<ResourceOf<K>>(raw);
      } catch (error) {
        // Our own precondition failed (someone wrote in between): read again, unless the
        // caller asked for that version, or we tried enough.
        if (
          requested !== undefined ||
          attempt >= WRITE_ATTEMPTS ||
          !isHornbillError(error, 'RESOURCE_CONFLICT')
        ) {
          throw error;
        }
      }
    }
  }

  async delete<K extends Kind>(
    key: ObjectKey<K>,
    options: DeleteOptions = {},
  ): Promise<DeleteResult<ResourceOf<K>>> {
    this.checkUsable();
    checkKey(key);
    const policy = options.propagationPolicy;
    if (policy !== undefined && !['Background', 'Foreground', 'Orphan'].includes(policy)) {
      throw new HornbillError('INVALID_ARGUMENT', `unknown propagationPolicy ${JSON.stringify(policy)}`, {
        policy,
      });
    }
    const callerPreconditions = options.preconditions !== undefined;
    for (let attempt = 1; ; attempt++) {
      // Read first: a delete that removes the object at once answers with a Status, not
      // the object, and DeleteResult returns the object. Our uid precondition makes sure
      // the object we read is the one removed.
      const stored = await this.get(key);
      const body = deleteOptionsBody(options, stored.metadata.uid);
      try {
        const raw = await this.call({ operation: 'delete', ...key }, () =>
          this.customObjects.deleteNamespacedCustomObject(
            { ...locationOf(key.kind), namespace: key.namespace, name: key.name, body },
            this.requestOptions(),
          ),
        );
        if (!isPlainObject(raw) || raw.kind === 'Status' || !isPlainObject(raw.metadata)) {
          return { removed: true, object: stored };
        }
        const object = normalizeObject<ResourceOf<K>>(raw);
        const held =
          object.metadata.deletionTimestamp !== undefined && (object.metadata.finalizers ?? []).length > 0;
        return { removed: !held, object };
      } catch (error) {
        if (
          callerPreconditions ||
          attempt >= WRITE_ATTEMPTS ||
          !isHornbillError(error, 'RESOURCE_CONFLICT')
        ) {
          throw error;
        }
      }
    }
  }

  watch<K extends Kind>(kind: K, options: WatchOptions = {}): ResourceWatch<ResourceOf<K>> {
    const namespace = options.namespace;
    const start = async () => {
      this.checkUsable();
      checkKind(kind);
      const version = options.resourceVersion;
      if (version !== undefined && version !== '' && version !== '0') {
        labelSelectorQuery(options.labelSelector);
        return { resourceVersion: version, initial: [] };
      }
      const listed = await this.list(kind, options);
      return { resourceVersion: listed.resourceVersion, initial: listed.items };
    };
    const connect = async (
      resourceVersion: string,
      onEvent: (type: string, object: unknown) => void,
      onDone: (error: unknown) => void,
    ): Promise<WatchConnection> => {
      this.checkUsable();
      const query = watchQuery({
        resourceVersion,
        labelSelector: labelSelectorQuery(options.labelSelector),
        timeoutSeconds: this.watchTimeoutSeconds,
      });
      const controller = await this.watcher.watch(collectionPath(kind, namespace), query, onEvent, onDone);
      return { abort: () => controller.abort() };
    };
    const watch: KubernetesWatch<ResourceOf<K>> = new KubernetesWatch<ResourceOf<K>>({
      connect,
      start,
      normalize: (raw) => normalizeObject<ResourceOf<K>>(raw),
      resourceVersionOf: (object) => object.metadata.resourceVersion,
      kind,
      namespace,
      signal: options.signal,
      onEnd: () => this.watches.delete(watch as ResourceWatch<unknown>),
    });
    // After close() the start fails, and the first next() reports RESOURCE_STORE_CLOSED.
    if (!this.closed) this.watches.add(watch as ResourceWatch<unknown>);
    return watch;
  }

  /** Writes a core/v1 Event (kubernetes-events.ts: repeats are one Event whose count grows). */
  recordEvent(input: EventInput): Promise<ResourceEvent> {
    this.checkUsable();
    return this.eventRecorder.record(input);
  }

  listEvents(options: EventListOptions = {}): Promise<ResourceEvent[]> {
    this.checkUsable();
    return this.eventRecorder.list(options);
  }

  /** Ends every watch and aborts every request in flight; later calls are RESOURCE_STORE_CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    for (const watch of [...this.watches]) watch.close();
    this.watches.clear();
  }
}
