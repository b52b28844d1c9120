/**
 * Hornbill's GraphQL API (graphql-yoga + Pothos) as a module the manager's HTTP server
 * mounts at /graphql: queries, mutations (each a resource write the controllers act on),
 * and subscriptions over SSE and graphql-ws. docs/graphql.md describes it for users.
 *
 * ```ts
 * const tokens = await TokenStore.open(path.join(dataDirectory, 'api-tokens.json'));
 * const graphql = createGraphQLServer({ store, namespace: 'hornbill-system', tokens, log });
 * router.mount('/graphql', (request, response) => graphql.handle(request, response));
 * graphql.attachWebSocket(httpServer);   // graphql-ws on ws://host:port/graphql
 * await graphql.close();                 // ends subscriptions and WebSockets
 * ```
 *
 * Limits: request bodies of at most MAX_BODY_BYTES with a Content-Length; 10,000 tokens per
 * document; depth 12; cost 100,000 (limits.ts); `first` at most 500; 256 subscriptions.
 * CORS is closed (no CORS headers); GraphiQL answers browsers' GET /graphql.
 */
import type http from 'node:http';
import type { ExecutionArgs, execute, GraphQLError, subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import type { ResourceStore } from '../resources/index.ts';
import { type GraphQLContext, RequestLoader } from './context.ts';
import { toClientError, useHornbillGuards } from './guards.ts';
import { hornbillSchema } from './schema.ts';
import { EventPoller, SubscriptionRegistry, type SubscriptionServices } from './subscriptions.ts';
import type { TokenStore } from './tokens.ts';

export { TOKEN_SCOPES, type TokenScope } from './context.ts';
export { printHornbillSchema } from './schema.ts';
export { TokenStore } from './tokens.ts';

export const GRAPHQL_PATH = '/graphql';
export const MAX_BODY_BYTES = 1024 * 1024;
export const MAX_WEBSOCKET_CONNECTIONS = 128;

export interface GraphQLOptions {
  store: ResourceStore;
  /** Where Hornbill's resources live: 'hornbill-system'. */
  namespace: string;
  tokens: TokenStore;
  log: (record: Record<string, unknown>) => void;
}

export interface GraphQLServer {
  /** Answers one request to /graphql (a node:http listener). */
  handle(request: http.IncomingMessage, response: http.ServerResponse): void;
  /** Serves graphql-ws (subprotocol graphql-transport-ws) on WebSocket upgrades of /graphql. */
  attachWebSocket(server: http.Server): void;
  /** Ends every subscription and WebSocket. */
  close(): Promise<void>;
  /** Open subscriptions (SSE and graphql-ws) and WebSocket connections. */
  stats(): { subscriptions: number; webSockets: number };
}

/** The bearer token of an Authorization header value, or undefined. */
function bearerToken(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header);
  return match?.[1];
}

function contextFor(
  authorization: string | null | undefined,
  options: GraphQLOptions,
  services: SubscriptionServices,
): GraphQLContext {
  const presented =
    authorization === null || authorization === undefined || authorization === '' ? undefined : authorization;
  const token = bearerToken(presented);
  const identity = token === undefined ? undefined : options.tokens.verify(token);
  return {
    store: options.store,
    namespace: options.namespace,
    scope: identity?.scope,
    tokenName: identity?.name,
    tokenRejected: presented !== undefined && identity === undefined,
    loader: new RequestLoader(options.store, options.namespace),
    log: options.log,
    services,
  };
}

function sendJsonError(response: http.ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ errors: [{ message, extensions: { code: 'GRAPHQL_BAD_REQUEST' } }] });
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  response.end(body);
}

