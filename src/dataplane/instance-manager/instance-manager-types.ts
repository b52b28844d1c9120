/** Options, info and result shapes of the instance manager (instance-manager.ts). */
import type { HostOperations } from '../../csi/host/types.ts';
import type { Logger } from '../../logging.ts';
import type { EngineControlStatus, PurgeState } from './engine-instance.ts';
import type { PortRange } from './port-allocator.ts';

export const API_VERSION = 1;

export interface InstanceManagerOptions {
  nodeName: string;
  /** The node address every server of this process listens on. */
  address: string;
  /** Absolute paths of the node's disks; replicas live in `<disk>/replicas/<data directory>/`. */
  disks: string[];
  /** Ports for replica data servers; undefined: each replica binds a free port. */
  replicaPorts?: PortRange;
  /** iSCSI portal port (0: a free one). Default 3260. */
  iscsiPort?: number;
  /** NBD server port (0: a free one). Default 10809. */
  nbdPort?: number;
  /** Engine worker threads when a CreateEngine does not say (default 1). */
  defaultWorkers?: 0 | 1;
  log?: Logger;
  /** Engines and replicas at most (default 512). */
  maxInstances?: number;
  /** Log records kept per instance (default 1000). */
  logHistoryRecords?: number;
  /** How often each engine's status is read for watchers (default 1000 ms). */
  engineStatusIntervalMs?: number;
  /** Heap limit of each replica thread (default 1024 MiB): a runaway replica ends alone. */
  replicaHeapLimitMb?: number;
  /** How long opening a replica (with crash recovery) may take (default 120 s). */
  replicaStartTimeoutMs?: number;
  /** How long a replica thread may take to stop before it is terminated (default 30 s). */
  stopTimeoutMs?: number;
  /** A replica thread that answers no heartbeat for this long is terminated (default 60 s). */
  replicaHeartbeatTimeoutMs?: number;
  /**
   * Test-only failpoint, from HORNBILL_INSTANCE_FAILPOINT:
   * `replica-crash-on-write:<replica name>:<offset bytes>` makes the first thread started
   * for that replica throw an uncaught exception after it applies a write covering the
   * offset; `replica-hang-on-write:…` makes it spin forever instead.
   */
  failpoint?: string;
  /**
   * Host operations able to log in to iSCSI targets and mount (the CLI's --attach-devices on
   * a host with iscsiadm): share managers may then export the volume's block device. Absent:
   * share managers export a plain directory only (share-manager-host.ts).
   */
  shareManagerDeviceHost?: HostOperations;
  /** The command that runs `hornbill share-manager` (default: this Node with bin/hornbill.mjs). */
  shareManagerCommand?: string[];
}

export interface InstanceManagerInfo {
  nodeName: string;
  address: string;
  iscsi: { host: string; port: number };
  nbd: { host: string; port: number };
  diskPaths: string[];
  replicaPorts: PortRange | undefined;
  apiVersion: number;
  startedAt: string;
  counters: Record<string, number>;
}

export interface DeleteResult {
  found: boolean;
  dataRemoved: boolean;
}

export interface EngineStatusView extends EngineControlStatus {
  instance: string;
  volumeName: string;
  purge: PurgeState;
  isExpanding: boolean;
  lastExpansionError: string;
}
