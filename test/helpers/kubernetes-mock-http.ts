/**
 * What the narrow mocks of Kubernetes API endpoints (kubernetes-lease-server.ts,
 * kubernetes-service-server.ts, kubernetes-pod-server.ts) share: an HTTP server on loopback
 * that parses JSON bodies, records `METHOD path` of every request, answers what a handler
 * returns, and a KubeConfig pointing at it (token auth, no TLS). They stand in for an API
 * server, which cannot run on this machine; each serves only the endpoints its client uses.
 *
 * ```ts
 * const api = await serveMockApi('pod-server', (method, url, body) => [200, {}], requests);
 * const core = api.kubeConfig.makeApiClient(CoreV1Api);
 * await api.close();
 * ```
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface MockApiServer {
  url: string;
  kubeConfig: KubeConfig;
  close(): Promise<void>;
}

/** A Kubernetes `Status` failure body. */
export function kubernetesFailure(
  code: number,
  reason: string,
  message: string,
  details?: Record<string, string>,
) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
    details,
  };
}

export async function serveMockApi(
  name: string,
  // biome-ignore lint/suspicious/noExplicitAny: a request body as the client sent it
  handle: (method: string, url: URL, body: any) => [number, object],
  requests: string[],
  options: { recordQuery?: boolean } = {},
): Promise<MockApiServer> {
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const method = request.method ?? 'GET';
      const url = new URL(request.url ?? '/', 'http://server');
      requests.push(`${method} ${url.pathname}${options.recordQuery === true ? url.search : ''}`);
      let body: unknown;
      try {
        body = chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        body = undefined;
      }
      const [code, answer] = handle(method, url, body);
      response.writeHead(code, { 'content-type': 'application/json' });
      response.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name, server: url, skipTLSVerify: true }],
    users: [{ name: 'tester', token: 'test-token' }],
    contexts: [{ name, cluster: name, user: 'tester' }],
    currentContext: name,
  });
  return {
    url,
    kubeConfig,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
