/**
 * Kubernetes mode's stable address of an RWX volume (services.ts): a ClusterIP Service
 * `share-manager-<volume>` in the manager's namespace, port 2049/TCP named `nfs`, **without a
 * selector** — the controller, not a selector, decides when clients go to a share manager
 * (its Pod, kubernetes-pods.ts, runs on the host network with a per-volume port) — and an
 * EndpointSlice (discovery.k8s.io/v1, label `kubernetes.io/service-name`) that this
 * controller keeps pointing at where the share manager serves now: its node's address (the
 * instance manager's pod IP, the node's: both run with hostNetwork) and its listen port (annotation `hornbill.io/listen-port`). kube-proxy maps
 * `<ClusterIP>:2049` to that address and port by the port name `nfs`. After a failover the
 * EndpointSlice is replaced (conditional on its resourceVersion) with the new node; the
 * Service, and so its ClusterIP and `nfs://<ClusterIP>/<volume>`, stays.
 *
 * Both objects are owned by the ShareManager (ownerReferences, so the garbage collector
 * removes them with it) and deleted by the controller's teardown. The last target applied is
 * remembered per volume, and the API server is asked again only when it changes or every
 * `resyncMs` (default 30 s; a deleted or edited object is repaired then). Loads
 * @kubernetes/client-node, so only Kubernetes mode imports this file (dynamically).
 *
 * ```ts
 * const services = kubernetesShareManagerServices(store.kubeConfig, { namespace: 'hornbill-system', store });
 * ```
 */
import {
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  type V1EndpointSlice,
  type V1Service,
} from '@kubernetes/client-node';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { ownerReferenceTo, type ResourceStore, type ShareManager } from '../../resources/index.ts';
import { kubernetesRequestOptions } from '../../resources/store/kubernetes-config.ts';
import { fromKubernetesError } from '../../resources/store/kubernetes-errors.ts';
import {
  DEFAULT_LISTEN_PORTS,
  kubernetesListenAddress,
  LISTEN_PORT_ANNOTATION,
  ListenPortAllocator,
  type PortRange,
  type ShareManagerServices,
  type ShareManagerServiceTarget,
} from './services.ts';

export const NFS_SERVICE_PORT = 2049;
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'share-manager.hornbill.io';
const NAME_CHARS_MAX = 63;

export interface KubernetesShareManagerServicesOptions {
  namespace: string;
  /** Where the ShareManagers are (listen ports are allocated distinct across them). */
  store: ResourceStore;
  /** Listen ports of the share managers (default 20490-21489). */
  listenPorts?: PortRange;
  /** Re-check an unchanged Service and EndpointSlice this often (default 30 s). */
  resyncMs?: number;
  /** Per request (default 10 s). */
  requestTimeoutMs?: number;
}

/** `share-manager-<volume>`: the Service's and the EndpointSlice's name. */
export function shareManagerServiceName(volume: string): string {
  const name = `share-manager-${volume}`;
  if (name.length > NAME_CHARS_MAX)
    throw new HornbillError(
      'SHARE_MANAGER_SERVICE_INVALID',
      `the Service name ${name} is longer than ${NAME_CHARS_MAX} characters (volume names of up to ${NAME_CHARS_MAX - 'share-manager-'.length} characters fit)`,
      { volume, reason: 'name-too-long' },
    );
  return name;
}

/** The client's view of an endpoint: `nfs://<ClusterIP>/<volume>` (port 2049, the NFS default). */
export function clusterEndpoint(clusterIP: string, volume: string): string {
  return `nfs://${clusterIP.includes(':') ? `[${clusterIP}]` : clusterIP}/${volume}`;
}

