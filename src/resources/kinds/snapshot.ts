/** Snapshot: a point-in-time layer of a volume. */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  bytesSchema,
  immutable,
  type KindDefinition,
  labelMapSchema,
  statusBaseProperties,
  volumeNameSchema,
} from './common.ts';

export interface SnapshotSpec {
  volume: string;
  /** false: the resource tracks a snapshot that already exists in the replicas. */
  createSnapshot: boolean;
  labels: Record<string, string>;
}

export type SnapshotSpecInput = WithOptional<SnapshotSpec, 'createSnapshot' | 'labels'>;

export interface SnapshotStatus extends StatusBase {
  parent?: string;
  children?: Record<string, boolean>;
  markRemoved?: boolean;
  userCreated?: boolean;
  creationTime?: string;
  /** Bytes the snapshot layer holds. */
  size?: number;
  /** The volume size when the snapshot was taken, in bytes. */
  restoreSize?: number;
  readyToUse?: boolean;
  error?: string;
  labels?: Record<string, string>;
  checksum?: string;
}

export type Snapshot = Resource<'Snapshot', SnapshotSpec, SnapshotStatus>;

export const snapshotDefinition: KindDefinition = {
  kind: 'Snapshot',
  plural: 'snapshots',
  singular: 'snapshot',
  shortNames: ['hbsnap'],
  description: 'A point-in-time layer of a volume.',
  nameRule: 'dns-subdomain',
  spec: Schema.object(
    {
      volume: volumeNameSchema('The volume the snapshot belongs to.'),
      createSnapshot: Schema.boolean({ default: true }),
      labels: labelMapSchema('Labels stored with the snapshot in the replicas.'),
    },
    { required: ['volume'] },
  ),
  status: Schema.object({
    ...statusBaseProperties,
    parent: Schema.string(),
    children: Schema.map(Schema.boolean()),
    markRemoved: Schema.boolean(),
    userCreated: Schema.boolean(),
    creationTime: Schema.string(),
    size: bytesSchema('Bytes the snapshot holds.'),
    restoreSize: bytesSchema('Volume size at the snapshot.'),
    readyToUse: Schema.boolean(),
    error: Schema.string(),
    labels: Schema.map(Schema.string()),
    checksum: Schema.string(),
  }),
  printerColumns: [
    { name: 'Volume', type: 'string', jsonPath: '.spec.volume' },
    { name: 'Creation_Time', type: 'string', jsonPath: '.status.creationTime' },
    { name: 'Ready_To_Use', type: 'boolean', jsonPath: '.status.readyToUse' },
    { name: 'Size', type: 'integer', jsonPath: '.status.size' },
    AGE_COLUMN,
  ],
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as SnapshotSpec).volume,
      (next.spec as SnapshotSpec).volume,
      'spec.volume',
    );
  },
};
