/**
 * Kubernetes mode's hosting of a share manager (hosting.ts): a Pod `share-manager-<volume>`
 * of its own in the manager's namespace, as Longhorn's share-manager pods, instead of a child
 * of the instance manager. The Pod:
 *
 * - runs on the chosen node (`nodeName`: no scheduler, the controller has chosen), with the
 *   Hornbill image (the one image of every component; `image`, below) and the arguments
 *   `share-manager …` the instance manager would pass for the same CreateShareManager request
 *   (`shareManagerArguments` of share-manager-spec.ts, so the flags cannot drift), plus a fixed
 *   `--health-port` (listen port + 1000) for its readiness probe on `/healthz`;
 * - uses the host network (it listens on the node's address and the volume's listen port, which
 *   the EndpointSlice of services.ts leads to), is privileged, mounts the state folder
 *   (`<disk>/share-managers/<volume>`, hostPath `diskPath` with Bidirectional propagation) and
 *   `/dev`; for the volume's block device it logs in to the engine's iSCSI target itself
 *   (`--iscsi-target … --host-namespaces`: iscsiadm, mkfs and mount run in the host's mount and
 *   network namespaces through nsenter, as the CSI node plugin does, so the Pod also gets
 *   hostPID); without a device it exports `<disk>/share-exports/<volume>` (DataSource False);
 * - campaigns for the Lease `share-manager-<volume>` with the ServiceAccount
 *   `hornbill-share-manager` (get, create, update of Leases, deploy/rbac.yaml);
 * - is labelled `app.kubernetes.io/component=share-manager`, `hornbill.io/volume=<volume>`,
 *   owned by the ShareManager (the garbage collector removes it with it);
 * - has `restartPolicy: Never`: a share manager that exits (fenced after losing its lease,
 *   ganesha failing) is Failed, and the controller decides to start it again (delete and
 *   create) or to move it, as it does for the instance manager's child.
 *
 * State read from the Pod: Pending → `starting`; Running and Ready → `running`; Running and
 * not Ready → `starting` until it has been seen Ready, after that its node is taken as
 * unreachable (the node controller marks a lost node's pods not Ready; the lease decides the
 * move); Failed or Succeeded → `error`; phase Unknown → unreachable; a Pod being deleted →
 * `stopping`. An API request that fails is an error of the reconcile (retried), never taken
 * as the node being lost. A move deletes the Pod on the old node without waiting for its kubelet
 * (gracePeriodSeconds 0: the lease expired, so it has fenced itself) and creates it on the new
 * one; teardown deletes it gracefully (the share manager unmounts, logs out, releases).
 * Loads @kubernetes/client-node, so only Kubernetes mode imports this file (dynamically).
 */
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import type { GrpcMessage } from '../../dataplane/instance-manager/grpc-client.ts';
import {
  type ShareManagerSpec,
  shareExportDirectory,
  shareManagerArguments,
  shareManagerSpec,
  shareManagerSpecInput,
  shareStateDirectory,
} from '../../dataplane/instance-manager/share-manager-spec.ts';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { type OwnerReference, ownerReferenceTo, type ShareManager } from '../../resources/index.ts';
import { kubernetesRequestOptions } from '../../resources/store/kubernetes-config.ts';
import { fromKubernetesError } from '../../resources/store/kubernetes-errors.ts';
import { shareEndpoint } from '../../share-manager/index.ts';
import type { ShareManagerHosting, ShareManagerInstanceMessage } from './hosting.ts';
import { shareManagerInstanceName } from './world.ts';

export const SHARE_MANAGER_SERVICE_ACCOUNT = 'hornbill-share-manager';
export const DEFAULT_DISK_PATH = '/var/lib/hornbill';
/** The readiness probe's port: the listen port + this (20490-21489 → 21490-22489). */
export const HEALTH_PORT_OFFSET = 1000;
const CONTAINER_NAME = 'share-manager';
const SOURCE_ANNOTATION = 'hornbill.io/share-source';
const ADDRESS_ANNOTATION = 'hornbill.io/listen-address';
const PORT_ANNOTATION = 'hornbill.io/listen-port';
const EXPORT_ANNOTATION = 'hornbill.io/export-path';
const DEVICE_ANNOTATION = 'hornbill.io/device-endpoint';

export interface KubernetesPodHostingOptions {
  namespace: string;
  /**
   * The image (the same as the manager's). Absent: HORNBILL_IMAGE of `environment`, else the
   * image of this manager's own Pod (`POD_NAME`, container `manager` or the first one).
   */
  image?: string;
  environment?: NodeJS.ProcessEnv;
  /** The host folder of the state (and export) folders, as the instance manager's --disk (default /var/lib/hornbill). */
  diskPath?: string;
  serviceAccountName?: string;
  /** Whether the Pod may log in to the engine's iSCSI target (default true: `--iscsi-target`). */
  attachDevices?: boolean;
  requestTimeoutMs?: number;
}

/** `share-manager-<volume>` (the Service's name too; kubernetes-services.ts checks the length). */
export function shareManagerPodName(volume: string): string {
  return shareManagerInstanceName(volume);
}

