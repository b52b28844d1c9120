/**
 * The manager's HTTP server, the same in both modes: `/healthz` (what `health()` says),
 * `/metrics`, `/graphql` (queries, mutations, subscriptions over SSE and WebSockets), and —
 * in the embedded mode only — the resource API (resource-api.ts). In Kubernetes mode the
 * API server is the resource API (with its authentication and RBAC); the manager answers
 * `/apis/…` and `/api/…` there with 404 MANAGER_RESOURCE_API_DISABLED, so that nothing
 * reaches the objects around RBAC through an unauthenticated port.
 *
 * ```ts
 * const http = await serveManagerHttp({ store, namespace, metrics, log, listen, tokensFile,
 *   resourceApi: true, health: () => ({ store: 'embedded', controllers: true }) });
 * await http.close();   // open watches end, then the server closes
 * ```
 */
import type http from 'node:http';
import { HornbillError } from '../errors.ts';
import { createGraphQLServer, GRAPHQL_PATH, TokenStore } from '../graphql/index.ts';
import type { Logger, LogLevel } from '../logging.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import { sendError, sendJson } from './http-common.ts';
import type { ManagerMetrics } from './metrics.ts';
import { addResourceApi } from './resource-api.ts';
import { HttpRouter, listenHttp } from './router.ts';

export interface ManagerHttpOptions {
  store: ResourceStore;
  namespace: string;
  metrics: ManagerMetrics;
  log: Logger;
  listen: { host: string; port: number };
  /** The GraphQL API's token file (hashed tokens); absent file: no tokens. */
  tokensFile: string;
  /** Serve the resource API (embedded mode) or refuse it (Kubernetes mode). */
  resourceApi: boolean;
  /** What /healthz adds to `{ok: true}`. */
  health(): Record<string, unknown>;
}

export interface ManagerHttp {
  url: string;
  host: string;
  port: number;
  router: HttpRouter;
  httpServer: http.Server;
  /** Ends open watches and subscriptions, then closes the server. Idempotent. */
  close(): Promise<void>;
}

/** The controllers and the GraphQL server log records (`{level, message, …}`); this files them. */
export function recordLogger(log: Logger, source = 'controllers'): (record: Record<string, unknown>) => void {
  const levels = new Set(['debug', 'info', 'warn', 'error']);
  return (record) => {
    const { level, message, ...details } = record;
    log(
      typeof level === 'string' && levels.has(level) ? (level as LogLevel) : 'info',
      typeof message === 'string' ? message : source,
      { source, ...details },
    );
  };
}

/** What the manager answers under /apis and /api in Kubernetes mode. */
function resourceApiDisabled(request: http.IncomingMessage, response: http.ServerResponse): void {
  request.resume();
  sendError(
    response,
    new HornbillError(
      'MANAGER_RESOURCE_API_DISABLED',
      'in Kubernetes mode the resource API is the API server: use kubectl (kubectl -n hornbill-system get volumes.hornbill.io) or /graphql',
      { path: request.url ?? '' },
    ),
  );
}

export async function serveManagerHttp(options: ManagerHttpOptions): Promise<ManagerHttp> {
  const { store, namespace, metrics, log } = options;
  const router = new HttpRouter({ log });
  router.observe((method, route, status, seconds) => metrics.observeRequest(method, route, status, seconds));
  router.route('GET', '/healthz', async ({ response }) => {
    sendJson(response, 200, { ok: true, ...options.health() });
  });
  router.route('GET', '/metrics', async ({ response }) => {
    const { contentType, body } = await metrics.render();
    response.writeHead(200, { 'content-type': contentType });
    response.end(body);
  });
  const api = options.resourceApi
    ? addResourceApi(router, { store, log, onWatchCount: (delta) => metrics.watchesOpen.inc(delta) })
    : undefined;
  if (!options.resourceApi) {
    router.mount('/apis', resourceApiDisabled); // RESOURCE_API_PREFIX and every other group
    router.mount('/api', resourceApiDisabled); // core/v1 Events
  }
  const tokens = await TokenStore.open(options.tokensFile);
  const graphql = createGraphQLServer({ store, namespace, tokens, log: recordLogger(log, 'graphql') });
  router.mount(GRAPHQL_PATH, (request, response) => graphql.handle(request, response));
  let listening: Awaited<ReturnType<typeof listenHttp>>;
  try {
    listening = await listenHttp(router, options.listen);
  } catch (error) {
    await graphql.close();
    throw error;
  }
  graphql.attachWebSocket(listening.server);
  const host = listening.host.includes(':') ? `[${listening.host}]` : listening.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${listening.port}`,
    host: listening.host,
    port: listening.port,
    router,
    httpServer: listening.server,
    close: () => {
      closing ??= (async () => {
        await api?.closeWatches();
        await graphql.close();
        await listening.close();
      })();
      return closing;
    },
  };
}
