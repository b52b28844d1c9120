/**
 * A small HTTP server for `/metrics` (Prometheus text format) and `/healthz`, used by the
 * instance manager. Anything else is 404; only GET and HEAD are answered; a failing
 * collection is a 500 with a coded message, never a crash.
 */
import http from 'node:http';
import type { Registry } from 'prom-client';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export interface MetricsServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(options: {
  host: string;
  port: number;
  registry: Registry;
  log: Logger;
}): Promise<MetricsServer> {
  const server = http.createServer((request, response) => {
    const url = request.url ?? '/';
    const pathname = url.split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
        .end('method not allowed\n');
      return;
    }
    if (pathname === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (pathname !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    options.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
      (error: unknown) => {
        options.log('error', 'metrics collection failed', { error: String(error) });
        response
          .writeHead(500, { 'content-type': 'text/plain' })
          .end('METRICS_COLLECTION_FAILED: the metrics could not be collected; see the process log\n');
      },
    );
  });
  server.on('clientError', (_error, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) =>
      reject(
        new HornbillError(
          'METRICS_LISTEN_FAILED',
          `cannot listen on ${options.host}:${options.port}: ${error.message}`,
          {
            host: options.host,
            port: options.port,
          },
        ),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as { port: number };
  return {
    host: options.host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
