/** Every kind: its definition (schemas, columns, rules) and its TypeScript types. */
import type { API_GROUP_VERSION, NewObjectMeta } from './api.ts';
import { type Backup, type BackupSpecInput, backupDefinition } from './kinds/backup.ts';
import {
  type BackupTarget,
  type BackupTargetSpecInput,
  backupTargetDefinition,
} from './kinds/backup-target.ts';
import type { KindDefinition } from './kinds/common.ts';
import { type Engine, type EngineSpecInput, engineDefinition } from './kinds/engine.ts';
import {
  type InstanceManager,
  type InstanceManagerSpecInput,
  instanceManagerDefinition,
} from './kinds/instance-manager.ts';
import { type Node, type NodeSpecInput, nodeDefinition } from './kinds/node.ts';
import {
  type RecurringJob,
  type RecurringJobSpecInput,
  recurringJobDefinition,
} from './kinds/recurring-job.ts';
import { type Replica, type ReplicaSpecInput, replicaDefinition } from './kinds/replica.ts';
import { type Setting, type SettingSpec, settingDefinition } from './kinds/setting.ts';
import { type ShareManager, type ShareManagerSpec, shareManagerDefinition } from './kinds/share-manager.ts';
import { type Snapshot, type SnapshotSpecInput, snapshotDefinition } from './kinds/snapshot.ts';
import { type Volume, type VolumeSpecInput, volumeDefinition } from './kinds/volume.ts';
import {
  type VolumeAttachment,
  type VolumeAttachmentSpecInput,
  volumeAttachmentDefinition,
} from './kinds/volume-attachment.ts';

/** Kind → the stored object type and the spec a client may create it with. */
export interface ResourceTypes {
  Volume: { object: Volume; specInput: VolumeSpecInput };
  Engine: { object: Engine; specInput: EngineSpecInput };
  Replica: { object: Replica; specInput: ReplicaSpecInput };
  Node: { object: Node; specInput: NodeSpecInput };
  InstanceManager: { object: InstanceManager; specInput: InstanceManagerSpecInput };
  ShareManager: { object: ShareManager; specInput: ShareManagerSpec };
  Snapshot: { object: Snapshot; specInput: SnapshotSpecInput };
  Backup: { object: Backup; specInput: BackupSpecInput };
  BackupTarget: { object: BackupTarget; specInput: BackupTargetSpecInput };
  Setting: { object: Setting; specInput: SettingSpec };
  RecurringJob: { object: RecurringJob; specInput: RecurringJobSpecInput };
  VolumeAttachment: { object: VolumeAttachment; specInput: VolumeAttachmentSpecInput };
}

export type Kind = keyof ResourceTypes;
export type ResourceOf<K extends Kind> = ResourceTypes[K]['object'];
/** Any stored Hornbill object. */
export type AnyResource = ResourceOf<Kind>;

/** What `create` takes: metadata without the fields the store assigns, and the spec with defaults optional. */
export interface CreateInput<K extends Kind> {
  apiVersion?: typeof API_GROUP_VERSION;
  kind: K;
  metadata: NewObjectMeta;
  spec: ResourceTypes[K]['specInput'];
}

export const KIND_DEFINITIONS: { readonly [K in Kind]: KindDefinition } = {
  Volume: volumeDefinition,
  Engine: engineDefinition,
  Replica: replicaDefinition,
  Node: nodeDefinition,
  InstanceManager: instanceManagerDefinition,
  ShareManager: shareManagerDefinition,
  Snapshot: snapshotDefinition,
  Backup: backupDefinition,
  BackupTarget: backupTargetDefinition,
  Setting: settingDefinition,
  RecurringJob: recurringJobDefinition,
  VolumeAttachment: volumeAttachmentDefinition,
};

export const KINDS = Object.keys(KIND_DEFINITIONS) as Kind[];

export function isKind(value: unknown): value is Kind {
  return typeof value === 'string' && Object.hasOwn(KIND_DEFINITIONS, value);
}
