/**
 * A stand-in for the API server's core/v1 Service and discovery.k8s.io/v1 EndpointSlice
 * endpoints, and nothing else — what `kubernetesShareManagerServices`
 * (src/controllers/share-manager/kubernetes-services.ts) uses; no API server can run on this
 * machine (kubernetes-lease-server.ts does the same for Leases):
 *
 * - GET    /api/v1/namespaces/NS/services/NAME, /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices/NAME → 200, or 404 NotFound
 * - POST   …/services, …/endpointslices → 201, or 409 AlreadyExists; a Service of type
 *   ClusterIP gets the next address of 10.96.0.0/16 as spec.clusterIP; 422 without ports
 *   (Service) or without addressType (EndpointSlice)
 * - PUT    …/NAME → 200 with a new resourceVersion; 409 Conflict when the body's
 *   resourceVersion is not the current one; 404; a Service's clusterIP cannot change (422)
 * - DELETE …/NAME → 200 Status Success, or 404
 * - any other path → 404 without details
 *
 * resourceVersions come from one counter, as etcd's revision does.
 *
 * ```ts
 * const server = await startKubernetesServiceServer();
 * t.after(() => server.close());
 * const services = kubernetesShareManagerServices(server.kubeConfig, { namespace, store });
 * server.services.get('hornbill-system/share-manager-vol')?.spec.clusterIP;
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubernetesFailure, serveMockApi } from './kubernetes-mock-http.ts';

// biome-ignore lint/suspicious/noExplicitAny: objects are whatever JSON the client sent
type KubernetesObject = Record<string, any>;

export interface KubernetesServiceServer {
  url: string;
  kubeConfig: KubeConfig;
  /** Stored Services and EndpointSlices by `namespace/name`. */
  readonly services: Map<string, KubernetesObject>;
  readonly endpointSlices: Map<string, KubernetesObject>;
  /** `METHOD path` of every request, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

const ROUTES = [
  { prefix: '/api/v1/namespaces/', plural: 'services', kind: 'Service', group: '', apiVersion: 'v1' },
  {
    prefix: '/apis/discovery.k8s.io/v1/namespaces/',
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    apiVersion: 'discovery.k8s.io/v1',
  },
] as const;

const failure = kubernetesFailure;

export async function startKubernetesServiceServer(): Promise<KubernetesServiceServer> {
  const services = new Map<string, KubernetesObject>();
  const endpointSlices = new Map<string, KubernetesObject>();
  const requests: string[] = [];
  let revision = 500;
  let nextClusterIP = 10;

  const handle = (method: string, url: URL, body: KubernetesObject | undefined): [number, object] => {
    const pathname = url.pathname;
    for (const route of ROUTES) {
      if (!pathname.startsWith(route.prefix)) continue;
      const match = new RegExp(`^([a-z0-9-]+)/${route.plural}(?:/([a-z0-9.-]+))?$`).exec(
        pathname.slice(route.prefix.length),
      );
      if (match === null) continue;
      const [, namespace, name] = match;
      const objects = route.kind === 'Service' ? services : endpointSlices;
      const resource = route.group === '' ? route.plural : `${route.plural}.${route.group}`;
      const details = (objectName: string) => ({ name: objectName, group: route.group, kind: route.plural });
      const notFound = (objectName: string) =>
        failure(404, 'NotFound', `${resource} "${objectName}" not found`, details(objectName));
      const invalid = (message: string) => failure(422, 'Invalid', message);
      const store = (objectName: string, object: KubernetesObject, previous?: KubernetesObject) => {
        revision += 1;
        const stored = {
          ...object,
          apiVersion: route.apiVersion,
          kind: route.kind,
          metadata: {
            ...object.metadata,
            name: objectName,
            namespace,
            uid: previous?.metadata.uid ?? randomUUID(),
            resourceVersion: String(revision),
            creationTimestamp: previous?.metadata.creationTimestamp ?? new Date().toISOString(),
          },
        };
        objects.set(`${namespace}/${objectName}`, stored);
        return stored;
      };
      const check = (object: KubernetesObject): string | undefined => {
        if (route.kind === 'Service')
          return Array.isArray(object.spec?.ports) && object.spec.ports.length > 0
            ? undefined
            : 'spec.ports: Required value';
        return typeof object.addressType === 'string' ? undefined : 'addressType: Required value';
      };
      if (name === undefined) {
        if (method !== 'POST') return [405, failure(405, 'MethodNotAllowed', `${method} is not allowed`)];
        const objectName = body?.metadata?.name;
        if (typeof objectName !== 'string') return [422, invalid('metadata.name: Required value')];
        if (objects.has(`${namespace}/${objectName}`))
          return [
            409,
            failure(409, 'AlreadyExists', `${resource} "${objectName}" already exists`, details(objectName)),
          ];
        const problem = check(body as KubernetesObject);
        if (problem !== undefined) return [422, invalid(problem)];
        const created = { ...body } as KubernetesObject;
        if (
          route.kind === 'Service' &&
          (created.spec.type ?? 'ClusterIP') === 'ClusterIP' &&
          !created.spec.clusterIP
        ) {
          created.spec = { ...created.spec, clusterIP: `10.96.0.${nextClusterIP}` };
          nextClusterIP += 1;
        }
        return [201, store(objectName, created)];
      }
      const current = objects.get(`${namespace}/${name}`);
      if (method === 'GET') return current === undefined ? [404, notFound(name)] : [200, current];
      if (method === 'DELETE') {
        if (current === undefined) return [404, notFound(name)];
        objects.delete(`${namespace}/${name}`);
        return [
          200,
          { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name } },
        ];
      }
      if (method !== 'PUT') return [405, failure(405, 'MethodNotAllowed', `${method} is not allowed`)];
      if (current === undefined) return [404, notFound(name)];
      if (body?.metadata?.name !== name)
        return [400, failure(400, 'BadRequest', 'the name of the object does not match')];
      const wanted = body.metadata.resourceVersion;
      if (wanted !== undefined && wanted !== current.metadata.resourceVersion)
        return [
          409,
          failure(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
            details(name),
          ),
        ];
      const problem = check(body);
      if (problem !== undefined) return [422, invalid(problem)];
      if (route.kind === 'Service') {
        const clusterIP = body.spec?.clusterIP;
        if (clusterIP !== undefined && clusterIP !== '' && clusterIP !== current.spec.clusterIP)
          return [422, invalid('spec.clusterIP: Invalid value: field is immutable')];
        body.spec = { ...body.spec, clusterIP: current.spec.clusterIP };
      }
      return [200, store(name, body, current)];
    }
    return [404, failure(404, 'NotFound', 'the server could not find the requested resource')];
  };

  const api = await serveMockApi('service-server', handle, requests);
  const { url, kubeConfig } = api;
  return {
    url,
    kubeConfig,
    services,
    endpointSlices,
    requests,
    close: () => api.close(),
  };
}
