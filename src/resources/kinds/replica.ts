/** Replica: one copy of a volume's data on one disk of one node (`<volume>-r-<random>`). */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  byteQuantitySchema,
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
import { REPLICA_MODES, type ReplicaMode } from './engine.ts';

export interface ReplicaSpec {
  volumeName: string;
  volumeSize: string;
  /** '' until scheduled. */
  nodeID: string;
  /** The disk's name on the node; '' until scheduled. */
  diskID: string;
  diskPath: string;
  /** The replica folder under `<diskPath>/replicas/`. */
  dataDirectoryName: string;
  engineName: string;
  desireState: 'running' | 'stopped';
  healthyAt?: string;
  lastHealthyAt?: string;
  failedAt?: string;
  lastFailedAt?: string;
  /** Only this node may hold the replica (strict-local, or reuse after a node came back). */
  hardNodeAffinity?: string;
  rebuildRetryCount: number;
  evictionRequested: boolean;
}

export type ReplicaSpecInput = WithOptional<
  ReplicaSpec,
  | 'nodeID'
  | 'diskID'
  | 'diskPath'
  | 'dataDirectoryName'
  | 'engineName'
  | 'desireState'
  | 'rebuildRetryCount'
  | 'evictionRequested'
>;

export interface ReplicaStatus extends StatusBase {
  currentState?: InstanceState;
  instanceManagerName?: string;
  ip?: string;
  port?: number;
  /** The mode the engine reports for this replica. */
  mode?: ReplicaMode;
}

export type Replica = Resource<'Replica', ReplicaSpec, ReplicaStatus>;

const spec = Schema.object(
  {
    volumeName: volumeNameSchema('The volume this replica belongs to.'),
    volumeSize: byteQuantitySchema('The volume size the replica holds.'),
    nodeID: optionalNodeSchema('The node holding the replica.'),
    diskID: Schema.string({ maxLength: 253, default: '', pattern: '^$|^[A-Za-z0-9][A-Za-z0-9._-]*$' }),
    diskPath: Schema.string({ maxLength: 4096, default: '', pattern: '^$|^/' }),
    dataDirectoryName: Schema.string({
      maxLength: 253,
      default: '',
      pattern: '^$|^[A-Za-z0-9][A-Za-z0-9._-]*$',
    }),
    engineName: Schema.string({ maxLength: 253, default: '' }),
    desireState: desireStateSchema,
    healthyAt: Schema.timestamp('When the replica last became healthy.'),
    lastHealthyAt: Schema.timestamp('When the replica was last seen healthy.'),
    failedAt: Schema.timestamp('When the replica failed; absent while it is healthy.'),
    lastFailedAt: Schema.timestamp('When the replica last failed.'),
    hardNodeAffinity: Schema.string({ maxLength: 253 }),
    rebuildRetryCount: Schema.integer({ minimum: 0, maximum: 1000, default: 0 }),
    evictionRequested: Schema.boolean({ default: false }),
  },
  { required: ['volumeName', 'volumeSize'] },
);

const status = Schema.object({
  ...statusBaseProperties,
  currentState: Schema.enumeration(INSTANCE_STATES),
  instanceManagerName: Schema.string({ maxLength: 253 }),
  ip: ipSchema,
  port: portSchema,
  mode: Schema.enumeration(REPLICA_MODES),
});

export const replicaDefinition: KindDefinition = {
  kind: 'Replica',
  plural: 'replicas',
  singular: 'replica',
  shortNames: ['hbr'],
  description: 'One copy of a volume on one disk of one node.',
  nameRule: 'dns-subdomain',
  spec,
  status,
  printerColumns: [
    { name: 'Instance_Manager', type: 'string', jsonPath: '.status.instanceManagerName' },
    { name: 'Mode', type: 'string', jsonPath: '.status.mode' },
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeID' },
    { name: 'Disk', type: 'string', jsonPath: '.spec.diskID' },
    AGE_COLUMN,
    { name: 'State', type: 'string', jsonPath: '.status.currentState', priority: 1 },
    { name: 'Volume', type: 'string', jsonPath: '.spec.volumeName', priority: 1 },
  ],
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as ReplicaSpec).volumeName,
      (next.spec as ReplicaSpec).volumeName,
      'spec.volumeName',
    );
  },
};
