/** ShareManager: the NFSv4 server that exports one RWX volume (`share-manager-<volume>`). */
import type { Resource, StatusBase } from '../api.ts';
import { Schema } from '../schema.ts';
import {
  AGE_COLUMN,
  immutable,
  type KindDefinition,
  statusBaseProperties,
  volumeNameSchema,
} from './common.ts';

export const SHARE_MANAGER_STATES = ['starting', 'running', 'stopping', 'stopped', 'error'] as const;

export interface ShareManagerSpec {
  volumeName: string;
}

export interface ShareManagerStatus extends StatusBase {
  state?: (typeof SHARE_MANAGER_STATES)[number];
  /** `nfs://<service-ip>/<volume>`. */
  endpoint?: string;
  /** Where the share manager (and so the volume) runs. */
  nodeID?: string;
}

export type ShareManager = Resource<'ShareManager', ShareManagerSpec, ShareManagerStatus>;

export const shareManagerDefinition: KindDefinition = {
  kind: 'ShareManager',
  plural: 'sharemanagers',
  singular: 'sharemanager',
  shortNames: ['hbsm'],
  description: 'The NFS server of one read-write-many volume.',
  nameRule: 'dns-subdomain',
  spec: Schema.object(
    { volumeName: volumeNameSchema('The volume it exports.') },
    { required: ['volumeName'] },
  ),
  status: Schema.object({
    ...statusBaseProperties,
    state: Schema.enumeration(SHARE_MANAGER_STATES),
    endpoint: Schema.string({ pattern: '^$|^nfs://', maxLength: 4096 }),
    nodeID: Schema.string({ maxLength: 253 }),
  }),
  printerColumns: [
    { name: 'State', type: 'string', jsonPath: '.status.state' },
    { name: 'Node', type: 'string', jsonPath: '.status.nodeID' },
    AGE_COLUMN,
    { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
  ],
  validateUpdate(previous, next) {
    return immutable(
      (previous.spec as ShareManagerSpec).volumeName,
      (next.spec as ShareManagerSpec).volumeName,
      'spec.volumeName',
    );
  },
};