/** The Service to create (no selector: its EndpointSlice is this controller's). */
export function serviceObject(shareManager: ShareManager, namespace: string): V1Service {
  const volume = shareManager.metadata.name;
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: shareManagerServiceName(volume),
      namespace,
      labels: { 'app.kubernetes.io/part-of': 'hornbill', 'hornbill.io/volume': volume },
      ownerReferences: [ownerReferenceTo(shareManager)],
    },
    spec: {
      type: 'ClusterIP',
      ports: [{ name: 'nfs', port: NFS_SERVICE_PORT, protocol: 'TCP' }],
    },
  };
}

/** The EndpointSlice for a target (with `resourceVersion`, a conditional replace). */
export function endpointSliceObject(
  shareManager: ShareManager,
  namespace: string,
  target: ShareManagerServiceTarget,
  resourceVersion?: string,
): V1EndpointSlice {
  const volume = shareManager.metadata.name;
  const name = shareManagerServiceName(volume);
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace,
      labels: {
        [SERVICE_NAME_LABEL]: name,
        [MANAGED_BY_LABEL]: MANAGED_BY,
        'app.kubernetes.io/part-of': 'hornbill',
        'hornbill.io/volume': volume,
      },
      ownerReferences: [ownerReferenceTo(shareManager)],
      ...(resourceVersion === undefined ? {} : { resourceVersion }),
    },
    addressType: target.address.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: [{ addresses: [target.address], conditions: { ready: true }, nodeName: target.nodeID }],
    ports: [{ name: 'nfs', port: target.port, protocol: 'TCP' }],
  };
}

/** Whether a stored EndpointSlice already leads to the target. */
function leadsTo(slice: V1EndpointSlice, target: ShareManagerServiceTarget): boolean {
  const endpoints = slice.endpoints ?? [];
  const ports = slice.ports ?? [];
  return (
    endpoints.length === 1 &&
    endpoints[0].addresses.length === 1 &&
    endpoints[0].addresses[0] === target.address &&
    endpoints[0].conditions?.ready === true &&
    endpoints[0].nodeName === target.nodeID &&
    ports.length === 1 &&
    ports[0].name === 'nfs' &&
    ports[0].port === target.port
  );
}

