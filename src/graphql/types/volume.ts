/**
 * Volume, Engine and Replica as the API shows them. A replica's mode and rebuild progress
 * come from its volume's engine (status.replicaModeMap by replica name, status.rebuildStatus
 * by the replica's address), falling back to the Replica's own status.mode.
 */

import { names } from '../../controllers/context.ts';
import {
  ACCESS_MODES,
  ATTACHMENT_TICKET_TYPES,
  DATA_LOCALITIES,
  type Engine,
  FRONTENDS,
  parseByteQuantity,
  REPLICA_MODES,
  type Replica,
  VOLUME_ROBUSTNESS,
  VOLUME_STATES,
  type Volume,
} from '../../resources/index.ts';
import { INSTANCE_STATES } from '../../resources/kinds/common.ts';
import {
  builder,
  ConditionRef,
  EngineRef,
  EventRef,
  LabelRef,
  labelsOf,
  metadataFields,
  ReplicaRef,
  SnapshotRef,
  stringEnum,
  VolumeRef,
} from '../builder.ts';
import type { GraphQLContext } from '../context.ts';
import { checkedFirst } from '../limits.ts';
import { replicaAddress, snapshotViews } from '../views.ts';

export const VolumeStateEnum = stringEnum(
  'VolumeState',
  VOLUME_STATES,
  'Where a volume is in its life cycle.',
);
export const VolumeRobustnessEnum = stringEnum(
  'VolumeRobustness',
  VOLUME_ROBUSTNESS,
  'healthy: every replica is RW; degraded: fewer; faulted: none.',
);
export const FrontendEnum = stringEnum(
  'Frontend',
  FRONTENDS,
  'How an attached volume is exposed on its node.',
);
export const DataLocalityEnum = stringEnum(
  'DataLocality',
  DATA_LOCALITIES,
  'Whether a replica is kept on the node the volume is attached to.',
);
export const AccessModeEnum = stringEnum(
  'AccessMode',
  ACCESS_MODES,
  'rwo, rwop, or rwx through a share manager.',
);
export const InstanceStateEnum = stringEnum(
  'InstanceState',
  INSTANCE_STATES,
  'State of an engine or replica process.',
);
export const ReplicaModeEnum = stringEnum(
  'ReplicaMode',
  REPLICA_MODES,
  'RW: in sync; WO: rebuilding; ERR: failed.',
);
export const AttachmentTicketTypeEnum = stringEnum(
  'AttachmentTicketType',
  ATTACHMENT_TICKET_TYPES,
  'Who asked for the volume to be attached.',
);

export async function engineOfVolume(
  context: GraphQLContext,
  volumeName: string,
): Promise<Engine | undefined> {
  return context.loader.get('Engine', names.engine(volumeName));
}

export async function replicasOfVolume(context: GraphQLContext, volumeName: string): Promise<Replica[]> {
  return (await context.loader.list('Replica')).filter((replica) => replica.spec.volumeName === volumeName);
}

const KubernetesStatusRef = builder
  .objectRef<NonNullable<NonNullable<Volume['status']>['kubernetesStatus']>>('KubernetesStatus')
  .implement({
    description: 'The PersistentVolume, claim and pods that use the volume.',
    fields: (t) => ({
      pvName: t.exposeString('pvName', { nullable: true }),
      pvcName: t.exposeString('pvcName', { nullable: true }),
      namespace: t.exposeString('namespace', { nullable: true }),
      pvStatus: t.exposeString('pvStatus', { nullable: true }),
      lastPVCRefAt: t.exposeString('lastPVCRefAt', { nullable: true }),
      workloads: t.stringList({
        description: 'Pod names.',
        resolve: (status) => (status.workloads ?? []).map((workload) => workload.podName),
      }),
    }),
  });

