/** Volume: a replicated block device — what users create, attach and delete. */
import { BLOCK_SIZE, MAX_VOLUME_BYTES } from '../../storage/constants.ts';
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { parseByteQuantity } from '../quantity.ts';
import { type FieldError, Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  byteQuantitySchema,
  bytesSchema,
  check,
  type KindDefinition,
  optionalNodeSchema,
  statusBaseProperties,
  tagListSchema,
} from './common.ts';

export const ACCESS_MODES = ['rwo', 'rwop', 'rwx'] as const;
export const DATA_LOCALITIES = ['disabled', 'best-effort', 'strict-local'] as const;
export const FRONTENDS = ['iscsi', 'nbd'] as const;
/** Per-volume override of a global setting; `ignored` follows the setting. */
export const SETTING_OVERRIDES = ['ignored', 'enabled', 'disabled'] as const;
export const REPLICA_AUTO_BALANCE_MODES = ['ignored', 'disabled', 'least-effort', 'best-effort'] as const;
export const SNAPSHOT_DATA_INTEGRITY_MODES = ['ignored', 'disabled', 'enabled', 'fast-check'] as const;
export const BACKUP_COMPRESSION_METHODS = ['ignored', 'none', 'lz4', 'gzip'] as const;
export const VOLUME_STATES = [
  'creating',
  'attached',
  'detached',
  'attaching',
  'detaching',
  'deleting',
] as const;
export const VOLUME_ROBUSTNESS = ['healthy', 'degraded', 'faulted', 'unknown'] as const;
/** Longhorn's limits on numberOfReplicas and snapshotMaxCount. */
export const MAX_REPLICA_COUNT = 20;
export const MAX_SNAPSHOT_COUNT = 250;

export type AccessMode = (typeof ACCESS_MODES)[number];
export type DataLocality = (typeof DATA_LOCALITIES)[number];
export type Frontend = (typeof FRONTENDS)[number];
export type SettingOverride = (typeof SETTING_OVERRIDES)[number];
export type VolumeState = (typeof VOLUME_STATES)[number];
export type VolumeRobustness = (typeof VOLUME_ROBUSTNESS)[number];

export interface VolumeSpec {
  /** Size as a quantity (`2Gi`); a multiple of 4 KiB. */
  size: string;
  frontend: Frontend;
  /** Attach without a frontend (for snapshots, backups, rebuilds). */
  disableFrontend: boolean;
  /** Restore from this backup URL at creation. */
  fromBackup?: string;
  /** Clone from `vol://<volume>` or `snap://<volume>/<snapshot>` at creation. */
  dataSource?: string;
  dataLocality: DataLocality;
  /** Minutes a failed replica is kept before it is deleted. */
  staleReplicaTimeout: number;
  /** The node the volume should be attached to; '' for detached. Written from attachment tickets. */
  nodeID: string;
  diskSelector: string[];
  nodeSelector: string[];
  replicaSoftAntiAffinity: SettingOverride;
  replicaZoneSoftAntiAffinity: SettingOverride;
  replicaDiskSoftAntiAffinity: SettingOverride;
  accessMode: AccessMode;
  numberOfReplicas: number;
  replicaAutoBalance: (typeof REPLICA_AUTO_BALANCE_MODES)[number];
  snapshotDataIntegrity: (typeof SNAPSHOT_DATA_INTEGRITY_MODES)[number];
  backupCompressionMethod: (typeof BACKUP_COMPRESSION_METHODS)[number];
  snapshotMaxCount: number;
  /** Total snapshot size limit as a quantity; '0' for none, else at least twice the size. */
  snapshotMaxSize: string;
  /** MiB/s per rebuild; 0 follows the setting. */
  replicaRebuildingBandwidthLimit: number;
}

/** Fields with schema defaults: optional when creating. */
export type VolumeSpecInput = WithOptional<
  VolumeSpec,
  Exclude<keyof VolumeSpec, 'size' | 'fromBackup' | 'dataSource'>
>;

export interface KubernetesStatus {
  pvName?: string;
  pvcName?: string;
  namespace?: string;
  pvStatus?: string;
  lastPVCRefAt?: string;
  workloads?: { podName: string; podStatus?: string; workloadName?: string; workloadType?: string }[];
}

export interface VolumeStatus extends StatusBase {
  state?: VolumeState;
  robustness?: VolumeRobustness;
  /** Absent while detached (so that `kubectl get` prints <none>). */
  currentNodeID?: string;
  /** `iscsi://...` or `nbd://...` while attached with a frontend. */
  endpoint?: string;
  frontendDisabled?: boolean;
  /** Bytes the replicas hold (the largest replica). */
  actualSize?: number;
  expansionRequired?: boolean;
  kubernetesStatus?: KubernetesStatus;
  lastBackup?: string;
  lastBackupAt?: string;
  lastDegradedAt?: string;
  lastAutoSalvagedAt?: string;
  remountRequestedAt?: string;
  shareEndpoint?: string;
  shareState?: string;
  restoreRequired?: boolean;
  /** Progress of filling the volume from spec.dataSource (absent without one). */
  cloneStatus?: VolumeCloneStatus;
}

