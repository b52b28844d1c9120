/**
 * The ShareManager controller (docs/rwx.md): gives every Volume with accessMode `rwx` a
 * ShareManager, runs its NFS server (`hornbill share-manager`: a child of the chosen node's
 * instance manager, or a Pod of its own there in Kubernetes mode, hosting.ts) behind a stable address (services.ts), attaches the volume there with a
 * `share-manager` attachment ticket, and moves it to another node when its node goes away and
 * its lease expires. Self-contained: its own informers (Volume, ShareManager, Node,
 * VolumeAttachment), its own work queue (key: volume name), its own instance manager clients.
 *
 * ```ts
 * const shares = await startShareManagerController({ store, namespace: 'hornbill-system', log,
 *   instanceManagers: [{ nodeID: 'node-1', grpcAddress: '127.0.0.11:8500' }],
 *   leaseDirectory: '/var/lib/hornbill/share-manager-leases' }); // or leases: kubernetesShareManagerLeases(…)
 * await shares.idle();
 * await shares.stop();
 * ```
 */
import { type GrpcMessage, InstanceManagerClient } from '../../dataplane/instance-manager/grpc-client.ts';
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { LogLevel } from '../../logging.ts';
import { Informer, type Kind, type ResourceOf, type ResourceStore } from '../../resources/index.ts';
import {
  fileShareManagerLeases,
  type ShareManagerLeaseLocation,
  type ShareManagerLeases,
} from '../../share-manager/index.ts';
import { createContext } from '../context.ts';
import { InstanceManagerMonitors } from '../instance-manager-monitor.ts';
import { WorkQueue } from '../work-queue.ts';
import { DEFAULT_SERVICE_NETWORK, parseServiceNetwork } from './decisions.ts';
import { instanceManagerHosting, type ShareManagerHosting } from './hosting.ts';
import { reconcileShareManager } from './reconcile.ts';
import { embeddedShareManagerServices, type ShareManagerServices } from './services.ts';
import {
  AddressAllocator,
  COMPONENT,
  LeaseWatch,
  type ShareManagerWorld,
  shareManagerInstanceName,
} from './world.ts';

export interface ShareManagerControllerOptions {
  store: ResourceStore;
  namespace: string;
  log: (record: Record<string, unknown>) => void;
  /**
   * The instance managers by node (ControllerOptions.instanceManagers fits); `address` is the
   * node's address (Kubernetes mode: share managers listen there).
   */
  instanceManagers?: ReadonlyArray<{ nodeID: string; grpcAddress: string; address?: string }>;
  /** Or a client per node, owned by the caller (tests). */
  instanceManagerClient?: (nodeID: string) => InstanceManagerClient | undefined;
  /**
   * The stable address clients mount (services.ts): in Kubernetes mode
   * `kubernetesShareManagerServices` (a Service and EndpointSlice per volume). Absent: a
   * loopback address of `serviceNetwork` per volume (embedded mode).
   */
  services?: ShareManagerServices;
  /**
   * Where the share manager processes run (hosting.ts): in Kubernetes mode
   * `kubernetesPodHosting` (a Pod `share-manager-<volume>` on the chosen node). Absent: a
   * child process of the node's instance manager (CreateShareManager).
   */
  hosting?: ShareManagerHosting;
  /**
   * Where the share managers' leases live (src/share-manager/lease-backend.ts): in Kubernetes
   * mode `kubernetesShareManagerLeases` (Lease objects `share-manager-<volume>`). Absent:
   * files in `leaseDirectory`.
   */
  leases?: ShareManagerLeases;
  /**
   * Embedded mode, without `leases`: the folder of the lease files, one the controller and
   * every node's share managers see (in `hornbill up`, `<data>/share-manager-leases`).
   */
  leaseDirectory?: string;
  /** Embedded mode: service addresses are taken from this network (default 127.200.0.0/16). */
  serviceNetwork?: string;
  /** Embedded mode: NFS port of every share manager (default 2049; Kubernetes: the Service's port). */
  nfsPort?: number;
  /** The share managers' lease (default 15 s; Longhorn's fast failover uses a Lease too). */
  leaseDurationSeconds?: number;
  /** `hornbill share-manager --nfs-options` (default '': NFSv4.1+; 'min-version=4.0' admits libnfs clients). */
  nfsOptions?: string;
  /** How often a running share manager is probed (default 1000 ms). */
  pollIntervalMs?: number;
  /** Reconciles at once (default 2). */
  workers?: number;
}

