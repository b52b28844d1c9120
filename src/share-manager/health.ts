/**
 * The share manager's health endpoint, for the ShareManager controller and for Kubernetes
 * probes: `GET /healthz` on `--address`:`--health-port`.
 *
 * 200 with `{ healthy: true, … }` while the export is served and the lease held; 503 with
 * the same document (`healthy: false`, `state` says why) otherwise. Only GET and HEAD are
 * served; a request body is never read. The document is what `status()` returns.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { HornbillError } from '../errors.ts';

export interface HealthDocument {
  healthy: boolean;
  [key: string]: unknown;
}

export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(
  host: string,
  port: number,
  status: () => HealthDocument,
): Promise<HealthServer> {
  const server = http.createServer((request, response) => {
    const url = request.url ?? '/';
    const send = (code: number, body: unknown) => {
      const text = `${JSON.stringify(body)}\n`;
      response.writeHead(code, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      response.end(request.method === 'HEAD' ? undefined : text);
    };
    if (url !== '/healthz' && !url.startsWith('/healthz?')) return send(404, { error: 'not found' });
    if (request.method !== 'GET' && request.method !== 'HEAD')
      return send(405, { error: 'method not allowed' });
    const document = status();
    send(document.healthy ? 200 : 503, document);
  });
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  server.maxConnections = 64;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new HornbillError(
          error.code === 'EADDRINUSE' ? 'SHARE_MANAGER_PORT_IN_USE' : 'SHARE_MANAGER_CONFIG_INVALID',
          `the health endpoint cannot listen on ${host}:${port}: ${error.message}`,
          { host, port, field: 'health-port' },
        ),
      );
    });
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
