/** Engine: the storage controller process of one attached volume (`<volume>-e-0`). */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  addressSchema,
  byteQuantitySchema,
  bytesSchema,
  desireStateSchema,
  INSTANCE_STATES,
  type InstanceState,
  immutable,
  ipSchema,
  type KindDefinition,
  optionalNodeSchema,
  portSchema,
  statusBaseProperties,
  volumeNameSchema,
} from './common.ts';
import { FRONTENDS, type Frontend } from './volume.ts';

export const REPLICA_MODES = ['RW', 'WO', 'ERR'] as const;
export type ReplicaMode = (typeof REPLICA_MODES)[number];

export interface EngineSpec {
  volumeName: string;
  volumeSize: string;
  /** Where the engine runs; '' until the volume is attached. */
  nodeID: string;
  desireState: 'running' | 'stopped';
  frontend: Frontend;
  disableFrontend: boolean;
  /** Replica name → host:port of its data server. */
  replicaAddressMap: Record<string, string>;
  salvageRequested: boolean;
}

export type EngineSpecInput = WithOptional<
  EngineSpec,
  'nodeID' | 'desireState' | 'frontend' | 'disableFrontend' | 'replicaAddressMap' | 'salvageRequested'
>;

export interface RebuildStatus {
  isRebuilding: boolean;
  /** 0-100. */
  progress: number;
  state: string;
  error?: string;
  fromReplicaAddress?: string;
}

export interface SnapshotInfo {
  name: string;
  parent: string;
  children: Record<string, boolean>;
  removed: boolean;
  userCreated: boolean;
  created: string;
  /** Bytes. */
  size: number;
  labels: Record<string, string>;
}

export interface PurgeStatus {
  isPurging: boolean;
  progress: number;
  state: string;
  error?: string;
}

export interface EngineBackupStatus {
  snapshotName: string;
  progress: number;
  state: string;
  backupURL?: string;
  error?: string;
  replicaAddress?: string;
}

export interface EngineStatus extends StatusBase {
  currentState?: InstanceState;
  instanceManagerName?: string;
  ip?: string;
  port?: number;
  endpoint?: string;
  currentSize?: string;
  currentReplicaAddressMap?: Record<string, string>;
  replicaModeMap?: Record<string, ReplicaMode>;
  /** Keyed by the rebuilding replica's address. */
  rebuildStatus?: Record<string, RebuildStatus>;
  snapshots?: Record<string, SnapshotInfo>;
  purgeStatus?: Record<string, PurgeStatus>;
  /** Keyed by backup name. */
  backupStatus?: Record<string, EngineBackupStatus>;
  isExpanding?: boolean;
  lastExpansionError?: string;
  salvageExecuted?: boolean;
}

export type Engine = Resource<'Engine', EngineSpec, EngineStatus>;

const progressSchema = Schema.integer({ minimum: 0, maximum: 100 });

const spec = Schema.object(
  {
    volumeName: volumeNameSchema('The volume this engine serves.'),
    volumeSize: byteQuantitySchema('The size the engine presents.'),
    nodeID: optionalNodeSchema('Where the engine runs.'),
    desireState: desireStateSchema,
    frontend: Schema.enumeration(FRONTENDS, { default: 'iscsi' }),
    disableFrontend: Schema.boolean({ default: false }),
    replicaAddressMap: Schema.map(addressSchema, { maxProperties: 64, default: {} }),
    salvageRequested: Schema.boolean({ default: false }),
  },
  { required: ['volumeName', 'volumeSize'] },
);

const status = Schema.object({
  ...statusBaseProperties,
  currentState: Schema.enumeration(INSTANCE_STATES),
  instanceManagerName: Schema.string({ maxLength: 253 }),
  ip: ipSchema,
  port: portSchema,
  endpoint: Schema.string({ maxLength: 4096 }),
  currentSize: byteQuantitySchema('The size the running engine presents.'),
  currentReplicaAddressMap: Schema.map(addressSchema, { maxProperties: 64 }),
  replicaModeMap: Schema.map(Schema.enumeration(REPLICA_MODES), { maxProperties: 64 }),
  rebuildStatus: Schema.map(
    Schema.object(
      {
        isRebuilding: Schema.boolean(),
        progress: progressSchema,
        state: Schema.string(),
        error: Schema.string(),
        fromReplicaAddress: Schema.string(),
      },
      { required: ['isRebuilding', 'progress', 'state'] },
    ),
  ),
  snapshots: Schema.map(
    Schema.object(
      {
        name: Schema.string(),
        parent: Schema.string(),
        children: Schema.map(Schema.boolean()),
        removed: Schema.boolean(),
        userCreated: Schema.boolean(),
        created: Schema.string(),
        size: bytesSchema('Bytes the snapshot holds.'),
        labels: Schema.map(Schema.string()),
      },
      { required: ['name', 'parent', 'children', 'removed', 'userCreated', 'created', 'size', 'labels'] },
    ),
  ),
  purgeStatus: Schema.map(
    Schema.object(
      {
        isPurging: Schema.boolean(),
        progress: progressSchema,
        state: Schema.string(),
        error: Schema.string(),
      },
      { required: ['isPurging', 'progress', 'state'] },
    ),
  ),
  backupStatus: Schema.map(
    Schema.object(
      {
        snapshotName: Schema.string(),
        progress: progressSchema,
        state: Schema.string(),
        backupURL: Schema.string(),
        error: Schema.string(),
        replicaAddress: Schema.string(),
      },
      { required: ['snapshotName', 'progress', 'state'] },
    ),
  ),
  isExpanding: Schema.boolean(),
  lastExpansionError: Schema.string(),
  salvageExecuted: Schema.boolean(),
});

export const engineDefinition: KindDefinition = {
  kind: 'Engine',
  plural: 'engines',
  singular: 'engine',
  shortNames: ['hbe'],
  description: 'The storage controller of one attached volume.',
  nameRule: 'dns-subdomain',
  spec,
  status,
  printerColumns: [
    { name: 'State', type: 'string', jsonPath: '.status.currentState' },
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeID' },
    { name: 'Instance_Manager', type: 'string', jsonPath: '.status.instanceManagerName' },
    AGE_COLUMN,
    { name: 'Volume', type: 'string', jsonPath: '.spec.volumeName', priority: 1 },
    { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
  ],
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as EngineSpec).volumeName,
      (next.spec as EngineSpec).volumeName,
      'spec.volumeName',
    );
  },
};
