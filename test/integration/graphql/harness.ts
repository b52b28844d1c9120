/**
 * A GraphQL server over an embedded store in a temporary folder, mounted on a plain
 * node:http server at /graphql, with a token of each scope — what the GraphQL tests run
 * against.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createGraphQLServer, type GraphQLServer, TokenStore } from '../../../src/graphql/index.ts';
import {
  DEFAULT_NAMESPACE,
  type EmbeddedResourceStore,
  openEmbeddedStore,
} from '../../../src/resources/index.ts';

export interface Harness {
  store: EmbeddedResourceStore;
  namespace: string;
  url: string;
  port: number;
  tokens: { read: string; write: string; admin: string };
  graphql: GraphQLServer;
  server: http.Server;
  logs: Record<string, unknown>[];
  /** POSTs a GraphQL request; the parsed JSON body and HTTP status. */
  request(
    query: string,
    options?: { variables?: Record<string, unknown>; token?: string; operationName?: string },
  ): Promise<{ status: number; body: GraphQLResponse }>;
  close(): Promise<void>;
}

export interface GraphQLResponse {
  // biome-ignore lint/suspicious/noExplicitAny: response shapes are checked by the assertions
  data?: Record<string, any> | null;
  errors?: { message: string; extensions?: { code?: string; field?: string } }[];
}

export async function startHarness(): Promise<Harness> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'hornbill-graphql-'));
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  const tokenStore = await TokenStore.open(path.join(directory, 'api-tokens.json'));
  const tokens = {
    read: await tokenStore.create('reader', 'read'),
    write: await tokenStore.create('writer', 'write'),
    admin: await tokenStore.create('administrator', 'admin'),
  };
  const logs: Record<string, unknown>[] = [];
  const namespace = DEFAULT_NAMESPACE;
  const graphql = createGraphQLServer({
    store,
    namespace,
    tokens: tokenStore,
    log: (record) => logs.push(record),
  });
  const server = http.createServer((request, response) => {
    if ((request.url ?? '').startsWith('/graphql')) graphql.handle(request, response);
    else {
      response.writeHead(404);
      response.end();
    }
  });
  graphql.attachWebSocket(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}/graphql`;
  return {
    store,
    namespace,
    url,
    port,
    tokens,
    graphql,
    server,
    logs,
    async request(query, options = {}) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
      const response = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables: options.variables, operationName: options.operationName }),
      });
      const text = await response.text();
      return { status: response.status, body: JSON.parse(text) as GraphQLResponse };
    },
    async close() {
      await graphql.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      await rm(directory, { recursive: true, force: true });
    },
  };
}
