/** BackupTarget: where backups are stored (s3://, nfs://, file://, ...). */
import type { Resource, StatusBase, WithOptional } from '../api.ts';
import { DNS_SUBDOMAIN_PATTERN } from '../names.ts';
import { Schema } from '../schema.ts';
import { AGE_COLUMN, type KindDefinition, statusBaseProperties } from './common.ts';

export interface BackupTargetSpec {
  /** '' for none; otherwise s3://bucket@region/path, nfs://server:/path, cifs://..., azblob://..., file:///path. */
  backupTargetURL: string;
  /** The Secret holding the target's credentials; '' for none. */
  credentialSecret: string;
  /** 0 turns polling off. */
  pollIntervalSeconds: number;
  syncRequestedAt?: string;
}

export type BackupTargetSpecInput = WithOptional<
  BackupTargetSpec,
  'backupTargetURL' | 'credentialSecret' | 'pollIntervalSeconds'
>;

export interface BackupTargetStatus extends StatusBase {
  available?: boolean;
  lastSyncedAt?: string;
}

export type BackupTarget = Resource<'BackupTarget', BackupTargetSpec, BackupTargetStatus>;

export const backupTargetDefinition: KindDefinition = {
  kind: 'BackupTarget',
  plural: 'backuptargets',
  singular: 'backuptarget',
  shortNames: ['hbbt'],
  description: 'Where backups are stored.',
  nameRule: 'dns-subdomain',
  spec: Schema.object({
    backupTargetURL: Schema.string({
      pattern: '^$|^(s3|nfs|cifs|azblob|file)://.+$',
      maxLength: 4096,
      default: '',
    }),
    credentialSecret: Schema.string({ pattern: `^$|${DNS_SUBDOMAIN_PATTERN}`, maxLength: 253, default: '' }),
    pollIntervalSeconds: Schema.integer({ minimum: 0, maximum: 31_536_000, default: 300 }),
    syncRequestedAt: Schema.timestamp('Set to ask for a sync now.'),
  }),
  status: Schema.object({
    ...statusBaseProperties,
    available: Schema.boolean(),
    lastSyncedAt: Schema.timestamp('When the target was last read.'),
  }),
  printerColumns: [
    { name: 'URL', type: 'string', jsonPath: '.spec.backupTargetURL' },
    { name: 'Credential', type: 'string', jsonPath: '.spec.credentialSecret' },
    { name: 'Poll_Interval', type: 'integer', jsonPath: '.spec.pollIntervalSeconds' },
    { name: 'Available', type: 'boolean', jsonPath: '.status.available' },
    { name: 'Last_Synced', type: 'date', jsonPath: '.status.lastSyncedAt' },
    AGE_COLUMN,
  ],
};