export function createGraphQLServer(options: GraphQLOptions): GraphQLServer {
  const { log } = options;
  const services: SubscriptionServices = {
    registry: new SubscriptionRegistry(),
    events: new EventPoller(options.store, options.namespace, log),
  };
  const yoga = createYoga<{ authorization?: string }, GraphQLContext>({
    schema: hornbillSchema(),
    graphqlEndpoint: GRAPHQL_PATH,
    cors: false,
    multipart: false,
    batching: false,
    landingPage: false,
    graphiql: { title: 'Hornbill GraphQL' },
    logging: {
      debug: () => {},
      info: () => {},
      warn: (...parts: unknown[]) =>
        log({ level: 'warn', component: 'graphql', message: parts.map(String).join(' ') }),
      // Errors that reach clients are coded and logged by toClientError when unexpected.
      error: (...parts: unknown[]) =>
        log({ level: 'debug', component: 'graphql', message: parts.map(String).join(' ') }),
    },
    maskedErrors: { maskError: (error) => toClientError(error, log) },
    context: (initial) => {
      const request = (initial as { request?: Request }).request;
      const authorization = initial.authorization ?? request?.headers.get('authorization');
      return contextFor(authorization, options, services);
    },
    plugins: [useHornbillGuards()],
  });

  let webSockets: WebSocketServer | undefined;
  let upgradeListener:
    | ((request: http.IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => void)
    | undefined;
  let attachedServer: http.Server | undefined;

  function handle(request: http.IncomingMessage, response: http.ServerResponse): void {
    if (request.method === 'POST') {
      const length = request.headers['content-length'];
      if (length === undefined) {
        sendJsonError(response, 411, 'a POST to /graphql needs a Content-Length');
        request.resume();
        return;
      }
      if (!/^\d{1,12}$/.test(length) || Number(length) > MAX_BODY_BYTES) {
        sendJsonError(response, 413, `the request body is larger than ${MAX_BODY_BYTES} bytes`);
        response.on('finish', () => request.destroy());
        return;
      }
      const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/json' && type !== 'application/graphql-response+json') {
        sendJsonError(response, 415, 'a POST to /graphql must be application/json');
        request.resume();
        return;
      }
    }
    Promise.resolve(yoga.requestListener(request, response)).catch((error: unknown) => {
      log({ level: 'error', component: 'graphql', message: 'request failed', error: String(error) });
      if (!response.headersSent) sendJsonError(response, 500, 'Unexpected error.');
      else response.destroy();
    });
  }

  function attachWebSocket(server: http.Server): void {
    if (webSockets !== undefined) throw new Error('attachWebSocket was called twice');
    const sockets = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
    webSockets = sockets;
    attachedServer = server;
    upgradeListener = (request, socket, head) => {
      const path = (request.url ?? '').split('?')[0];
      if (path !== GRAPHQL_PATH) {
        // Another listener may serve it; with none, refuse.
        if (server.listenerCount('upgrade') === 1) socket.destroy();
        return;
      }
      if (sockets.clients.size >= MAX_WEBSOCKET_CONNECTIONS) {
        socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n');
        return;
      }
      sockets.handleUpgrade(request, socket, head, (client) => sockets.emit('connection', client, request));
    };
    server.on('upgrade', upgradeListener);
    useServer<Record<string, unknown> | undefined>(
      {
        execute: (args) => (args.rootValue as { execute: typeof execute }).execute(args),
        subscribe: (args) => (args.rootValue as { subscribe: typeof subscribe }).subscribe(args),
        onSubscribe: async (context, _id, payload) => {
          const fromParameters =
            context.connectionParams?.authorization ?? context.connectionParams?.Authorization;
          const authorization =
            typeof fromParameters === 'string' ? fromParameters : context.extra.request.headers.authorization;
          const enveloped = yoga.getEnveloped({ authorization, request: undefined, params: payload });
          let document: ReturnType<typeof enveloped.parse>;
          try {
            document = enveloped.parse(payload.query);
          } catch (error) {
            return [toClientError(error, log)];
          }
          const errors = enveloped.validate(enveloped.schema, document);
          if (errors.length > 0) return errors.map((error: GraphQLError) => toClientError(error, log));
          const args: ExecutionArgs = {
            schema: enveloped.schema,
            operationName: payload.operationName,
            document,
            variableValues: payload.variables,
            contextValue: await enveloped.contextFactory(),
            rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
          };
          return args;
        },
      },
      sockets,
    );
  }

  async function close(): Promise<void> {
    services.registry.closeAll();
    services.events.stop();
    if (attachedServer !== undefined && upgradeListener !== undefined)
      attachedServer.off('upgrade', upgradeListener);
    if (webSockets !== undefined) {
      for (const client of webSockets.clients) client.terminate();
      await new Promise<void>((resolve) => webSockets?.close(() => resolve()));
    }
    await yoga.dispose?.();
  }

  function stats() {
    return { subscriptions: services.registry.size, webSockets: webSockets?.clients.size ?? 0 };
  }

  return { handle, attachWebSocket, close, stats };
}
