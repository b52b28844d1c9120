/**
 * The resource API: Kubernetes' REST shape over a ResourceStore, the embedded mode's
 * counterpart of the API server (docs/manager.md has curl examples).
 *
 * | path under `/apis/hornbill.io/v1beta1` | methods |
 * |---|---|
 * | `/` | GET: the resource list (discovery) |
 * | `/{plural}` | GET: list or watch across namespaces |
 * | `/namespaces/{ns}/{plural}` | GET: list, or watch with `?watch=1`; POST: create (201) |
 * | `/namespaces/{ns}/{plural}/{name}` | GET; PUT: update; PATCH: merge patch; DELETE (200 removed, 202 held by finalizers) |
 * | `/namespaces/{ns}/{plural}/{name}/status` | GET; PUT: update status; PATCH: merge patch of status |
 *
 * and core/v1 Events: `GET /api/v1/events`, `GET|POST /api/v1/namespaces/{ns}/events`
 * (`?fieldSelector=involvedObject.kind=Volume,involvedObject.name=vol1`; POST takes the
 * recorder's input: involvedObject, type, reason, message, component, host).
 *
 * A watch is newline-delimited JSON, one `{"type":"ADDED|MODIFIED|DELETED","object":…}` per
 * line; a failure (RESOURCE_GONE for a compacted resourceVersion) is a last line
 * `{"type":"ERROR","object":{code,message,details}}`. At most `maxWatches` are open at once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { API_GROUP, API_GROUP_VERSION, API_VERSION } from '../resources/api.ts';
import { isPlainObject } from '../resources/json.ts';
import { KIND_DEFINITIONS, KINDS, type Kind } from '../resources/registry.ts';
import type {
  DeleteOptions,
  EventInput,
  EventListOptions,
  PropagationPolicy,
  ResourceStore,
} from '../resources/store/types.ts';
import { badRequest, readJsonObject, sendJson, toWireError } from './http-common.ts';
import type { HttpRouter, RouteContext } from './router.ts';

export const RESOURCE_API_PREFIX = `/apis/${API_GROUP_VERSION}`;
export const DEFAULT_MAX_WATCHES = 256;

const KIND_OF_PLURAL = new Map<string, Kind>(KINDS.map((kind) => [KIND_DEFINITIONS[kind].plural, kind]));
const PROPAGATION_POLICIES: PropagationPolicy[] = ['Background', 'Foreground', 'Orphan'];

export interface ResourceApiOptions {
  store: ResourceStore;
  log: Logger;
  maxWatches?: number;
  /** Called with +1 when a watch opens and −1 when it ends (metrics). */
  onWatchCount?: (delta: number) => void;
}

function kindOf(plural: string): Kind {
  const kind = KIND_OF_PLURAL.get(plural);
  if (kind === undefined) {
    throw new HornbillError('MANAGER_ROUTE_NOT_FOUND', `the API has no resource ${JSON.stringify(plural)}`, {
      resource: plural,
      resources: [...KIND_OF_PLURAL.keys()],
    });
  }
  return kind;
}

/** true for watch=1/true, false for absent, 0 or false; anything else is a bad query. */
function booleanParameter(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  if (value === null || value === '0' || value === 'false') return false;
  if (value === '' || value === '1' || value === 'true') return true;
  throw badRequest(`query parameter ${name} must be true or false, not ${JSON.stringify(value)}`, {
    parameter: name,
  });
}

function optionalParameter(query: URLSearchParams, name: string): string | undefined {
  const value = query.get(name);
  return value === null || value === '' ? undefined : value;
}

/** Fills kind, apiVersion, namespace (and name) from the path; a body that says otherwise is refused. */
function bodyForPath(
  body: Record<string, unknown>,
  kind: Kind,
  namespace: string,
  name?: string,
): Record<string, unknown> {
  if (body.apiVersion !== undefined && body.apiVersion !== API_GROUP_VERSION)
    throw badRequest(`apiVersion ${JSON.stringify(body.apiVersion)} is not ${API_GROUP_VERSION}`);
  if (body.kind !== undefined && body.kind !== kind)
    throw badRequest(`the body's kind ${JSON.stringify(body.kind)} does not match the path (${kind})`);
  if (body.metadata !== undefined && !isPlainObject(body.metadata))
    throw badRequest('metadata must be an object');
  const metadata = { ...((body.metadata as Record<string, unknown> | undefined) ?? {}) };
  if (metadata.namespace !== undefined && metadata.namespace !== namespace)
    throw badRequest(
      `the body's namespace ${JSON.stringify(metadata.namespace)} does not match the path (${namespace})`,
    );
  metadata.namespace = namespace;
  if (name !== undefined) {
    if (metadata.name !== undefined && metadata.name !== name)
      throw badRequest(`the body's name ${JSON.stringify(metadata.name)} does not match the path (${name})`);
    metadata.name = name;
  }
  return { ...body, apiVersion: API_GROUP_VERSION, kind, metadata };
}