export interface RunningShareManagerController {
  stop(): Promise<void>;
  /** Resolves when the queue is empty and no reconcile runs (for tests). */
  idle(): Promise<void>;
}

function leaseBackendOf(options: ShareManagerControllerOptions): ShareManagerLeases {
  if (options.leases !== undefined) return options.leases;
  if (options.leaseDirectory === undefined || options.leaseDirectory === '')
    throw new HornbillError(
      'INVALID_ARGUMENT',
      'the share manager controller needs leases or leaseDirectory',
      {
        field: 'leaseDirectory',
      },
    );
  return fileShareManagerLeases(options.leaseDirectory);
}

/** CreateShareManager's lease fields for a lease location. */
export function leaseRequestFields(location: ShareManagerLeaseLocation): GrpcMessage {
  return location.backend === 'file'
    ? { lease_backend: 'file', lease_file: location.file, lease_namespace: '' }
    : { lease_backend: 'kubernetes', lease_file: '', lease_namespace: location.namespace };
}

/** The CreateShareManager request for a volume (both hostings start from it, hosting.ts). */
export function createShareManagerRequest(options: {
  volume: string;
  /** services.ts `listenAddress`. */
  listen: { address: string; port: number };
  /** The engine's iSCSI endpoint to export its device; '' exports a directory. */
  deviceEndpoint: string;
  nfsOptions: string;
  lease: ShareManagerLeaseLocation;
  leaseDurationSeconds: number;
}): GrpcMessage {
  return {
    name: shareManagerInstanceName(options.volume),
    volume_name: options.volume,
    ...options.listen,
    source: options.deviceEndpoint === '' ? 'directory' : 'device',
    device_endpoint: options.deviceEndpoint,
    fs_type: 'ext4',
    nfs_options: options.nfsOptions,
    ...leaseRequestFields(options.lease),
    lease_duration_seconds: options.leaseDurationSeconds,
  };
}