const CloneStatusRef = builder
  .objectRef<NonNullable<NonNullable<Volume['status']>['cloneStatus']>>('VolumeCloneStatus')
  .implement({
    description: 'Progress of filling the volume from its dataSource.',
    fields: (t) => ({
      state: t.exposeString('state', { description: 'pending, copying, completed or failed.' }),
      sourceVolume: t.exposeString('sourceVolume'),
      snapshot: t.exposeString('snapshot', { description: 'The snapshot of the source that is copied.' }),
      nodeID: t.exposeString('nodeID', { nullable: true }),
      progress: t.exposeInt('progress', { description: 'Percent.' }),
      transferredBytes: t.field({
        type: 'Bytes',
        nullable: true,
        resolve: (status) => status.transferredBytes,
      }),
      attemptCount: t.exposeInt('attemptCount'),
      startedAt: t.exposeString('startedAt', { nullable: true }),
      completedAt: t.exposeString('completedAt', { nullable: true }),
      nextAttemptAt: t.exposeString('nextAttemptAt', { nullable: true }),
      error: t.exposeString('error', { nullable: true }),
    }),
  });

const AttachmentTicketRef = builder
  .objectRef<{
    id: string;
    type: (typeof ATTACHMENT_TICKET_TYPES)[number];
    nodeID: string;
    satisfied: boolean;
    parameters: Record<string, string>;
  }>('AttachmentTicket')
  .implement({
    description: 'A request for the volume to be attached to a node (the highest priority wins).',
    fields: (t) => ({
      id: t.exposeString('id'),
      type: t.field({ type: AttachmentTicketTypeEnum, resolve: (ticket) => ticket.type }),
      nodeID: t.exposeString('nodeID'),
      satisfied: t.exposeBoolean('satisfied'),
      parameters: t.field({ type: [LabelRef], resolve: (ticket) => labelsOf(ticket.parameters) }),
    }),
  });

VolumeRef.implement({
  description: 'A replicated block volume.',
  fields: (t) => ({
    ...metadataFields(t),
    size: t.string({ description: 'As requested (2Gi).', resolve: (volume) => volume.spec.size }),
    sizeBytes: t.field({ type: 'Bytes', resolve: (volume) => parseByteQuantity(volume.spec.size) ?? 0 }),
    frontend: t.field({ type: FrontendEnum, resolve: (volume) => volume.spec.frontend }),
    disableFrontend: t.boolean({ resolve: (volume) => volume.spec.disableFrontend }),
    numberOfReplicas: t.int({ resolve: (volume) => volume.spec.numberOfReplicas }),
    dataLocality: t.field({ type: DataLocalityEnum, resolve: (volume) => volume.spec.dataLocality }),
    accessMode: t.field({ type: AccessModeEnum, resolve: (volume) => volume.spec.accessMode }),
    nodeID: t.string({
      description: 'The node asked for; empty when detach is wanted.',
      resolve: (volume) => volume.spec.nodeID,
    }),
    staleReplicaTimeout: t.int({
      description: 'Minutes.',
      resolve: (volume) => volume.spec.staleReplicaTimeout,
    }),
    nodeSelector: t.stringList({ resolve: (volume) => volume.spec.nodeSelector }),
    diskSelector: t.stringList({ resolve: (volume) => volume.spec.diskSelector }),
    snapshotMaxCount: t.int({ resolve: (volume) => volume.spec.snapshotMaxCount }),
    snapshotMaxSize: t.string({ resolve: (volume) => volume.spec.snapshotMaxSize }),
    dataSource: t.string({ nullable: true, resolve: (volume) => volume.spec.dataSource }),
    fromBackup: t.string({ nullable: true, resolve: (volume) => volume.spec.fromBackup }),
    cloneStatus: t.field({
      type: CloneStatusRef,
      nullable: true,
      resolve: (volume) => volume.status?.cloneStatus,
    }),
    state: t.field({ type: VolumeStateEnum, nullable: true, resolve: (volume) => volume.status?.state }),
    robustness: t.field({
      type: VolumeRobustnessEnum,
      nullable: true,
      resolve: (volume) => volume.status?.robustness,
    }),
    currentNodeID: t.string({
      nullable: true,
      description: 'Where it is attached; null while detached.',
      resolve: (volume) => volume.status?.currentNodeID,
    }),
    endpoint: t.string({ nullable: true, resolve: (volume) => volume.status?.endpoint }),
    actualSize: t.field({ type: 'Bytes', nullable: true, resolve: (volume) => volume.status?.actualSize }),
    expansionRequired: t.boolean({ resolve: (volume) => volume.status?.expansionRequired ?? false }),
    lastBackup: t.string({ nullable: true, resolve: (volume) => volume.status?.lastBackup }),
    lastBackupAt: t.string({ nullable: true, resolve: (volume) => volume.status?.lastBackupAt }),
    lastDegradedAt: t.string({ nullable: true, resolve: (volume) => volume.status?.lastDegradedAt }),
    shareEndpoint: t.string({ nullable: true, resolve: (volume) => volume.status?.shareEndpoint }),
    kubernetesStatus: t.field({
      type: KubernetesStatusRef,
      nullable: true,
      resolve: (volume) => volume.status?.kubernetesStatus,
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (volume) => volume.status?.conditions ?? [] }),
    engine: t.field({
      type: EngineRef,
      nullable: true,
      resolve: (volume, _arguments, context) => engineOfVolume(context, volume.metadata.name),
    }),
    replicas: t.field({
      type: [ReplicaRef],
      extensions: { listSize: 5 },
      resolve: (volume, _arguments, context) => replicasOfVolume(context, volume.metadata.name),
    }),
    snapshots: t.field({
      type: [SnapshotRef],
      description: 'Snapshot resources and the snapshots the engine reports, merged by name.',
      extensions: { listSize: 50 },
      resolve: async (volume, _arguments, context) =>
        snapshotViews(
          volume.metadata.name,
          await context.loader.list('Snapshot'),
          await engineOfVolume(context, volume.metadata.name),
        ),
    }),
    attachmentTickets: t.field({
      type: [AttachmentTicketRef],
      resolve: async (volume, _arguments, context) => {
        const attachment = await context.loader.get(
          'VolumeAttachment',
          names.volumeAttachment(volume.metadata.name),
        );
        if (attachment === undefined || attachment.spec.volume !== volume.metadata.name) return [];
        return Object.values(attachment.spec.attachmentTickets).map((ticket) => ({
          ...ticket,
          satisfied: attachment.status?.attachmentTicketStatuses?.[ticket.id]?.satisfied ?? false,
        }));
      },
    }),
    events: t.field({
      type: [EventRef],
      description: 'Events about the volume, newest first.',
      args: { first: t.arg.int({ defaultValue: 20 }) },
      extensions: { listSizeArgument: 'first' },
      resolve: async (volume, { first }, context) => {
        const events = await context.store.listEvents({
          namespace: context.namespace,
          involvedObject: { kind: 'Volume', name: volume.metadata.name },
        });
        return events.reverse().slice(0, checkedFirst(first));
      },
    }),
  }),
});