async function readOptionalJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const length = request.headers['content-length'];
  const chunked = request.headers['transfer-encoding'] !== undefined;
  if (!chunked && (length === undefined || length === '0')) {
    request.resume();
    return {};
  }
  return readJsonObject(request);
}

function deleteOptions(body: Record<string, unknown>, query: URLSearchParams): DeleteOptions {
  const policy = optionalParameter(query, 'propagationPolicy') ?? body.propagationPolicy;
  if (policy !== undefined && !PROPAGATION_POLICIES.includes(policy as PropagationPolicy))
    throw badRequest(`propagationPolicy must be one of ${PROPAGATION_POLICIES.join(', ')}`);
  const preconditions = body.preconditions;
  if (preconditions !== undefined && !isPlainObject(preconditions))
    throw badRequest('preconditions must be an object');
  const options: DeleteOptions = {};
  if (policy !== undefined) options.propagationPolicy = policy as PropagationPolicy;
  if (preconditions !== undefined) {
    const { uid, resourceVersion } = preconditions as Record<string, unknown>;
    if (
      (uid !== undefined && typeof uid !== 'string') ||
      (resourceVersion !== undefined && typeof resourceVersion !== 'string')
    )
      throw badRequest('preconditions.uid and preconditions.resourceVersion must be strings');
    options.preconditions = {
      uid: uid as string | undefined,
      resourceVersion: resourceVersion as string | undefined,
    };
  }
  return options;
}

const PATCH_TYPES = new Set(['application/merge-patch+json', 'application/json']);

function checkPatchType(request: IncomingMessage): void {
  const type = (request.headers['content-type'] ?? 'application/merge-patch+json').split(';')[0].trim();
  if (!PATCH_TYPES.has(type)) {
    throw new HornbillError(
      'MANAGER_UNSUPPORTED_MEDIA_TYPE',
      `PATCH takes a JSON merge patch (application/merge-patch+json), not ${type}`,
      { contentType: type },
    );
  }
}

/** involvedObject.kind=…,involvedObject.name=…,involvedObject.uid=… */
function eventFieldSelector(query: URLSearchParams): EventListOptions['involvedObject'] {
  const selector = optionalParameter(query, 'fieldSelector');
  if (selector === undefined) return undefined;
  const involved: Record<string, string> = {};
  for (const part of selector.split(',')) {
    const match = /^involvedObject\.(kind|name|uid)==?(.*)$/.exec(part.trim());
    if (match === null)
      throw badRequest(
        `fieldSelector supports involvedObject.kind, .name and .uid, not ${JSON.stringify(part)}`,
      );
    involved[match[1]] = match[2];
  }
  return involved;
}

/** What addResourceApi gives back: a way to end every open watch stream cleanly (shutdown). */
export interface ResourceApi {
  /** Ends every open watch (each stream gets its end) and resolves when they have ended. */
  closeWatches(): Promise<void>;
}

