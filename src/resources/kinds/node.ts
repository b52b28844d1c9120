/** Node: a host that holds replicas, with its disks. */
import type { Condition, Resource, StatusBase, WithOptional } from '../api.ts';
import { parseByteQuantity } from '../quantity.ts';
import { type FieldError, Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  absolutePathSchema,
  byteQuantitySchema,
  bytesSchema,
  conditionSchema,
  type KindDefinition,
  statusBaseProperties,
  tagListSchema,
} from './common.ts';

export interface DiskSpec {
  path: string;
  allowScheduling: boolean;
  evictionRequested: boolean;
  /** Space kept free for other uses, as a quantity. */
  storageReserved: string;
  tags: string[];
  diskType: 'filesystem';
}

export interface NodeSpec {
  /** Disk name → disk. */
  disks: Record<string, DiskSpec>;
  allowScheduling: boolean;
  evictionRequested: boolean;
  tags: string[];
}

export type DiskSpecInput = WithOptional<DiskSpec, Exclude<keyof DiskSpec, 'path'>>;
export type NodeSpecInput = Omit<WithOptional<NodeSpec, keyof NodeSpec>, 'disks'> & {
  disks?: Record<string, DiskSpecInput>;
};

export interface DiskStatus {
  conditions?: Condition[];
  /** Bytes. */
  storageAvailable: number;
  storageScheduled: number;
  storageMaximum: number;
  /** Replica name → its size in bytes. */
  scheduledReplica: Record<string, number>;
  diskUUID?: string;
  filesystemType?: string;
}

export interface NodeStatus extends StatusBase {
  diskStatus?: Record<string, DiskStatus>;
  zone?: string;
  region?: string;
}

export type Node = Resource<'Node', NodeSpec, NodeStatus>;

const diskSchema = Schema.object(
  {
    path: absolutePathSchema('Folder that holds replica folders.'),
    allowScheduling: Schema.boolean({ default: true }),
    evictionRequested: Schema.boolean({ default: false }),
    storageReserved: byteQuantitySchema('Space kept free for other uses.', '0'),
    tags: tagListSchema('Disk tags, matched by the diskSelector of volumes.'),
    diskType: Schema.enumeration(['filesystem'], { default: 'filesystem' }),
  },
  { required: ['path'] },
);

const spec = Schema.object({
  disks: Schema.map(diskSchema, { maxProperties: 64, default: {} }),
  allowScheduling: Schema.boolean({ default: true }),
  evictionRequested: Schema.boolean({ default: false }),
  tags: tagListSchema('Node tags, matched by the nodeSelector of volumes.'),
});

const status = Schema.object({
  ...statusBaseProperties,
  diskStatus: Schema.map(
    Schema.object(
      {
        conditions: Schema.array(conditionSchema, { maxItems: 32 }),
        storageAvailable: bytesSchema('Bytes free on the disk.'),
        storageScheduled: bytesSchema('Bytes promised to replicas.'),
        storageMaximum: bytesSchema('Bytes the disk holds.'),
        scheduledReplica: Schema.map(bytesSchema('Replica size.')),
        diskUUID: Schema.string(),
        filesystemType: Schema.string(),
      },
      { required: ['storageAvailable', 'storageScheduled', 'storageMaximum', 'scheduledReplica'] },
    ),
  ),
  zone: Schema.string({ maxLength: 253 }),
  region: Schema.string({ maxLength: 253 }),
});

const DISK_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const nodeDefinition: KindDefinition = {
  kind: 'Node',
  plural: 'nodes',
  singular: 'node',
  shortNames: ['hbn'],
  description: 'A host that holds replicas, and its disks.',
  nameRule: 'dns-subdomain',
  spec,
  status,
  printerColumns: [
    { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: 'AllowScheduling', type: 'boolean', jsonPath: '.spec.allowScheduling' },
    { name: 'Schedulable', type: 'string', jsonPath: '.status.conditions[?(@.type=="Schedulable")].status' },
    AGE_COLUMN,
    { name: 'Zone', type: 'string', jsonPath: '.status.zone', priority: 1 },
  ],
  validate(object) {
    const node = object.spec as NodeSpec;
    const errors: FieldError[] = [];
    const paths = new Map<string, string>();
    for (const [name, disk] of Object.entries(node.disks)) {
      if (name.length > 63 || !DISK_NAME.test(name)) {
        errors.push({ field: `spec.disks[${name}]`, reason: 'disk names must be DNS-1123 labels' });
      }
      const other = paths.get(disk.path);
      if (other !== undefined) {
        errors.push({ field: `spec.disks[${name}].path`, reason: `is also the path of disk ${other}` });
      }
      paths.set(disk.path, name);
      if (parseByteQuantity(disk.storageReserved) === undefined) {
        errors.push({
          field: `spec.disks[${name}].storageReserved`,
          reason: 'is not a whole number of bytes',
        });
      }
    }
    return errors;
  },
};