EngineRef.implement({
  description: 'The storage controller of an attached volume (`<volume>-e-0`).',
  fields: (t) => ({
    ...metadataFields(t),
    volumeName: t.string({ resolve: (engine) => engine.spec.volumeName }),
    nodeID: t.string({ resolve: (engine) => engine.spec.nodeID }),
    desireState: t.string({ resolve: (engine) => engine.spec.desireState }),
    currentState: t.field({
      type: InstanceStateEnum,
      nullable: true,
      resolve: (engine) => engine.status?.currentState,
    }),
    frontend: t.field({ type: FrontendEnum, resolve: (engine) => engine.spec.frontend }),
    disableFrontend: t.boolean({ resolve: (engine) => engine.spec.disableFrontend }),
    endpoint: t.string({ nullable: true, resolve: (engine) => engine.status?.endpoint }),
    instanceManagerName: t.string({
      nullable: true,
      resolve: (engine) => engine.status?.instanceManagerName,
    }),
    ip: t.string({ nullable: true, resolve: (engine) => engine.status?.ip }),
    port: t.int({ nullable: true, resolve: (engine) => engine.status?.port }),
    currentSize: t.field({
      type: 'Bytes',
      nullable: true,
      resolve: (engine) =>
        engine.status?.currentSize === undefined ? undefined : parseByteQuantity(engine.status.currentSize),
    }),
    isExpanding: t.boolean({ resolve: (engine) => engine.status?.isExpanding ?? false }),
    salvageRequested: t.boolean({ resolve: (engine) => engine.spec.salvageRequested }),
    replicaModes: t.field({
      type: [EngineReplicaModeRef],
      resolve: (engine) =>
        Object.entries(engine.status?.replicaModeMap ?? {}).map(([replica, mode]) => ({
          replica,
          mode,
          address:
            engine.status?.currentReplicaAddressMap?.[replica] ?? engine.spec.replicaAddressMap[replica],
        })),
    }),
    rebuilds: t.field({
      type: [RebuildStatusRef],
      resolve: (engine) =>
        Object.entries(engine.status?.rebuildStatus ?? {}).map(([address, status]) => ({
          address,
          ...status,
        })),
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (engine) => engine.status?.conditions ?? [] }),
  }),
});