export function addResourceApi(router: HttpRouter, options: ResourceApiOptions): ResourceApi {
  const { store } = options;
  const maxWatches = options.maxWatches ?? DEFAULT_MAX_WATCHES;
  let watches = 0;
  const openWatches = new Map<{ close(): void }, Promise<void>>();
  const namespaced = `${RESOURCE_API_PREFIX}/namespaces/:namespace/:plural`;

  router.route('GET', RESOURCE_API_PREFIX, async ({ response }) => {
    sendJson(response, 200, {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: API_GROUP_VERSION,
      resources: KINDS.map((kind) => {
        const definition = KIND_DEFINITIONS[kind];
        return {
          name: definition.plural,
          singularName: definition.singular,
          namespaced: true,
          kind,
          shortNames: definition.shortNames,
          verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        };
      }),
    });
  });

  const listOrWatch = async (context: RouteContext, namespace: string | undefined) => {
    const kind = kindOf(context.parameters.plural);
    const labelSelector = optionalParameter(context.query, 'labelSelector');
    if (booleanParameter(context.query, 'watch')) {
      const resourceVersion = optionalParameter(context.query, 'resourceVersion');
      await streamWatch(context, kind, { namespace, labelSelector, resourceVersion });
      return;
    }
    const list = await store.list(kind, { namespace, labelSelector });
    sendJson(context.response, 200, {
      apiVersion: API_GROUP_VERSION,
      kind: `${kind}List`,
      metadata: { resourceVersion: list.resourceVersion },
      items: list.items,
    });
  };

  const streamWatch = async (
    { request, response }: RouteContext,
    kind: Kind,
    watchOptions: { namespace?: string; labelSelector?: string; resourceVersion?: string },
  ) => {
    if (watches >= maxWatches) {
      throw new HornbillError('MANAGER_LIMIT_REACHED', `${maxWatches} watches are open already`, {
        maxWatches,
      });
    }
    watches++;
    options.onWatchCount?.(1);
    const watch = store.watch(kind, watchOptions);
    let ended = () => {};
    openWatches.set(
      watch,
      new Promise<void>((resolve) => {
        ended = resolve;
      }),
    );
    const end = () => watch.close();
    request.once('close', end);
    response.once('close', end);
    response.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache' });
    response.flushHeaders();
    try {
      for await (const event of watch) {
        if (!writeLine(response, { type: event.type, object: event.object })) await drained(response);
        if (response.destroyed) break;
      }
    } catch (error) {
      if (!response.destroyed) writeLine(response, { type: 'ERROR', object: toWireError(error) });
    } finally {
      watches--;
      openWatches.delete(watch);
      options.onWatchCount?.(-1);
      watch.close();
      request.off('close', end);
      if (!response.destroyed) response.end();
      ended();
    }
  };

  router.route('GET', `${RESOURCE_API_PREFIX}/:plural`, (context) => listOrWatch(context, undefined));
  router.route('GET', namespaced, (context) => listOrWatch(context, context.parameters.namespace));

  router.route('POST', namespaced, async ({ request, response, parameters }) => {
    const kind = kindOf(parameters.plural);
    const body = bodyForPath(await readJsonObject(request), kind, parameters.namespace);
    sendJson(response, 201, await store.create(body as never));
  });

  const objectRoutes = (suffix: string, status: boolean) => {
    const pattern = `${namespaced}/:name${suffix}`;
    const keyOf = (parameters: Record<string, string>) => ({
      kind: kindOf(parameters.plural),
      namespace: parameters.namespace,
      name: parameters.name,
    });
    router.route('GET', pattern, async ({ response, parameters }) => {
      sendJson(response, 200, await store.get(keyOf(parameters)));
    });
    router.route('PUT', pattern, async ({ request, response, parameters }) => {
      const key = keyOf(parameters);
      const body = bodyForPath(await readJsonObject(request), key.kind, key.namespace, key.name);
      const result = status ? await store.updateStatus(body as never) : await store.update(body as never);
      sendJson(response, 200, result);
    });
    router.route('PATCH', pattern, async ({ request, response, parameters }) => {
      checkPatchType(request);
      const key = keyOf(parameters);
      const patch = await readJsonObject(request);
      const result = await store.patch(key, patch, status ? { subresource: 'status' } : {});
      sendJson(response, 200, result);
    });
  };
  objectRoutes('', false);
  objectRoutes('/status', true);

  router.route('DELETE', `${namespaced}/:name`, async ({ request, response, parameters, query }) => {
    const key = { kind: kindOf(parameters.plural), namespace: parameters.namespace, name: parameters.name };
    const result = await store.delete(key, deleteOptions(await readOptionalJson(request), query));
    sendJson(response, result.removed ? 200 : 202, result.object);
  });

  const listEvents = async ({ response, query }: RouteContext, namespace: string | undefined) => {
    const items = await store.listEvents({ namespace, involvedObject: eventFieldSelector(query) });
    sendJson(response, 200, { apiVersion: 'v1', kind: 'EventList', metadata: {}, items });
  };
  router.route('GET', '/api/v1/events', (context) => listEvents(context, undefined));
  router.route('GET', '/api/v1/namespaces/:namespace/events', (context) =>
    listEvents(context, context.parameters.namespace),
  );
  router.route('POST', '/api/v1/namespaces/:namespace/events', async ({ request, response, parameters }) => {
    const body = await readJsonObject(request);
    if (!isPlainObject(body.involvedObject)) throw badRequest('involvedObject must be an object');
    const involvedObject = { ...body.involvedObject };
    if (involvedObject.namespace !== undefined && involvedObject.namespace !== parameters.namespace)
      throw badRequest("involvedObject.namespace does not match the path's namespace");
    involvedObject.namespace = parameters.namespace;
    const input = { ...body, involvedObject } as unknown as EventInput;
    sendJson(response, 201, await store.recordEvent(input));
  });

  options.log('debug', 'resource API routes added', {
    prefix: RESOURCE_API_PREFIX,
    group: API_GROUP,
    version: API_VERSION,
  });
  return {
    closeWatches: async () => {
      const ending = [...openWatches.values()];
      for (const watch of openWatches.keys()) watch.close();
      await Promise.all(ending);
    },
  };
}

function writeLine(response: ServerResponse, value: unknown): boolean {
  return response.write(`${JSON.stringify(value)}\n`);
}

function drained(response: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      response.off('drain', done);
      response.off('close', done);
      resolve();
    };
    response.once('drain', done);
    response.once('close', done);
  });
}
