/**
 * A stand-in for the API server's core/v1 Pod endpoints, and nothing else — what
 * `kubernetesPodHosting` (src/controllers/share-manager/kubernetes-pods.ts) uses; no API server
 * runs on this machine (kubernetes-service-server.ts does the same for Services):
 *
 * - POST   /api/v1/namespaces/NS/pods → 201 (phase Pending, a uid, a resourceVersion), 409
 *   AlreadyExists on an existing name (one being deleted included), 422 without
 *   metadata.name or containers
 * - GET    …/pods/NAME → 200 or 404; GET …/pods?labelSelector=k=v,… → a PodList
 * - DELETE …/pods/NAME → 200; with `gracePeriodSeconds=0`, or a Pod that is not Running, it is
 *   gone at once; otherwise it gets `metadata.deletionTimestamp` and stays until the test plays
 *   the kubelet (`finishDeletion`), as a real kubelet confirms a graceful deletion
 * - any other path → 404
 *
 * The test plays the kubelet and the node controller with `setPodStatus(name, { phase, ready })`.
 *
 * ```ts
 * const server = await startKubernetesPodServer();
 * t.after(() => server.close());
 * server.setPodStatus('share-manager-vol', { phase: 'Running', ready: true });
 * ```
 */
import { randomUUID } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubernetesFailure, serveMockApi } from './kubernetes-mock-http.ts';

// biome-ignore lint/suspicious/noExplicitAny: objects are whatever JSON the client sent
type KubernetesObject = Record<string, any>;

export interface KubernetesPodServer {
  url: string;
  kubeConfig: KubeConfig;
  /** Stored Pods by `namespace/name`. */
  readonly pods: Map<string, KubernetesObject>;
  /** `METHOD path?query` of every request, in order. */
  readonly requests: string[];
  /** As a kubelet would: the Pod's phase, its Ready condition, its container's exit. */
  setPodStatus(
    name: string,
    status: {
      phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
      ready?: boolean;
      exitCode?: number;
    },
    namespace?: string,
  ): void;
  /** As a kubelet would after a graceful deletion: the Pod is gone. */
  finishDeletion(name: string, namespace?: string): void;
  close(): Promise<void>;
}

const PREFIX = '/api/v1/namespaces/';

function failure(code: number, reason: string, message: string, name?: string) {
  return kubernetesFailure(code, reason, message, name === undefined ? undefined : { name, kind: 'pods' });
}

export async function startKubernetesPodServer(
  options: { namespace?: string } = {},
): Promise<KubernetesPodServer> {
  const defaultNamespace = options.namespace ?? 'hornbill-system';
  const pods = new Map<string, KubernetesObject>();
  const requests: string[] = [];
  let revision = 700;
  const bump = (pod: KubernetesObject) => {
    revision += 1;
    pod.metadata.resourceVersion = String(revision);
  };

  const handle = (method: string, url: URL, body: KubernetesObject | undefined): [number, object] => {
    const match = /^([a-z0-9-]+)\/pods(?:\/([a-z0-9.-]+))?$/.exec(url.pathname.slice(PREFIX.length));
    if (!url.pathname.startsWith(PREFIX) || match === null)
      return [404, failure(404, 'NotFound', 'the server could not find the requested resource')];
    const [, namespace, name] = match;
    const notFound = (objectName: string) =>
      failure(404, 'NotFound', `pods "${objectName}" not found`, objectName);
    if (name === undefined) {
      if (method === 'GET') {
        const wanted = (url.searchParams.get('labelSelector') ?? '')
          .split(',')
          .filter((term) => term !== '')
          .map((term) => term.split('='));
        const items = [...pods.values()].filter(
          (pod) =>
            pod.metadata.namespace === namespace &&
            wanted.every(([key, value]) => pod.metadata.labels?.[key] === value),
        );
        return [
          200,
          { kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: String(revision) }, items },
        ];
      }
      if (method !== 'POST') return [405, failure(405, 'MethodNotAllowed', `${method} is not allowed`)];
      const objectName = body?.metadata?.name;
      if (typeof objectName !== 'string')
        return [422, failure(422, 'Invalid', 'metadata.name: Required value')];
      if (!Array.isArray(body?.spec?.containers) || body.spec.containers.length === 0)
        return [422, failure(422, 'Invalid', 'spec.containers: Required value')];
      if (pods.has(`${namespace}/${objectName}`))
        return [409, failure(409, 'AlreadyExists', `pods "${objectName}" already exists`, objectName)];
      const pod: KubernetesObject = {
        ...body,
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...body?.metadata,
          name: objectName,
          namespace,
          uid: randomUUID(),
          creationTimestamp: new Date().toISOString(),
        },
        status: { phase: 'Pending', conditions: [{ type: 'Ready', status: 'False' }] },
      };
      bump(pod);
      pods.set(`${namespace}/${objectName}`, pod);
      return [201, pod];
    }
    const key = `${namespace}/${name}`;
    const current = pods.get(key);
    if (method === 'GET') return current === undefined ? [404, notFound(name)] : [200, current];
    if (method === 'DELETE') {
      if (current === undefined) return [404, notFound(name)];
      const grace = url.searchParams.get('gracePeriodSeconds') ?? body?.gracePeriodSeconds?.toString();
      if (grace === '0' || current.status?.phase !== 'Running') pods.delete(key);
      else {
        current.metadata.deletionTimestamp ??= new Date().toISOString();
        bump(current);
      }
      return [200, current];
    }
    return [405, failure(405, 'MethodNotAllowed', `${method} is not allowed`)];
  };

  const api = await serveMockApi('pod-server', handle, requests, { recordQuery: true });
  const { url, kubeConfig } = api;
  const find = (name: string, namespace = defaultNamespace) => {
    const pod = pods.get(`${namespace}/${name}`);
    if (pod === undefined) throw new Error(`no Pod ${namespace}/${name}`);
    return pod;
  };
  return {
    url,
    kubeConfig,
    pods,
    requests,
    setPodStatus(name, status, namespace) {
      const pod = find(name, namespace);
      const container = pod.spec.containers[0].name;
      const terminated = status.phase === 'Failed' || status.phase === 'Succeeded';
      pod.status = {
        phase: status.phase,
        conditions: [{ type: 'Ready', status: status.ready === true ? 'True' : 'False' }],
        containerStatuses: [
          {
            name: container,
            ready: status.ready === true,
            restartCount: 0,
            image: pod.spec.containers[0].image,
            imageID: '',
            state: terminated
              ? { terminated: { exitCode: status.exitCode ?? 1, reason: 'Error' } }
              : status.phase === 'Running'
                ? { running: { startedAt: new Date().toISOString() } }
                : { waiting: { reason: 'ContainerCreating' } },
          },
        ],
      };
      bump(pod);
    },
    finishDeletion(name, namespace = defaultNamespace) {
      find(name, namespace);
      pods.delete(`${namespace}/${name}`);
    },
    close: () => api.close(),
  };
}
