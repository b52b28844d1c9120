/**
 * Small builders of Volume, Node and Replica objects for the scheduler tests, with the
 * defaults the schemas give: a node is Ready and Schedulable with one 100 GiB disk `default`
 * (100 GiB available, nothing reserved) unless told otherwise.
 */
import type { Condition, ObjectMeta } from '../../../../src/resources/api.ts';
import type { ReplicaMode } from '../../../../src/resources/kinds/engine.ts';
import type { DiskStatus, Node } from '../../../../src/resources/kinds/node.ts';
import type { Replica } from '../../../../src/resources/kinds/replica.ts';
import type { Volume, VolumeSpec, VolumeStatus } from '../../../../src/resources/kinds/volume.ts';
import { resolveSettings, type SettingValues } from '../../../../src/resources/settings.ts';

export const GiB = 1024 ** 3;
const NAMESPACE = 'hornbill-system';

function meta(name: string, creationTimestamp = '2026-01-01T00:00:00Z'): ObjectMeta {
  return {
    name,
    namespace: NAMESPACE,
    uid: `uid-${name}`,
    resourceVersion: '1',
    generation: 1,
    creationTimestamp,
  };
}

function condition(type: string, status: boolean | undefined, reason = ''): Condition[] {
  if (status === undefined) return [];
  return [
    {
      type,
      status: status ? 'True' : 'False',
      reason: reason === '' ? (status ? type : `Not${type}`) : reason,
      message: '',
      lastTransitionTime: '2026-01-01T00:00:00Z',
    },
  ];
}

export function makeVolume(
  name: string,
  spec: Partial<VolumeSpec> = {},
  status: Partial<VolumeStatus> = {},
): Volume {
  return {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Volume',
    metadata: meta(name),
    spec: {
      size: '10Gi',
      frontend: 'iscsi',
      disableFrontend: false,
      dataLocality: 'disabled',
      staleReplicaTimeout: 2880,
      nodeID: '',
      diskSelector: [],
      nodeSelector: [],
      replicaSoftAntiAffinity: 'ignored',
      replicaZoneSoftAntiAffinity: 'ignored',
      replicaDiskSoftAntiAffinity: 'ignored',
      accessMode: 'rwo',
      numberOfReplicas: 3,
      replicaAutoBalance: 'ignored',
      snapshotDataIntegrity: 'ignored',
      backupCompressionMethod: 'ignored',
      snapshotMaxCount: 250,
      snapshotMaxSize: '0',
      replicaRebuildingBandwidthLimit: 0,
      ...spec,
    },
    status,
  };
}

export interface DiskOptions {
  path?: string;
  maximumBytes?: number;
  availableBytes?: number;
  reservedBytes?: number;
  tags?: string[];
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  uuid?: string;
  /** undefined: no Ready condition on the disk. */
  ready?: boolean;
  schedulable?: boolean;
  /** The disk has no status entry yet. */
  noStatus?: boolean;
}

export interface NodeOptions {
  zone?: string;
  tags?: string[];
  /** undefined: no Ready condition. Defaults to true. */
  ready?: boolean | undefined;
  schedulable?: boolean | undefined;
  allowScheduling?: boolean;
  evictionRequested?: boolean;
  deleting?: boolean;
  disks?: Record<string, DiskOptions>;
}

export function makeNode(name: string, options: NodeOptions = {}): Node {
  const disks = options.disks ?? { default: {} };
  const node: Node = {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Node',
    metadata: meta(name),
    spec: {
      disks: {},
      allowScheduling: options.allowScheduling ?? true,
      evictionRequested: options.evictionRequested ?? false,
      tags: options.tags ?? [],
    },
    status: {
      conditions: [
        ...condition('Ready', 'ready' in options ? options.ready : true),
        ...condition('Schedulable', 'schedulable' in options ? options.schedulable : true),
      ],
      diskStatus: {},
    },
  };
  if (options.deleting) node.metadata.deletionTimestamp = '2026-01-02T00:00:00Z';
  if (options.zone !== undefined) node.status!.zone = options.zone;
  for (const [diskName, disk] of Object.entries(disks)) {
    node.spec.disks[diskName] = {
      path: disk.path ?? `/data/${diskName}`,
      allowScheduling: disk.allowScheduling ?? true,
      evictionRequested: disk.evictionRequested ?? false,
      storageReserved: String(disk.reservedBytes ?? 0),
      tags: disk.tags ?? [],
      diskType: 'filesystem',
    };
    if (disk.noStatus) continue;
    const maximumBytes = disk.maximumBytes ?? 100 * GiB;
    const status: DiskStatus = {
      conditions: [...condition('Ready', disk.ready), ...condition('Schedulable', disk.schedulable)],
      storageAvailable: disk.availableBytes ?? maximumBytes,
      storageScheduled: 0,
      storageMaximum: maximumBytes,
      scheduledReplica: {},
    };
    if (disk.uuid !== undefined) status.diskUUID = disk.uuid;
    node.status!.diskStatus![diskName] = status;
  }
  return node;
}

export interface ReplicaOptions {
  nodeID?: string;
  /** The disk's UUID or name; defaults to `default` when a node is given. */
  diskID?: string;
  diskPath?: string;
  size?: string;
  failed?: boolean;
  deleting?: boolean;
  evicting?: boolean;
  mode?: ReplicaMode;
  hardNodeAffinity?: string;
  created?: string;
}

export function makeReplica(name: string, volumeName: string, options: ReplicaOptions = {}): Replica {
  const nodeID = options.nodeID ?? '';
  const replica: Replica = {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Replica',
    metadata: meta(name, options.created),
    spec: {
      volumeName,
      volumeSize: options.size ?? '10Gi',
      nodeID,
      diskID: options.diskID ?? (nodeID === '' ? '' : 'default'),
      diskPath: options.diskPath ?? '',
      dataDirectoryName: nodeID === '' ? '' : `${name}-data`,
      engineName: `${volumeName}-e-0`,
      desireState: 'running',
      rebuildRetryCount: 0,
      evictionRequested: options.evicting ?? false,
    },
    status: options.mode === undefined ? {} : { mode: options.mode },
  };
  if (options.failed) replica.spec.failedAt = '2026-01-01T01:00:00Z';
  if (options.deleting) replica.metadata.deletionTimestamp = '2026-01-01T02:00:00Z';
  if (options.hardNodeAffinity !== undefined) replica.spec.hardNodeAffinity = options.hardNodeAffinity;
  return replica;
}

/** Settings with Longhorn's defaults, changed by `values` (setting name → text). */
export function makeSettings(values: Record<string, string> = {}): SettingValues {
  return resolveSettings(
    Object.entries(values).map(([name, value]) => ({ metadata: { name }, spec: { value } })),
  );
}
