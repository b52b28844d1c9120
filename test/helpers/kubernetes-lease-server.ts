/**
 * A stand-in for the API server's coordination.k8s.io/v1 Lease endpoints, and nothing else:
 * no API server can run on this machine, and `kubernetesLeaseClient` must be tested over
 * HTTP with the semantics it relies on (test/contract/lease-client.contract.ts checks them,
 * and runs against a real API server too when KUBECONFIG is set):
 *
 * - GET    /apis/coordination.k8s.io/v1/namespaces/NS/leases/NAME → 200, or 404 NotFound
 * - POST   /apis/coordination.k8s.io/v1/namespaces/NS/leases      → 201, or 409 AlreadyExists
 * - PUT    …/leases/NAME → 200 with a new resourceVersion; 409 Conflict when the body's
 *   resourceVersion is not the current one (none given: unconditional, as for Leases); 404
 * - DELETE …/leases/NAME → 200 Status Success, or 404
 * - MicroTime fields (acquireTime, renewTime) must be RFC 3339 with six fractional digits (400)
 * - any other path → 404 without details (what the API server answers for an unknown type)
 *
 * resourceVersions come from one counter, as etcd's revision does.
 *
 * ```ts
 * const server = await startKubernetesLeaseServer();
 * t.after(() => server.close());
 * const lease = kubernetesLeaseClient(server.kubeConfig, { namespace: 'hornbill-system', name: 'x' });
 * ```
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubernetesFailure, serveMockApi } from './kubernetes-mock-http.ts';

// biome-ignore lint/suspicious/noExplicitAny: Lease objects are whatever JSON the client sent
type LeaseObject = Record<string, any>;

export interface KubernetesLeaseServer {
  url: string;
  /** A kubeconfig naming this server (bearer token `test-token`). */
  kubeConfig: KubeConfig;
  /** Writes that kubeconfig as a file (for KUBECONFIG / --kubeconfig) and returns its path. */
  writeKubeconfig(directory: string): string;
  /** The stored Leases by `namespace/name`. */
  readonly leases: Map<string, LeaseObject>;
  /** `METHOD path` of every request, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

const PREFIX = '/apis/coordination.k8s.io/v1/namespaces/';
const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

const status = kubernetesFailure;

export async function startKubernetesLeaseServer(): Promise<KubernetesLeaseServer> {
  const leases = new Map<string, LeaseObject>();
  const requests: string[] = [];
  let revision = 100;

  const handle = (method: string, url: URL, body: LeaseObject | undefined): [number, object] => {
    const pathname = url.pathname;
    const match = pathname.startsWith(PREFIX)
      ? /^([a-z0-9-]+)\/leases(?:\/([a-z0-9.-]+))?$/.exec(pathname.slice(PREFIX.length))
      : null;
    if (match === null)
      return [404, status(404, 'NotFound', 'the server could not find the requested resource')];
    const [, namespace, name] = match;
    const notFound = (leaseName: string) =>
      status(404, 'NotFound', `leases.coordination.k8s.io "${leaseName}" not found`, {
        name: leaseName,
        group: 'coordination.k8s.io',
        kind: 'leases',
      });
    const badTime = (object: LeaseObject | undefined) =>
      ['acquireTime', 'renewTime'].find((field) => {
        const value = object?.spec?.[field];
        return value !== undefined && value !== null && !MICRO_TIME.test(String(value));
      });
    const store = (leaseName: string, object: LeaseObject, previous?: LeaseObject): LeaseObject => {
      revision += 1;
      const stored = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: {
          name: leaseName,
          namespace,
          uid: previous?.metadata.uid ?? randomUUID(),
          resourceVersion: String(revision),
          creationTimestamp: previous?.metadata.creationTimestamp ?? new Date().toISOString(),
        },
        spec: { ...(object.spec ?? {}) },
      };
      leases.set(`${namespace}/${leaseName}`, stored);
      return stored;
    };
    if (name === undefined) {
      if (method === 'GET') {
        const items = [...leases.values()].filter((lease) => lease.metadata.namespace === namespace);
        return [200, { apiVersion: 'coordination.k8s.io/v1', kind: 'LeaseList', metadata: {}, items }];
      }
      if (method !== 'POST') return [405, status(405, 'MethodNotAllowed', `${method} is not allowed`)];
      const leaseName = body?.metadata?.name;
      if (typeof leaseName !== 'string')
        return [422, status(422, 'Invalid', 'metadata.name: Required value')];
      if (leases.has(`${namespace}/${leaseName}`))
        return [
          409,
          status(409, 'AlreadyExists', `leases.coordination.k8s.io "${leaseName}" already exists`, {
            name: leaseName,
            group: 'coordination.k8s.io',
            kind: 'leases',
          }),
        ];
      const field = badTime(body);
      if (field !== undefined) return [400, status(400, 'BadRequest', `spec.${field}: not a MicroTime`)];
      return [201, store(leaseName, body as LeaseObject)];
    }
    const current = leases.get(`${namespace}/${name}`);
    if (method === 'GET') return current === undefined ? [404, notFound(name)] : [200, current];
    if (method === 'DELETE') {
      if (current === undefined) return [404, notFound(name)];
      leases.delete(`${namespace}/${name}`);
      return [200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name } }];
    }
    if (method !== 'PUT') return [405, status(405, 'MethodNotAllowed', `${method} is not allowed`)];
    if (current === undefined) return [404, notFound(name)];
    if (body?.metadata?.name !== name)
      return [400, status(400, 'BadRequest', 'the name of the object does not match')];
    const wanted = body.metadata.resourceVersion;
    if (wanted !== undefined && wanted !== current.metadata.resourceVersion)
      return [
        409,
        status(
          409,
          'Conflict',
          `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name, group: 'coordination.k8s.io', kind: 'leases' },
        ),
      ];
    const field = badTime(body);
    if (field !== undefined) return [400, status(400, 'BadRequest', `spec.${field}: not a MicroTime`)];
    return [200, store(name, body, current)];
  };

  const api = await serveMockApi('lease-server', handle, requests);
  const { url, kubeConfig } = api;
  return {
    url,
    kubeConfig,
    writeKubeconfig(directory) {
      const file = path.join(directory, 'kubeconfig.json');
      const text = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'lease-server', cluster: { server: url, 'insecure-skip-tls-verify': true } }],
        users: [{ name: 'tester', user: { token: 'test-token' } }],
        contexts: [{ name: 'lease-server', context: { cluster: 'lease-server', user: 'tester' } }],
        'current-context': 'lease-server',
      };
      fs.writeFileSync(file, JSON.stringify(text));
      return file;
    },
    leases,
    requests,
    close: () => api.close(),
  };
}
