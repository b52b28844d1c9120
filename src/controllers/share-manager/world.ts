/**
 * What a ShareManager reconcile works with (reconcile.ts): the store, clients of the instance
 * managers and the hosting of the share manager (hosting.ts), the leases (observed by the controller's own clock, src/share-manager/lease.ts,
 * through a `ShareManagerLeases` factory: files in embedded mode, Lease objects in Kubernetes),
 * the stable address (services.ts: a loopback address in embedded mode, a Service and its
 * EndpointSlice in Kubernetes), and the names, annotations and defaults of the controller.
 */
import type { GrpcMessage, InstanceManagerClient } from '../../dataplane/instance-manager/grpc-client.ts';
import type { AnyResource, ResourceStore, ShareManager, Volume } from '../../resources/index.ts';
import {
  breakExpiredLease,
  type LeaseObservation,
  leaseExpiry,
  observe,
  type ShareManagerLeaseLocation,
  type ShareManagerLeases,
} from '../../share-manager/index.ts';
import { type ServiceNetwork, serviceAddressFor } from './decisions.ts';
import type { ShareManagerHosting } from './hosting.ts';
import type { ShareManagerServices } from './services.ts';

export const COMPONENT = 'hornbill-share-manager-controller';
export const SHARE_MANAGER_FINALIZER = 'hornbill.io/share-manager';
/** Embedded mode: the stable loopback service address, allocated once per ShareManager. */
export const ADDRESS_ANNOTATION = 'hornbill.io/service-address';
/** Set when a move starts: when the share manager was last seen healthy (ms since the epoch). */
export const FAILOVER_STARTED_ANNOTATION = 'hornbill.io/failover-started-at-ms';
export const FAILOVER_FROM_ANNOTATION = 'hornbill.io/failover-from-node';
/** Seconds the last failover took: last seen healthy on the old node → serving on the new one. */
export const LAST_FAILOVER_SECONDS_ANNOTATION = 'hornbill.io/last-failover-seconds';
/** Nodes a share manager moved away from, whose process is deleted once they answer. */
export const PREVIOUS_NODES_ANNOTATION = 'hornbill.io/share-manager-previous-nodes';

/** The share manager process on the instance manager: `share-manager-<volume>`. */
export function shareManagerInstanceName(volume: string): string {
  return `share-manager-${volume}`;
}

/** The attachment ticket that attaches the volume where its share manager runs. */
export function ticketId(volume: string): string {
  return `share-manager-${volume}`;
}

export interface ShareManagerWorld {
  store: ResourceStore;
  namespace: string;
  nfsPort: number;
  pollIntervalMs: number;
  /** Whether the node runs an instance manager (a Hornbill node: candidates for a share manager). */
  hasInstanceManager(nodeID: string): boolean;
  /** Where the share manager process runs (hosting.ts): the instance manager's child, or a Pod. */
  hosting: ShareManagerHosting;
  /** The node's instance manager (it removes what a share manager Pod left on the node). */
  instanceManagerClient?(nodeID: string): InstanceManagerClient | undefined;
  /** The node's instance manager address (the pod IP in Kubernetes: it runs on the host network). */
  nodeAddress(nodeID: string): string | undefined;
  /** The stable address and where the share manager listens (services.ts: embedded or Kubernetes). */
  services: ShareManagerServices;
  /** Where the volume's share manager finds its lease (CreateShareManager's lease fields). */
  leaseLocation(volume: string): ShareManagerLeaseLocation;
  /** Deletes the volume's lease (file or Lease object) and forgets its observation. */
  removeLease(volume: string): Promise<void>;
  /** Reads and observes the lease; undefined when there is no lease record. */
  leaseState(volume: string): Promise<{ expired: boolean; remainingMs: number } | undefined>;
  /** Frees the expired lease as observed; false when its holder renewed meanwhile. */
  breakLease(volume: string): Promise<boolean>;
  markHealthy(volume: string): void;
  lastHealthyMs(volume: string): number | undefined;
  forget(volume: string): void;
  createRequest(volume: Volume, shareManager: ShareManager, deviceEndpoint: string): GrpcMessage;
  event(
    object: AnyResource,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    options?: { throttleMs?: number },
  ): Promise<void>;
}

/** The leases of every volume, each observed by this controller's clock. */
export class LeaseWatch {
  private readonly leases: ShareManagerLeases;
  private readonly observations = new Map<string, LeaseObservation>();

  constructor(leases: ShareManagerLeases) {
    this.leases = leases;
  }

  location(volume: string): ShareManagerLeaseLocation {
    return this.leases.location(volume);
  }

  async state(
    volume: string,
    nowMs = Date.now(),
  ): Promise<{ expired: boolean; remainingMs: number } | undefined> {
    const record = await this.leases.client(volume).get();
    if (record === undefined) {
      this.observations.delete(volume);
      return undefined;
    }
    const seen = observe(this.observations.get(volume), record, nowMs);
    this.observations.set(volume, seen);
    const { expired, remainingMs } = leaseExpiry(seen, nowMs);
    return { expired, remainingMs };
  }

  async breakExpired(volume: string, nowMs = Date.now()): Promise<boolean> {
    const seen = this.observations.get(volume);
    if (seen === undefined) return true; // no lease record: nobody holds it
    const broken = await breakExpiredLease(this.leases.client(volume), seen, nowMs);
    if (broken) this.observations.delete(volume);
    return broken;
  }

  async remove(volume: string): Promise<void> {
    await this.leases.client(volume).delete();
    this.observations.delete(volume);
  }

  forget(volume: string): void {
    this.observations.delete(volume);
  }
}

/** Allocates service addresses one at a time, so two new volumes never get the same one. */
export class AddressAllocator {
  private readonly network: ServiceNetwork;
  private readonly store: ResourceStore;
  private readonly namespace: string;
  /** Addresses handed out whose ShareManager may not be listed yet. */
  private readonly reserved = new Set<string>();
  private tail: Promise<unknown> = Promise.resolve();

  constructor(options: { network: ServiceNetwork; store: ResourceStore; namespace: string }) {
    this.network = options.network;
    this.store = options.store;
    this.namespace = options.namespace;
  }

  /** The volume's address: the one it holds already, else a free one of the network. */
  allocate(volume: string): Promise<string> {
    const run = this.tail.then(async () => {
      const { items } = await this.store.list('ShareManager', { namespace: this.namespace });
      const own = items.find((item) => item.metadata.name === volume)?.metadata.annotations?.[
        ADDRESS_ANNOTATION
      ];
      if (own !== undefined) return own;
      const taken = new Set(
        items
          .map((item) => item.metadata.annotations?.[ADDRESS_ANNOTATION])
          .filter((address) => address !== undefined),
      );
      for (const reserved of this.reserved) taken.add(reserved);
      const address = serviceAddressFor(volume, this.network, taken);
      // Held until the ShareManager carrying it is listed by the next allocation.
      this.reserved.add(address);
      setTimeout(() => this.reserved.delete(address), 30_000).unref();
      return address;
    });
    this.tail = run.catch(() => {});
    return run;
  }
}
