/** Settings, Events, instance managers, backups and backup targets. */
import { BACKUP_STATES } from '../../resources/index.ts';
import {
  BackupRef,
  BackupTargetRef,
  builder,
  ConditionRef,
  EventRef,
  InstanceManagerRef,
  LabelRef,
  labelsOf,
  metadataFields,
  SettingRef,
  stringEnum,
} from '../builder.ts';

export const BackupStateEnum = stringEnum('BackupState', BACKUP_STATES, 'Where a backup is.');

SettingRef.implement({
  description: 'A cluster-wide setting: its value (the default unless set), type and range.',
  fields: (t) => ({
    name: t.exposeString('name'),
    value: t.string({
      description: 'As text ("true", "3", "best-effort"); the default when not set.',
      resolve: (setting) => setting.resource?.spec.value ?? String(setting.definition.default),
    }),
    default: t.string({ resolve: (setting) => String(setting.definition.default) }),
    isSet: t.boolean({
      description: 'A Setting resource holds a value (which may equal the default).',
      resolve: (setting) => setting.resource !== undefined,
    }),
    type: t.string({
      description: 'boolean, integer, enum or string.',
      resolve: (setting) => setting.definition.type,
    }),
    category: t.string({ resolve: (setting) => setting.definition.category }),
    description: t.string({ resolve: (setting) => setting.definition.description }),
    options: t.stringList({
      description: 'The allowed values of an enum setting.',
      resolve: (setting) => (setting.definition.type === 'enum' ? [...setting.definition.options] : []),
    }),
    minimum: t.string({
      nullable: true,
      description: 'Of an integer setting (as text: it may exceed 32 bits).',
      resolve: (setting) =>
        setting.definition.type === 'integer' ? String(setting.definition.minimum) : null,
    }),
    maximum: t.string({
      nullable: true,
      resolve: (setting) =>
        setting.definition.type === 'integer' ? String(setting.definition.maximum) : null,
    }),
    unit: t.string({
      nullable: true,
      resolve: (setting) => (setting.definition.type === 'integer' ? setting.definition.unit : null),
    }),
    applied: t.boolean({
      nullable: true,
      description: 'The controllers have taken the value into account.',
      resolve: (setting) => setting.resource?.status?.applied,
    }),
  }),
});

const InvolvedObjectRef = builder
  .objectRef<{ kind: string; namespace: string; name: string; uid?: string }>('InvolvedObject')
  .implement({
    fields: (t) => ({
      kind: t.exposeString('kind'),
      namespace: t.exposeString('namespace'),
      name: t.exposeString('name'),
      uid: t.exposeString('uid', { nullable: true }),
    }),
  });

EventRef.implement({
  description: 'Something that happened to an object (core/v1 Event); repeats raise count.',
  fields: (t) => ({
    name: t.string({ resolve: (event) => event.metadata.name }),
    uid: t.string({ resolve: (event) => event.metadata.uid }),
    type: t.string({ description: 'Normal or Warning.', resolve: (event) => event.type }),
    reason: t.exposeString('reason'),
    message: t.exposeString('message'),
    involvedObject: t.field({ type: InvolvedObjectRef, resolve: (event) => event.involvedObject }),
    component: t.string({ resolve: (event) => event.source.component }),
    host: t.string({ nullable: true, resolve: (event) => event.source.host }),
    count: t.exposeInt('count'),
    firstTimestamp: t.exposeString('firstTimestamp'),
    lastTimestamp: t.exposeString('lastTimestamp'),
  }),
});

const InstanceProcessRef = builder
  .objectRef<{
    name: string;
    state: string;
    errorMessage?: string;
    ip?: string;
    port?: number;
    startedAt?: string;
  }>('InstanceProcess')
  .implement({
    description: 'An engine or replica as its instance manager reports it.',
    fields: (t) => ({
      name: t.exposeString('name'),
      state: t.exposeString('state'),
      errorMessage: t.exposeString('errorMessage', { nullable: true }),
      ip: t.exposeString('ip', { nullable: true }),
      port: t.exposeInt('port', { nullable: true }),
      startedAt: t.exposeString('startedAt', { nullable: true }),
    }),
  });

