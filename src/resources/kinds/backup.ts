/** Backup: a snapshot copied to a backup target. */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  bytesSchema,
  type KindDefinition,
  labelMapSchema,
  statusBaseProperties,
} from './common.ts';

export const BACKUP_STATES = ['new', 'pending', 'in-progress', 'completed', 'error', 'unknown'] as const;

export interface BackupSpec {
  /** The snapshot to back up; absent for a backup found on the target by a sync. */
  snapshotName?: string;
  volumeName?: string;
  labels: Record<string, string>;
  backupMode: 'full' | 'incremental';
  syncRequestedAt?: string;
}

export type BackupSpecInput = WithOptional<BackupSpec, 'labels' | 'backupMode'>;

export interface BackupStatus extends StatusBase {
  state?: (typeof BACKUP_STATES)[number];
  /** 0-100. */
  progress?: number;
  url?: string;
  snapshotName?: string;
  snapshotCreatedAt?: string;
  backupCreatedAt?: string;
  /** Bytes stored on the target. */
  size?: number;
  labels?: Record<string, string>;
  error?: string;
  volumeName?: string;
  volumeSize?: string;
  compressionMethod?: string;
  backupTargetName?: string;
  replicaAddress?: string;
  lastSyncedAt?: string;
}

export type Backup = Resource<'Backup', BackupSpec, BackupStatus>;

export const backupDefinition: KindDefinition = {
  kind: 'Backup',
  plural: 'backups',
  singular: 'backup',
  shortNames: ['hbb'],
  description: 'A snapshot copied to a backup target.',
  nameRule: 'dns-subdomain',
  spec: Schema.object({
    snapshotName: Schema.string({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
    volumeName: Schema.string({ maxLength: 63 }),
    labels: labelMapSchema('Labels stored with the backup.'),
    backupMode: Schema.enumeration(['full', 'incremental'], { default: 'incremental' }),
    syncRequestedAt: Schema.timestamp('Set to ask for the status to be refreshed from the target.'),
  }),
  status: Schema.object({
    ...statusBaseProperties,
    state: Schema.enumeration(BACKUP_STATES),
    progress: Schema.integer({ minimum: 0, maximum: 100 }),
    url: Schema.string(),
    snapshotName: Schema.string(),
    snapshotCreatedAt: Schema.string(),
    backupCreatedAt: Schema.string(),
    size: bytesSchema('Bytes stored on the target.'),
    labels: Schema.map(Schema.string()),
    error: Schema.string(),
    volumeName: Schema.string(),
    volumeSize: Schema.string(),
    compressionMethod: Schema.string(),
    backupTargetName: Schema.string(),
    replicaAddress: Schema.string(),
    lastSyncedAt: Schema.timestamp('When the status was last read from the target.'),
  }),
  printerColumns: [
    { name: 'Snapshot', type: 'string', jsonPath: '.status.snapshotName' },
    { name: 'Size', type: 'integer', jsonPath: '.status.size' },
    { name: 'State', type: 'string', jsonPath: '.status.state' },
    { name: 'Last_Synced', type: 'date', jsonPath: '.status.lastSyncedAt' },
    AGE_COLUMN,
  ],
};
