/**
 * Where clients find an RWX volume's export, and where its share manager listens: one narrow
 * interface, chosen by the manager's mode as the lease backend is (docs/rwx.md, "The stable
 * address"), so that reconcile.ts and teardown.ts do not know which mode they run in.
 *
 * - embedded (`hornbill up`, `embeddedShareManagerServices`): a loopback service address of
 *   `serviceNetwork`, allocated once per ShareManager (annotation `hornbill.io/service-address`);
 *   whichever node hosts the share manager binds that address on `nfsPort`, so there is
 *   nothing to point anywhere: `ensure` returns the endpoint the instance manager reports.
 * - Kubernetes (`kubernetesShareManagerServices`, kubernetes-services.ts, loaded only in that
 *   mode): the share manager listens on its node's address (the instance manager runs with
 *   hostNetwork, so that is the pod IP) on a port allocated once per ShareManager from
 *   `listenPorts` (annotation `hornbill.io/listen-port`, distinct across the cluster, so any
 *   number of share managers fit on one node and none collides with a host NFS server on
 *   2049); a selector-less ClusterIP Service `share-manager-<volume>` on 2049 and its
 *   EndpointSlice lead there, and `ensure` moves the EndpointSlice after a failover. Clients
 *   mount `nfs://<ClusterIP>/<volume>`, which never changes.
 *
 * ```ts
 * const services = embeddedShareManagerServices({ allocator, nfsPort: 2049 });
 * const { annotations } = await services.allocate('pvc-1');        // on the new ShareManager
 * const { address, port } = services.listenAddress(shareManager, '10.0.0.5'); // CreateShareManager
 * const { endpoint } = await services.ensure(shareManager, { nodeID, address, port, endpoint: reported });
 * await services.remove('pvc-1');                                  // teardown
 * ```
 */
import { createHash } from 'node:crypto';
import { HornbillError } from '../../errors.ts';
import type { ResourceStore, ShareManager } from '../../resources/index.ts';
import { type AddressAllocator, ADDRESS_ANNOTATION as SERVICE_ADDRESS_ANNOTATION } from './world.ts';

/** Kubernetes mode: the port the share manager listens on, on whichever node hosts it. */
export const LISTEN_PORT_ANNOTATION = 'hornbill.io/listen-port';
/** Kubernetes mode: share managers listen on ports of this range (one per RWX volume). */
export const DEFAULT_LISTEN_PORTS: PortRange = { first: 20490, last: 21489 };

export interface PortRange {
  first: number;
  last: number;
}

/** Where the share manager serves now, as its instance manager reports it. */
export interface ShareManagerServiceTarget {
  nodeID: string;
  /** The address and port ganesha listens on. */
  address: string;
  port: number;
  /** The endpoint the instance manager reports, `nfs://address:port/volume`. */
  endpoint: string;
}

export interface ShareManagerServices {
  readonly mode: 'embedded' | 'kubernetes';
  /** The annotations a new ShareManager carries, and words for its Created Event. */
  allocate(volume: string): Promise<{ annotations: Record<string, string>; description: string }>;
  /** Whether the ShareManager carries what `allocate` gives (false: allocate and annotate it). */
  allocated(shareManager: ShareManager): boolean;
  /**
   * CreateShareManager's address and port on a node; `nodeAddress` is that node's instance
   * manager address (undefined when not known).
   */
  listenAddress(
    shareManager: ShareManager,
    nodeAddress: string | undefined,
  ): { address: string; port: number };
  /** Makes the stable address lead to `target`; the address clients mount and the endpoint to publish. */
  ensure(
    shareManager: ShareManager,
    target: ShareManagerServiceTarget,
  ): Promise<{ address: string; endpoint: string }>;
  /** Removes what `ensure` made (nothing in embedded mode); idempotent. */
  remove(volume: string): Promise<void>;
}