function processes(map: Record<string, { state: string }> | undefined) {
  return Object.entries(map ?? {})
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, status]) => ({ name, ...status }));
}

InstanceManagerRef.implement({
  description: 'The data-plane host of one node, which runs its engines and replicas.',
  fields: (t) => ({
    ...metadataFields(t),
    nodeID: t.string({ resolve: (manager) => manager.spec.nodeID }),
    type: t.string({ resolve: (manager) => manager.spec.type }),
    currentState: t.string({ nullable: true, resolve: (manager) => manager.status?.currentState }),
    ip: t.string({ nullable: true, resolve: (manager) => manager.status?.ip }),
    port: t.int({ nullable: true, resolve: (manager) => manager.status?.port }),
    apiVersion: t.int({ nullable: true, resolve: (manager) => manager.status?.apiVersion }),
    engines: t.field({
      type: [InstanceProcessRef],
      extensions: { listSize: 100 },
      resolve: (manager) => processes(manager.status?.instanceEngines),
    }),
    replicas: t.field({
      type: [InstanceProcessRef],
      extensions: { listSize: 100 },
      resolve: (manager) => processes(manager.status?.instanceReplicas),
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (manager) => manager.status?.conditions ?? [] }),
  }),
});

BackupRef.implement({
  description: 'A snapshot copied to a backup target.',
  fields: (t) => ({
    ...metadataFields(t),
    snapshotName: t.string({
      nullable: true,
      resolve: (backup) => backup.spec.snapshotName ?? backup.status?.snapshotName,
    }),
    volumeName: t.string({
      nullable: true,
      resolve: (backup) => backup.spec.volumeName ?? backup.status?.volumeName,
    }),
    backupMode: t.string({ resolve: (backup) => backup.spec.backupMode }),
    state: t.field({ type: BackupStateEnum, nullable: true, resolve: (backup) => backup.status?.state }),
    progress: t.int({
      nullable: true,
      description: 'Percent.',
      resolve: (backup) => backup.status?.progress,
    }),
    url: t.string({ nullable: true, resolve: (backup) => backup.status?.url }),
    size: t.field({ type: 'Bytes', nullable: true, resolve: (backup) => backup.status?.size }),
    volumeSize: t.string({ nullable: true, resolve: (backup) => backup.status?.volumeSize }),
    snapshotCreatedAt: t.string({ nullable: true, resolve: (backup) => backup.status?.snapshotCreatedAt }),
    backupCreatedAt: t.string({ nullable: true, resolve: (backup) => backup.status?.backupCreatedAt }),
    error: t.string({ nullable: true, resolve: (backup) => backup.status?.error }),
    backupLabels: t.field({ type: [LabelRef], resolve: (backup) => labelsOf(backup.spec.labels) }),
    conditions: t.field({ type: [ConditionRef], resolve: (backup) => backup.status?.conditions ?? [] }),
  }),
});

BackupTargetRef.implement({
  description: 'Where backups are stored.',
  fields: (t) => ({
    ...metadataFields(t),
    url: t.string({ resolve: (target) => target.spec.backupTargetURL }),
    credentialSecret: t.string({ resolve: (target) => target.spec.credentialSecret }),
    pollIntervalSeconds: t.int({ resolve: (target) => target.spec.pollIntervalSeconds }),
    available: t.boolean({ resolve: (target) => target.status?.available ?? false }),
    lastSyncedAt: t.string({ nullable: true, resolve: (target) => target.status?.lastSyncedAt }),
    conditions: t.field({ type: [ConditionRef], resolve: (target) => target.status?.conditions ?? [] }),
  }),
});