/** The Pod's arguments: the instance manager's for the same spec, plus the fixed health port. */
export function shareManagerPodArguments(spec: ShareManagerSpec, nodeName: string): string[] {
  return [
    'share-manager',
    ...shareManagerArguments(spec, { nodeName, iscsiLogin: spec.source === 'device' }),
    ...['--health-port', String(spec.port + HEALTH_PORT_OFFSET)],
  ];
}

export function shareManagerPodObject(options: {
  spec: ShareManagerSpec;
  nodeName: string;
  namespace: string;
  image: string;
  serviceAccountName: string;
  owner?: OwnerReference;
}): V1Pod {
  const { spec, nodeName, namespace } = options;
  const device = spec.source === 'device';
  const exportPath = device
    ? `${shareStateDirectory(spec.diskPath, spec.volumeName)}/mount`
    : shareExportDirectory(spec.diskPath, spec.volumeName);
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: shareManagerPodName(spec.volumeName),
      namespace,
      labels: {
        'app.kubernetes.io/name': 'hornbill-share-manager',
        'app.kubernetes.io/part-of': 'hornbill',
        'app.kubernetes.io/component': 'share-manager',
        'hornbill.io/volume': spec.volumeName,
      },
      annotations: {
        [SOURCE_ANNOTATION]: spec.source,
        [ADDRESS_ANNOTATION]: spec.address,
        [PORT_ANNOTATION]: String(spec.port),
        [EXPORT_ANNOTATION]: exportPath,
        ...(device ? { [DEVICE_ANNOTATION]: spec.deviceEndpoint } : {}),
      },
      ...(options.owner === undefined ? {} : { ownerReferences: [options.owner] }),
    },
    spec: {
      nodeName,
      hostNetwork: true,
      // nsenter --target 1 (--host-namespaces) needs the host's PID namespace.
      hostPID: device,
      dnsPolicy: 'ClusterFirstWithHostNet',
      restartPolicy: 'Never',
      serviceAccountName: options.serviceAccountName,
      automountServiceAccountToken: true,
      priorityClassName: 'system-node-critical',
      terminationGracePeriodSeconds: 30,
      containers: [
        {
          name: CONTAINER_NAME,
          image: options.image,
          args: shareManagerPodArguments(spec, nodeName),
          securityContext: { privileged: true },
          ports: [{ name: 'nfs', containerPort: spec.port, protocol: 'TCP' }],
          readinessProbe: {
            httpGet: { path: '/healthz', port: spec.port + HEALTH_PORT_OFFSET, host: spec.address },
            periodSeconds: 5,
            failureThreshold: 2,
          },
          volumeMounts: [
            { name: 'data', mountPath: spec.diskPath, mountPropagation: 'Bidirectional' },
            { name: 'dev', mountPath: '/dev' },
          ],
        },
      ],
      volumes: [
        { name: 'data', hostPath: { path: spec.diskPath, type: 'DirectoryOrCreate' } },
        { name: 'dev', hostPath: { path: '/dev' } },
      ],
    },
  };
}

/** The ShareManagerInstance message of a Pod; `seenReady`: this Pod was Ready before. */
export function podInstance(
  pod: V1Pod,
  seenReady: boolean,
): { reachable: boolean; instance: ShareManagerInstanceMessage } {
  const annotations = pod.metadata?.annotations ?? {};
  const volume = pod.metadata?.labels?.['hornbill.io/volume'] ?? '';
  const address = annotations[ADDRESS_ANNOTATION] ?? '';
  const port = Number(annotations[PORT_ANNOTATION] ?? 0);
  const ready = pod.status?.conditions?.find((condition) => condition.type === 'Ready')?.status === 'True';
  const container = pod.status?.containerStatuses?.find((status) => status.name === CONTAINER_NAME);
  const phase = pod.status?.phase ?? 'Pending';
  let state = 'starting';
  let reachable = true;
  let message = container?.state?.waiting?.message ?? container?.state?.waiting?.reason ?? '';
  if (pod.metadata?.deletionTimestamp !== undefined) state = 'stopping';
  else if (phase === 'Failed' || phase === 'Succeeded') {
    state = 'error';
    const terminated = container?.state?.terminated;
    message = `the share manager Pod ${phase.toLowerCase()}${terminated ? ` (exit code ${terminated.exitCode}${terminated.message ? `: ${terminated.message}` : ''})` : ''}`;
  } else if (phase === 'Unknown') reachable = false;
  else if (phase === 'Running' && ready) state = 'running';
  else if (phase === 'Running' && seenReady) reachable = false;
  return {
    reachable,
    instance: {
      name: pod.metadata?.name ?? '',
      state,
      error: message === '' ? undefined : { message },
      node_name: pod.spec?.nodeName ?? '',
      address,
      port,
      endpoint: shareEndpoint(address, port, volume),
      source: annotations[SOURCE_ANNOTATION] ?? 'directory',
      device: annotations[DEVICE_ANNOTATION] ?? '',
      export_path: annotations[EXPORT_ANNOTATION] ?? '',
      pod_uid: pod.metadata?.uid ?? '',
    },
  };
}

