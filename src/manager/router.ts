/**
 * The manager's HTTP server: a small router over node:http, so that the resource API,
 * /healthz, /metrics and later /graphql each add their routes without knowing of the others.
 *
 * ```ts
 * const router = new HttpRouter({ log });
 * router.route('GET', '/healthz', async (context) => sendJson(context.response, 200, { ok: true }));
 * router.mount('/graphql', yogaListener);        // a whole prefix to another node listener
 * const server = await listenHttp(router, { host: '127.0.0.1', port: 9500 });
 * ```
 *
 * Patterns are paths whose segments may be `:name` parameters (one segment each, percent-
 * decoded). An unknown path is 404 MANAGER_ROUTE_NOT_FOUND, a known path with another method
 * 405 MANAGER_METHOD_NOT_ALLOWED; a handler that throws is answered by its error's code (and
 * logged when it is not a HornbillError). Handlers never crash the process.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HornbillError, isHornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { sendError } from './http-common.ts';

export interface RouteContext {
  request: IncomingMessage;
  response: ServerResponse;
  /** Values of the pattern's `:name` segments. */
  parameters: Record<string, string>;
  query: URLSearchParams;
}

export type RouteHandler = (context: RouteContext) => Promise<void>;
export type NodeListener = (request: IncomingMessage, response: ServerResponse) => void;

interface Route {
  method: string;
  segments: string[];
  /** The pattern, for metrics labels (bounded cardinality). */
  pattern: string;
  handler: RouteHandler;
}

/** Called after every answered request (metrics). */
export type RequestObserver = (method: string, route: string, status: number, seconds: number) => void;

export class HttpRouter {
  private readonly routes: Route[] = [];
  private readonly mounts: { prefix: string; listener: NodeListener }[] = [];
  private readonly log: Logger;
  private readonly observers: RequestObserver[] = [];

  constructor(options: { log: Logger }) {
    this.log = options.log;
  }

  route(method: string, pattern: string, handler: RouteHandler): void {
    this.routes.push({ method, segments: pathSegments(pattern), pattern, handler });
  }

  /** Every request whose path is `prefix` or starts with `prefix/` goes to `listener`. */
  mount(prefix: string, listener: NodeListener): void {
    this.mounts.push({ prefix, listener });
  }

  observe(observer: RequestObserver): void {
    this.observers.push(observer);
  }

  /** The node:http request listener. */
  readonly listener = (request: IncomingMessage, response: ServerResponse): void => {
    const started = process.hrtime.bigint();
    let routeLabel = 'unmatched';
    response.once('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      for (const observer of this.observers)
        observer(request.method ?? '', routeLabel, response.statusCode, seconds);
    });
    let url: URL;
    try {
      url = new URL(request.url ?? '/', 'http://manager');
    } catch {
      sendError(response, new HornbillError('MANAGER_BAD_REQUEST', 'the request URL cannot be parsed'));
      return;
    }
    const mount = this.mounts.find(
      ({ prefix }) => url.pathname === prefix || url.pathname.startsWith(`${prefix}/`),
    );
    if (mount !== undefined) {
      routeLabel = mount.prefix;
      mount.listener(request, response);
      return;
    }
    const match = this.match(request.method ?? 'GET', url.pathname);
    if (match instanceof HornbillError) {
      sendError(response, match);
      request.resume();
      return;
    }
    routeLabel = match.route.pattern;
    const context: RouteContext = {
      request,
      response,
      parameters: match.parameters,
      query: url.searchParams,
    };
    match.route.handler(context).catch((error: unknown) => {
      if (!isHornbillError(error)) {
        this.log('error', 'request failed', {
          method: request.method,
          path: url.pathname,
          error: (error as Error)?.stack ?? String(error),
        });
      }
      if (isHornbillError(error, 'MANAGER_BODY_TOO_LARGE')) response.setHeader('connection', 'close');
      sendError(response, error);
    });
  };

  private match(
    method: string,
    pathname: string,
  ): { route: Route; parameters: Record<string, string> } | HornbillError {
    const segments = pathSegments(pathname);
    let pathMatched = false;
    for (const route of this.routes) {
      const parameters = matchSegments(route.segments, segments);
      if (parameters === undefined) continue;
      pathMatched = true;
      if (route.method === method) return { route, parameters };
    }
    if (pathMatched) {
      return new HornbillError('MANAGER_METHOD_NOT_ALLOWED', `${method} is not allowed on ${pathname}`, {
        method,
        path: pathname,
      });
    }
    return new HornbillError('MANAGER_ROUTE_NOT_FOUND', `nothing is served at ${pathname}`, {
      path: pathname,
    });
  }
}

/** `/a/b/` → ['a', 'b', '']: empty segments stay, so that an empty name reaches the store's checks. */
function pathSegments(pathname: string): string[] {
  return pathname.split('/').slice(1);
}

function matchSegments(pattern: string[], segments: string[]): Record<string, string> | undefined {
  if (pattern.length !== segments.length) return undefined;
  const parameters: Record<string, string> = {};
  for (let index = 0; index < pattern.length; index++) {
    const expected = pattern[index];
    let actual: string;
    try {
      actual = decodeURIComponent(segments[index]);
    } catch {
      return undefined;
    }
    if (expected.startsWith(':')) parameters[expected.slice(1)] = actual;
    else if (expected !== actual) return undefined;
  }
  return parameters;
}

export interface ListeningServer {
  server: http.Server;
  host: string;
  port: number;
  /** Stops accepting, ends open connections (watches included), and resolves when closed. */
  close(): Promise<void>;
}

/** Listens on host:port (port 0: any free port); MANAGER_LISTEN_FAILED when it cannot. */
export async function listenHttp(
  router: HttpRouter,
  address: { host: string; port: number },
): Promise<ListeningServer> {
  const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 60_000 }, router.listener);
  server.headersTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new HornbillError(
          'MANAGER_LISTEN_FAILED',
          `cannot listen on ${address.host}:${address.port}: ${error.message}`,
          { host: address.host, port: address.port, errno: error.code },
        ),
      ),
    );
    server.listen(address.port, address.host, () => resolve());
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    host: address.host,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