/** Today's behaviour of `hornbill up`: a loopback address per volume, bound wherever it runs. */
export function embeddedShareManagerServices(options: {
  allocator: AddressAllocator;
  nfsPort: number;
}): ShareManagerServices {
  const { allocator, nfsPort } = options;
  return {
    mode: 'embedded',
    async allocate(volume) {
      const address = await allocator.allocate(volume);
      return {
        annotations: { [SERVICE_ADDRESS_ANNOTATION]: address },
        description: `at service address ${address}:${nfsPort}`,
      };
    },
    allocated: (shareManager) =>
      shareManager.metadata.annotations?.[SERVICE_ADDRESS_ANNOTATION] !== undefined,
    listenAddress: (shareManager) => ({
      address: shareManager.metadata.annotations?.[SERVICE_ADDRESS_ANNOTATION] ?? '',
      port: nfsPort,
    }),
    ensure: async (_shareManager, target) => ({ address: target.address, endpoint: target.endpoint }),
    remove: async () => {},
  };
}

/** The listen port a volume prefers: `first + sha256(volume) mod size`, then the next free one. */
export function listenPortFor(volume: string, range: PortRange, taken: ReadonlySet<number>): number {
  const size = range.last - range.first + 1;
  const start = createHash('sha256').update(volume).digest().readUInt32BE(0) % size;
  for (let step = 0; step < size; step++) {
    const candidate = range.first + ((start + step) % size);
    if (!taken.has(candidate)) return candidate;
  }
  throw new HornbillError(
    'SHARE_MANAGER_PORT_EXHAUSTED',
    `all ${size} share-manager listen ports ${range.first}-${range.last} are taken`,
    { volume, first: range.first, last: range.last },
  );
}

export function checkPortRange(range: PortRange): PortRange {
  const valid = (port: number) => Number.isInteger(port) && port >= 1024 && port <= 65535;
  if (!valid(range.first) || !valid(range.last) || range.first > range.last)
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `listen ports ${range.first}-${range.last} are not a range of 1024-65535`,
      {
        field: 'listenPorts',
      },
    );
  return range;
}

/**
 * Allocates listen ports one at a time (Kubernetes mode), distinct across every ShareManager
 * of the namespace, so that a share manager can move to any node without a collision.
 */
export class ListenPortAllocator {
  private readonly range: PortRange;
  private readonly store: ResourceStore;
  private readonly namespace: string;
  /** Ports handed out whose ShareManager may not be listed yet. */
  private readonly reserved = new Set<number>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: { range: PortRange; store: ResourceStore; namespace: string }) {
    this.range = checkPortRange(options.range);
    this.store = options.store;
    this.namespace = options.namespace;
  }

  /** The volume's port: the one its ShareManager holds already, else a free one of the range. */
  allocate(volume: string): Promise<number> {
    const run = this.tail.then(async () => {
      const { items } = await this.store.list('ShareManager', { namespace: this.namespace });
      const portOf = (item: ShareManager) =>
        Number(item.metadata.annotations?.[LISTEN_PORT_ANNOTATION] ?? Number.NaN);
      const own = items.find((item) => item.metadata.name === volume);
      if (own !== undefined && Number.isInteger(portOf(own))) return portOf(own);
      const taken = new Set(items.map(portOf).filter((port) => Number.isInteger(port)));
      for (const reserved of this.reserved) taken.add(reserved);
      const port = listenPortFor(volume, this.range, taken);
      // Held until the ShareManager carrying it is listed by the next allocation.
      this.reserved.add(port);
      setTimeout(() => this.reserved.delete(port), 30_000).unref();
      return port;
    });
    this.tail = run.catch(() => {});
    return run;
  }
}

/** Kubernetes mode's listen address: the node's address, the ShareManager's allocated port. */
export function kubernetesListenAddress(
  shareManager: ShareManager,
  nodeAddress: string | undefined,
): { address: string; port: number } {
  const node = shareManager.status?.nodeID ?? '';
  if (nodeAddress === undefined || nodeAddress === '')
    throw new HornbillError(
      'INSTANCE_MANAGER_UNREACHABLE',
      `the address of node ${node}'s instance manager is not known (not discovered yet)`,
      { node },
    );
  const port = Number(shareManager.metadata.annotations?.[LISTEN_PORT_ANNOTATION] ?? Number.NaN);
  if (!Number.isInteger(port))
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `ShareManager ${shareManager.metadata.name} has no ${LISTEN_PORT_ANNOTATION} annotation`,
      { field: LISTEN_PORT_ANNOTATION },
    );
  return { address: nodeAddress, port };
}