const EngineReplicaModeRef = builder
  .objectRef<{ replica: string; mode: (typeof REPLICA_MODES)[number]; address?: string }>('EngineReplicaMode')
  .implement({
    fields: (t) => ({
      replica: t.exposeString('replica'),
      address: t.exposeString('address', { nullable: true }),
      mode: t.field({ type: ReplicaModeEnum, resolve: (entry) => entry.mode }),
    }),
  });

const RebuildStatusRef = builder
  .objectRef<{
    address: string;
    isRebuilding: boolean;
    progress: number;
    state: string;
    error?: string;
    fromReplicaAddress?: string;
  }>('RebuildStatus')
  .implement({
    description: 'A rebuild of the replica at `address`.',
    fields: (t) => ({
      address: t.exposeString('address'),
      isRebuilding: t.exposeBoolean('isRebuilding'),
      progress: t.exposeInt('progress', { description: 'Percent, 0-100.' }),
      state: t.exposeString('state'),
      error: t.exposeString('error', { nullable: true }),
      fromReplicaAddress: t.exposeString('fromReplicaAddress', { nullable: true }),
    }),
  });

/** The address the engine knows the replica by, then the replica's own. */
function addressInEngine(replica: Replica, engine: Engine | undefined): string | undefined {
  const name = replica.metadata.name;
  return (
    engine?.status?.currentReplicaAddressMap?.[name] ??
    engine?.spec.replicaAddressMap[name] ??
    replicaAddress(replica.status)
  );
}

async function rebuildOf(replica: Replica, context: GraphQLContext) {
  const engine = await engineOfVolume(context, replica.spec.volumeName);
  const address = addressInEngine(replica, engine);
  return address === undefined ? undefined : engine?.status?.rebuildStatus?.[address];
}

ReplicaRef.implement({
  description: 'One copy of a volume on one disk of one node.',
  fields: (t) => ({
    ...metadataFields(t),
    volumeName: t.string({ resolve: (replica) => replica.spec.volumeName }),
    nodeID: t.string({ description: 'Empty until scheduled.', resolve: (replica) => replica.spec.nodeID }),
    diskID: t.string({ resolve: (replica) => replica.spec.diskID }),
    diskPath: t.string({ resolve: (replica) => replica.spec.diskPath }),
    dataDirectoryName: t.string({ resolve: (replica) => replica.spec.dataDirectoryName }),
    desireState: t.string({ resolve: (replica) => replica.spec.desireState }),
    currentState: t.field({
      type: InstanceStateEnum,
      nullable: true,
      resolve: (replica) => replica.status?.currentState,
    }),
    instanceManagerName: t.string({
      nullable: true,
      resolve: (replica) => replica.status?.instanceManagerName,
    }),
    address: t.string({ nullable: true, resolve: (replica) => replicaAddress(replica.status) }),
    mode: t.field({
      type: ReplicaModeEnum,
      nullable: true,
      description: "The mode in the volume's engine; null when the engine does not use the replica.",
      resolve: async (replica, _arguments, context) => {
        const engine = await engineOfVolume(context, replica.spec.volumeName);
        return engine?.status?.replicaModeMap?.[replica.metadata.name] ?? replica.status?.mode;
      },
    }),
    rebuilding: t.boolean({
      resolve: async (replica, _arguments, context) =>
        (await rebuildOf(replica, context))?.isRebuilding ?? false,
    }),
    rebuildProgress: t.int({
      nullable: true,
      description: 'Percent (0-100) of a running rebuild onto this replica; null when none runs.',
      resolve: async (replica, _arguments, context) => (await rebuildOf(replica, context))?.progress,
    }),
    healthyAt: t.string({ nullable: true, resolve: (replica) => replica.spec.healthyAt }),
    failedAt: t.string({ nullable: true, resolve: (replica) => replica.spec.failedAt }),
    evictionRequested: t.boolean({ resolve: (replica) => replica.spec.evictionRequested }),
    conditions: t.field({ type: [ConditionRef], resolve: (replica) => replica.status?.conditions ?? [] }),
  }),
});