export function kubernetesShareManagerServices(
  kubeConfig: KubeConfig,
  options: KubernetesShareManagerServicesOptions,
): ShareManagerServices {
  const { namespace } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const discovery = kubeConfig.makeApiClient(DiscoveryV1Api);
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const resyncMs = options.resyncMs ?? 30_000;
  const ports = new ListenPortAllocator({
    range: options.listenPorts ?? DEFAULT_LISTEN_PORTS,
    store: options.store,
    namespace,
  });
  /** Per volume: the target last applied, its ClusterIP, when. */
  const applied = new Map<string, { key: string; clusterIP: string; atMs: number }>();
  const requestOptions = () => kubernetesRequestOptions({ timeoutMs });
  const call = async <T>(operation: string, kind: string, name: string, send: () => Promise<T>) => {
    try {
      return await send();
    } catch (error) {
      throw fromKubernetesError(error, { operation, kind, namespace, name });
    }
  };
  const orUndefined = async <T>(read: Promise<T>): Promise<T | undefined> => {
    try {
      return await read;
    } catch (error) {
      if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
      throw error;
    }
  };
  const ignoreMissing = async (removal: Promise<unknown>) => {
    try {
      await removal;
    } catch (error) {
      if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
    }
  };

  /** The Service (created when missing) and its ClusterIP. */
  async function ensureService(shareManager: ShareManager, name: string): Promise<string> {
    const read = () =>
      orUndefined(
        call('get', 'Service', name, () => core.readNamespacedService({ name, namespace }, requestOptions())),
      );
    let service = await read();
    if (service === undefined) {
      const body = serviceObject(shareManager, namespace);
      try {
        service = await call('create', 'Service', name, () =>
          core.createNamespacedService({ namespace, body }, requestOptions()),
        );
      } catch (error) {
        if (!isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) throw error;
        service = await read(); // made meanwhile (a second worker or manager)
      }
    }
    const clusterIP = service?.spec?.clusterIP ?? '';
    const invalid = (reason: string, message: string) =>
      new HornbillError('SHARE_MANAGER_SERVICE_INVALID', `Service ${namespace}/${name} ${message}`, {
        namespace,
        name,
        reason,
      });
    if (service === undefined) throw invalid('missing', 'is gone again');
    if (clusterIP === '' || clusterIP === 'None')
      throw invalid('no-cluster-ip', 'has no ClusterIP (headless?); delete it so that it is made again');
    if (Object.keys(service.spec?.selector ?? {}).length > 0)
      throw invalid('selector', "has a selector: its endpoints are not this controller's; delete it");
    if (!(service.spec?.ports ?? []).some((port) => port.name === 'nfs' && port.port === NFS_SERVICE_PORT))
      throw invalid('port', `has no port nfs ${NFS_SERVICE_PORT}/TCP; delete it so that it is made again`);
    return clusterIP;
  }

  async function ensureEndpointSlice(
    shareManager: ShareManager,
    name: string,
    target: ShareManagerServiceTarget,
  ): Promise<void> {
    const slice = await orUndefined(
      call('get', 'EndpointSlice', name, () =>
        discovery.readNamespacedEndpointSlice({ name, namespace }, requestOptions()),
      ),
    );
    if (slice === undefined) {
      const body = endpointSliceObject(shareManager, namespace, target);
      await call('create', 'EndpointSlice', name, () =>
        discovery.createNamespacedEndpointSlice({ namespace, body }, requestOptions()),
      );
      return;
    }
    if (leadsTo(slice, target)) return;
    // Conditional on what was read: a concurrent writer gets RESOURCE_CONFLICT, and the
    // reconcile is retried with a fresh read.
    const body = endpointSliceObject(shareManager, namespace, target, slice.metadata?.resourceVersion);
    await call('update', 'EndpointSlice', name, () =>
      discovery.replaceNamespacedEndpointSlice({ name, namespace, body }, requestOptions()),
    );
  }

  return {
    mode: 'kubernetes',
    async allocate(volume) {
      shareManagerServiceName(volume); // refuse a volume whose Service name cannot exist
      const port = await ports.allocate(volume);
      return {
        annotations: { [LISTEN_PORT_ANNOTATION]: String(port) },
        description: `behind Service ${namespace}/${shareManagerServiceName(volume)}:${NFS_SERVICE_PORT} (listening on port ${port} of its node)`,
      };
    },
    allocated: (shareManager) => shareManager.metadata.annotations?.[LISTEN_PORT_ANNOTATION] !== undefined,
    listenAddress: kubernetesListenAddress,
    async ensure(shareManager, target) {
      const volume = shareManager.metadata.name;
      const name = shareManagerServiceName(volume);
      const key = `${target.nodeID} ${target.address}:${target.port}`;
      const last = applied.get(volume);
      if (last !== undefined && last.key === key && Date.now() - last.atMs < resyncMs)
        return { address: last.clusterIP, endpoint: clusterEndpoint(last.clusterIP, volume) };
      const clusterIP = await ensureService(shareManager, name);
      await ensureEndpointSlice(shareManager, name, target);
      applied.set(volume, { key, clusterIP, atMs: Date.now() });
      return { address: clusterIP, endpoint: clusterEndpoint(clusterIP, volume) };
    },
    async remove(volume) {
      applied.delete(volume);
      if (`share-manager-${volume}`.length > NAME_CHARS_MAX) return; // never made (allocate refused it)
      const name = shareManagerServiceName(volume);
      await ignoreMissing(
        call('delete', 'EndpointSlice', name, () =>
          discovery.deleteNamespacedEndpointSlice({ name, namespace }, requestOptions()),
        ),
      );
      await ignoreMissing(
        call('delete', 'Service', name, () =>
          core.deleteNamespacedService({ name, namespace }, requestOptions()),
        ),
      );
    },
  };
}