export const CLONE_STATES = ['pending', 'copying', 'completed', 'failed'] as const;

export interface VolumeCloneStatus {
  /** pending → copying → completed; failed is tried again at nextAttemptAt. */
  state: (typeof CLONE_STATES)[number];
  sourceVolume: string;
  /** The source's snapshot copied (for vol:// the one taken for the clone). */
  snapshot: string;
  /** Where both volumes are attached while the data is copied. */
  nodeID?: string;
  /** 0-100. */
  progress: number;
  transferredBytes?: number;
  attemptCount: number;
  startedAt?: string;
  completedAt?: string;
  nextAttemptAt?: string;
  error?: string;
}

export type Volume = Resource<'Volume', VolumeSpec, VolumeStatus>;

const spec = Schema.object(
  {
    size: byteQuantitySchema('Size as a quantity (2Gi, 10737418240); a multiple of 4 KiB.'),
    frontend: Schema.enumeration(FRONTENDS, { default: 'iscsi', description: 'How the volume is exposed.' }),
    disableFrontend: Schema.boolean({ default: false }),
    fromBackup: Schema.string({
      pattern: '^[a-z0-9]+://.+$',
      maxLength: 4096,
      description: 'Backup URL to restore from.',
    }),
    dataSource: Schema.string({
      pattern:
        '^(vol://[a-z0-9]([-a-z0-9]*[a-z0-9])?|snap://[a-z0-9]([-a-z0-9]*[a-z0-9])?/[A-Za-z0-9._-]{1,128})$',
      maxLength: 300,
      description: 'vol://<volume> or snap://<volume>/<snapshot> to clone from.',
    }),
    dataLocality: Schema.enumeration(DATA_LOCALITIES, { default: 'disabled' }),
    staleReplicaTimeout: Schema.integer({
      minimum: 1,
      maximum: 525_600,
      default: 2880,
      description: 'Minutes.',
    }),
    nodeID: optionalNodeSchema('Node to attach to; empty for detached.'),
    diskSelector: tagListSchema('Disk tags a replica disk must carry.'),
    nodeSelector: tagListSchema('Node tags a replica node must carry.'),
    replicaSoftAntiAffinity: Schema.enumeration(SETTING_OVERRIDES, { default: 'ignored' }),
    replicaZoneSoftAntiAffinity: Schema.enumeration(SETTING_OVERRIDES, { default: 'ignored' }),
    replicaDiskSoftAntiAffinity: Schema.enumeration(SETTING_OVERRIDES, { default: 'ignored' }),
    accessMode: Schema.enumeration(ACCESS_MODES, { default: 'rwo' }),
    numberOfReplicas: Schema.integer({ minimum: 1, maximum: MAX_REPLICA_COUNT, default: 3 }),
    replicaAutoBalance: Schema.enumeration(REPLICA_AUTO_BALANCE_MODES, { default: 'ignored' }),
    snapshotDataIntegrity: Schema.enumeration(SNAPSHOT_DATA_INTEGRITY_MODES, { default: 'ignored' }),
    backupCompressionMethod: Schema.enumeration(BACKUP_COMPRESSION_METHODS, { default: 'ignored' }),
    snapshotMaxCount: Schema.integer({
      minimum: 2,
      maximum: MAX_SNAPSHOT_COUNT,
      default: MAX_SNAPSHOT_COUNT,
    }),
    snapshotMaxSize: byteQuantitySchema('0 for no limit.', '0'),
    replicaRebuildingBandwidthLimit: Schema.integer({
      minimum: 0,
      maximum: 100_000,
      default: 0,
      description: 'MiB/s.',
    }),
  },
  { required: ['size'] },
);