export async function startShareManagerController(
  options: ShareManagerControllerOptions,
): Promise<RunningShareManagerController> {
  const { store, namespace, log } = options;
  const network = parseServiceNetwork(options.serviceNetwork ?? DEFAULT_SERVICE_NETWORK);
  const nfsPort = options.nfsPort ?? 2049;
  const leaseDurationSeconds = options.leaseDurationSeconds ?? 15;
  const ownClients = new Map<string, InstanceManagerClient>();
  for (const manager of options.instanceManagers ?? [])
    ownClients.set(manager.nodeID, new InstanceManagerClient(manager.grpcAddress, { deadlineMs: 60_000 }));
  const clientOf = (nodeID: string) => options.instanceManagerClient?.(nodeID) ?? ownClients.get(nodeID);
  const leases = new LeaseWatch(leaseBackendOf(options));
  const hosting = options.hosting ?? instanceManagerHosting(clientOf);
  const services =
    options.services ??
    embeddedShareManagerServices({
      allocator: new AddressAllocator({ network, store, namespace }),
      nfsPort,
    });
  const nodeAddresses = new Map(
    (options.instanceManagers ?? []).map((manager) => [manager.nodeID, manager.address]),
  );
  const healthyAt = new Map<string, number>();
  // The shared event recorder; this controller needs no monitors of its own.
  const context = createContext({
    store,
    namespace,
    monitors: new InstanceManagerMonitors([], () => {}),
    log,
    enqueue: () => {},
  });
  const world: ShareManagerWorld = {
    store,
    namespace,
    nfsPort,
    pollIntervalMs: options.pollIntervalMs ?? 1_000,
    hasInstanceManager: (nodeID) => clientOf(nodeID) !== undefined,
    instanceManagerClient: clientOf,
    hosting,
    nodeAddress: (nodeID) => nodeAddresses.get(nodeID),
    services,
    leaseLocation: (volume) => leases.location(volume),
    removeLease: (volume) => leases.remove(volume),
    leaseState: (volume) => leases.state(volume),
    breakLease: (volume) => leases.breakExpired(volume),
    markHealthy: (volume) => healthyAt.set(volume, Date.now()),
    lastHealthyMs: (volume) => healthyAt.get(volume),
    forget: (volume) => {
      healthyAt.delete(volume);
      leases.forget(volume);
    },
    createRequest: (volume, shareManager, deviceEndpoint) =>
      createShareManagerRequest({
        volume: volume.metadata.name,
        listen: services.listenAddress(shareManager, nodeAddresses.get(shareManager.status?.nodeID ?? '')),
        deviceEndpoint,
        nfsOptions: options.nfsOptions ?? '',
        lease: leases.location(volume.metadata.name),
        leaseDurationSeconds,
      }),
    event: (object, type, reason, message, eventOptions) =>
      context.event(object, type, reason, message, COMPONENT, eventOptions),
  };
  const queue = new WorkQueue({
    name: 'share-manager',
    workers: options.workers ?? 2,
    reconcile: (key) => reconcileShareManager(world, key),
    onError: (key, error, retryInMs) => {
      const conflict =
        isHornbillError(error, 'RESOURCE_CONFLICT') || isHornbillError(error, 'RESOURCE_ALREADY_EXISTS');
      log({
        level: conflict ? 'debug' : 'warn',
        component: COMPONENT,
        message: 'reconcile failed; retrying',
        key,
        retryInMs,
        error: error instanceof Error ? error.message : String(error),
        code: isHornbillError(error) ? error.code : undefined,
      });
    },
  });
  const logger = (level: LogLevel, message: string, details: Record<string, unknown>) =>
    log({ level, component: 'hornbill-informer', message, ...details });
  const informers: Informer<Kind>[] = [];
  const watch = <K extends Kind>(kind: K, keys: (object: ResourceOf<K>) => string[]) => {
    const informer = new Informer(store, kind, { namespace, logger });
    const handler = (object: ResourceOf<K>) => {
      for (const key of keys(object)) queue.add(key);
    };
    informer.addHandler({ added: handler, modified: handler, deleted: handler });
    informers.push(informer as unknown as Informer<Kind>);
    return informer;
  };
  const shareManagers = watch('ShareManager', (shareManager) => [shareManager.spec.volumeName]);
  // Every rwx volume, and any volume that has a ShareManager (an access mode changed away from rwx).
  watch('Volume', (volume) =>
    volume.spec.accessMode === 'rwx' ||
    shareManagers.list().some((item) => item.metadata.name === volume.metadata.name)
      ? [volume.metadata.name]
      : [],
  );
  watch('VolumeAttachment', (attachment) =>
    shareManagers.list().some((item) => item.metadata.name === attachment.spec.volume)
      ? [attachment.spec.volume]
      : [],
  );
  watch('Node', () => shareManagers.list().map((item) => item.metadata.name));
  queue.start();
  await Promise.all(informers.map((informer) => informer.start()));
  log({
    level: 'info',
    component: COMPONENT,
    message: 'share manager controller started',
    services: services.mode,
    hosting: hosting.mode,
    serviceNetwork:
      services.mode === 'embedded' ? (options.serviceNetwork ?? DEFAULT_SERVICE_NETWORK) : undefined,
    nfsPort,
  });
  return {
    async stop() {
      await Promise.all(informers.map((informer) => informer.stop().catch(() => {})));
      await queue.stop();
      for (const client of ownClients.values()) client.close();
    },
    async idle() {
      for (;;) {
        await queue.idle();
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (queue.length === 0) return;
      }
    },
  };
}