export function kubernetesPodHosting(
  kubeConfig: KubeConfig,
  options: KubernetesPodHostingOptions,
): ShareManagerHosting {
  const { namespace } = options;
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const diskPath = options.diskPath ?? DEFAULT_DISK_PATH;
  const attachDevices = options.attachDevices ?? true;
  const timeoutMs = options.requestTimeoutMs ?? 10_000;
  const environment = options.environment ?? process.env;
  /** Uids of Pods seen Ready: not Ready afterwards means their node (or they) went away. */
  const seenReady = new Set<string>();
  let image: string | undefined = options.image;

  const call = async <T>(operation: string, name: string, send: () => Promise<T>) => {
    try {
      return await send();
    } catch (error) {
      throw fromKubernetesError(error, { operation, kind: 'Pod', namespace, name });
    }
  };
  const read = async (name: string): Promise<V1Pod | undefined> => {
    try {
      return await call('get', name, () =>
        core.readNamespacedPod({ name, namespace }, kubernetesRequestOptions({ timeoutMs })),
      );
    } catch (error) {
      if (isHornbillError(error, 'RESOURCE_NOT_FOUND')) return undefined;
      throw error;
    }
  };
  const remove = async (name: string, gracePeriodSeconds?: number) => {
    try {
      await call('delete', name, () =>
        core.deleteNamespacedPod(
          { name, namespace, ...(gracePeriodSeconds === undefined ? {} : { gracePeriodSeconds }) },
          kubernetesRequestOptions({ timeoutMs }),
        ),
      );
    } catch (error) {
      if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
    }
  };
  const describe = (pod: V1Pod) => {
    const uid = pod.metadata?.uid ?? '';
    const seen = podInstance(pod, seenReady.has(uid));
    if (seen.instance.state === 'running') seenReady.add(uid);
    return seen;
  };
  const resolveImage = async (): Promise<string> => {
    if (image !== undefined && image !== '') return image;
    const fromEnvironment = environment.HORNBILL_IMAGE ?? '';
    if (fromEnvironment !== '') return (image = fromEnvironment);
    const own = environment.POD_NAME ?? '';
    const pod = own === '' ? undefined : await read(own).catch(() => undefined);
    const containers = pod?.spec?.containers ?? [];
    const found = (containers.find((container) => container.name === 'manager') ?? containers[0])?.image;
    if (found === undefined || found === '')
      throw new HornbillError(
        'SHARE_MANAGER_IMAGE_UNKNOWN',
        own === ''
          ? 'set HORNBILL_IMAGE (or POD_NAME through the downward API) on the manager'
          : `the manager's own Pod ${namespace}/${own} could not be read for its image; set HORNBILL_IMAGE`,
        { namespace, pod: own },
      );
    return (image = found);
  };

  return {
    mode: 'pod',
    async probe(volume, node) {
      // An API server that does not answer says nothing about the node: the error goes up and
      // the reconcile is retried (no move is decided on it).
      const pod = await read(shareManagerPodName(volume));
      if (pod === undefined || pod.spec?.nodeName !== node)
        return { reachable: true, canAttachDevices: attachDevices };
      const { reachable, instance } = describe(pod);
      return { reachable, instance, canAttachDevices: attachDevices };
    },
    async start(node, request: GrpcMessage, owner: ShareManager) {
      const spec = shareManagerSpec({ ...shareManagerSpecInput(request), diskPath }, [diskPath]);
      const name = shareManagerPodName(spec.volumeName);
      const existing = await read(name);
      if (existing !== undefined) {
        const { instance } = describe(existing);
        const here = existing.spec?.nodeName === node;
        if (instance.state === 'stopping' || (here && instance.state !== 'error')) return instance;
        // On another node (a move: its lease expired, it has fenced itself) or failed: replace it
        // without waiting for its kubelet, which may be gone with its node.
        await remove(name, 0);
      }
      const body = shareManagerPodObject({
        spec,
        nodeName: node,
        namespace,
        image: await resolveImage(),
        serviceAccountName: options.serviceAccountName ?? SHARE_MANAGER_SERVICE_ACCOUNT,
        owner: ownerReferenceTo(owner),
      });
      try {
        const created = await call('create', name, () =>
          core.createNamespacedPod({ namespace, body }, kubernetesRequestOptions({ timeoutMs })),
        );
        return describe(created).instance;
      } catch (error) {
        if (!isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) throw error;
        // Made meanwhile (another worker), or the old one is still being removed.
        const now = await read(name);
        return now === undefined ? { name, state: 'starting', node_name: node } : describe(now).instance;
      }
    },
    async stop(volume, node, stopOptions) {
      const name = shareManagerPodName(volume);
      const pod = await read(name);
      if (pod === undefined || pod.spec?.nodeName !== node) return;
      seenReady.delete(pod.metadata?.uid ?? '');
      await remove(name, stopOptions.fenced ? 0 : undefined);
    },
  };
}