const status = Schema.object({
  ...statusBaseProperties,
  state: Schema.enumeration(VOLUME_STATES),
  robustness: Schema.enumeration(VOLUME_ROBUSTNESS),
  currentNodeID: Schema.string({ maxLength: 253 }),
  endpoint: Schema.string({ maxLength: 4096 }),
  frontendDisabled: Schema.boolean(),
  actualSize: bytesSchema('Bytes the replicas hold.'),
  expansionRequired: Schema.boolean(),
  kubernetesStatus: Schema.object({
    pvName: Schema.string(),
    pvcName: Schema.string(),
    namespace: Schema.string(),
    pvStatus: Schema.string(),
    lastPVCRefAt: Schema.timestamp('When a PVC last referred to the volume.'),
    workloads: Schema.array(
      Schema.object(
        {
          podName: Schema.string(),
          podStatus: Schema.string(),
          workloadName: Schema.string(),
          workloadType: Schema.string(),
        },
        { required: ['podName'] },
      ),
      { maxItems: 256 },
    ),
  }),
  lastBackup: Schema.string(),
  lastBackupAt: Schema.timestamp('When the last backup completed.'),
  lastDegradedAt: Schema.timestamp('When the volume last became degraded.'),
  lastAutoSalvagedAt: Schema.timestamp('When the volume was last salvaged automatically.'),
  remountRequestedAt: Schema.timestamp('When workloads were last asked to remount.'),
  shareEndpoint: Schema.string(),
  shareState: Schema.string(),
  restoreRequired: Schema.boolean(),
  cloneStatus: Schema.object(
    {
      state: Schema.enumeration(CLONE_STATES),
      sourceVolume: Schema.string({ maxLength: 253 }),
      snapshot: Schema.string({ maxLength: 253 }),
      nodeID: Schema.string({ maxLength: 253 }),
      progress: Schema.integer({ minimum: 0, maximum: 100 }),
      transferredBytes: bytesSchema('Data bytes copied.'),
      attemptCount: Schema.integer({ minimum: 0 }),
      startedAt: Schema.timestamp('When the copy started.'),
      completedAt: Schema.timestamp('When the copy completed.'),
      nextAttemptAt: Schema.timestamp('When a failed clone is tried again.'),
      error: Schema.string({ maxLength: 4096 }),
    },
    { required: ['state', 'sourceVolume', 'snapshot', 'progress', 'attemptCount'] },
  ),
});

/** The reasons a size quantity is not a usable volume size (empty when it is). */
export function volumeSizeProblems(size: string, field: string): FieldError[] {
  const bytes = parseByteQuantity(size);
  if (bytes === undefined)
    return [{ field, reason: `${JSON.stringify(size)} is not a whole number of bytes` }];
  if (bytes <= 0) return [{ field, reason: 'must be greater than 0' }];
  if (bytes % BLOCK_SIZE !== 0)
    return [{ field, reason: `must be a multiple of ${BLOCK_SIZE} bytes, not ${bytes}` }];
  if (bytes > MAX_VOLUME_BYTES)
    return [{ field, reason: `must be at most ${MAX_VOLUME_BYTES} bytes, not ${bytes}` }];
  return [];
}

export const volumeDefinition: KindDefinition = {
  kind: 'Volume',
  plural: 'volumes',
  singular: 'volume',
  shortNames: ['hbv'],
  description: 'A replicated block volume.',
  nameRule: 'dns-label',
  spec,
  status,
  printerColumns: [
    { name: 'State', type: 'string', jsonPath: '.status.state', description: 'attached, detached, ...' },
    {
      name: 'Robustness',
      type: 'string',
      jsonPath: '.status.robustness',
      description: 'healthy, degraded, ...',
    },
    { name: 'Size', type: 'string', jsonPath: '.spec.size' },
    { name: 'Node', type: 'string', jsonPath: '.status.currentNodeID', description: 'Where it is attached.' },
    AGE_COLUMN,
    { name: 'Replicas', type: 'integer', jsonPath: '.spec.numberOfReplicas', priority: 1 },
    { name: 'Access', type: 'string', jsonPath: '.spec.accessMode', priority: 1 },
    { name: 'Locality', type: 'string', jsonPath: '.spec.dataLocality', priority: 1 },
  ],
  validate(object) {
    const volume = object.spec as VolumeSpec;
    const errors = volumeSizeProblems(volume.size, 'spec.size');
    const bytes = parseByteQuantity(volume.size) ?? 0;
    const limit = parseByteQuantity(volume.snapshotMaxSize);
    if (limit === undefined)
      errors.push({ field: 'spec.snapshotMaxSize', reason: 'is not a whole number of bytes' });
    else if (limit !== 0 && limit < 2 * bytes) {
      errors.push({ field: 'spec.snapshotMaxSize', reason: 'must be 0 or at least twice the volume size' });
    }
    errors.push(
      ...check(
        volume.dataLocality !== 'strict-local' || volume.numberOfReplicas === 1,
        'spec.numberOfReplicas',
        'must be 1 with dataLocality strict-local',
      ),
      ...check(
        volume.fromBackup === undefined || volume.dataSource === undefined,
        'spec.dataSource',
        'cannot be set together with spec.fromBackup',
      ),
    );
    return errors;
  },
  validateUpdate(previous, next) {
    const before = parseByteQuantity((previous.spec as VolumeSpec).size) ?? 0;
    const after = parseByteQuantity((next.spec as VolumeSpec).size) ?? 0;
    return check(after >= before, 'spec.size', `cannot shrink (was ${(previous.spec as VolumeSpec).size})`);
  },
};
