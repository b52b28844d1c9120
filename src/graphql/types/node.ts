/** Node and Disk: the hosts that hold replicas, their disks, capacity and scheduling. */
import { parseByteQuantity } from '../../resources/index.ts';
import { builder, ConditionRef, DiskRef, metadataFields, NodeRef, ReplicaRef } from '../builder.ts';
import { diskViews } from '../views.ts';

const ScheduledReplicaRef = builder.objectRef<{ key: string; value: string }>('ScheduledReplica').implement({
  description: 'A replica placed on a disk and the bytes it may grow to.',
  fields: (t) => ({
    name: t.string({ resolve: (entry) => entry.key }),
    size: t.field({ type: 'Bytes', resolve: (entry) => Number(entry.value) }),
  }),
});

NodeRef.implement({
  description: 'A host that holds replicas, and its disks.',
  fields: (t) => ({
    ...metadataFields(t),
    allowScheduling: t.boolean({ resolve: (node) => node.spec.allowScheduling }),
    evictionRequested: t.boolean({ resolve: (node) => node.spec.evictionRequested }),
    tags: t.stringList({ resolve: (node) => node.spec.tags }),
    ready: t.boolean({
      description: 'The Ready condition is True.',
      resolve: (node) =>
        node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    }),
    schedulable: t.boolean({
      description: 'The Schedulable condition is True.',
      resolve: (node) =>
        node.status?.conditions?.some((c) => c.type === 'Schedulable' && c.status === 'True') ?? false,
    }),
    zone: t.string({ nullable: true, resolve: (node) => node.status?.zone }),
    region: t.string({ nullable: true, resolve: (node) => node.status?.region }),
    conditions: t.field({ type: [ConditionRef], resolve: (node) => node.status?.conditions ?? [] }),
    disks: t.field({ type: [DiskRef], extensions: { listSize: 4 }, resolve: (node) => diskViews(node) }),
    replicas: t.field({
      type: [ReplicaRef],
      extensions: { listSize: 100 },
      resolve: async (node, _arguments, context) =>
        (await context.loader.list('Replica')).filter(
          (replica) => replica.spec.nodeID === node.metadata.name,
        ),
    }),
  }),
});

DiskRef.implement({
  description: 'A folder on a node that holds replica folders.',
  fields: (t) => ({
    name: t.exposeString('name'),
    nodeName: t.exposeString('nodeName'),
    path: t.string({ resolve: (disk) => disk.spec.path }),
    allowScheduling: t.boolean({ resolve: (disk) => disk.spec.allowScheduling }),
    evictionRequested: t.boolean({ resolve: (disk) => disk.spec.evictionRequested }),
    storageReserved: t.string({
      description: 'As configured (10Gi).',
      resolve: (disk) => disk.spec.storageReserved,
    }),
    storageReservedBytes: t.field({
      type: 'Bytes',
      resolve: (disk) => parseByteQuantity(disk.spec.storageReserved) ?? 0,
    }),
    tags: t.stringList({ resolve: (disk) => disk.spec.tags }),
    diskType: t.string({ resolve: (disk) => disk.spec.diskType }),
    storageMaximum: t.field({
      type: 'Bytes',
      nullable: true,
      description: 'Capacity of the filesystem.',
      resolve: (disk) => disk.status?.storageMaximum,
    }),
    storageAvailable: t.field({
      type: 'Bytes',
      nullable: true,
      resolve: (disk) => disk.status?.storageAvailable,
    }),
    storageScheduled: t.field({
      type: 'Bytes',
      nullable: true,
      description: 'Bytes promised to the replicas placed here.',
      resolve: (disk) => disk.status?.storageScheduled,
    }),
    scheduledReplicas: t.field({
      type: [ScheduledReplicaRef],
      extensions: { listSize: 50 },
      resolve: (disk) =>
        Object.entries(disk.status?.scheduledReplica ?? {})
          .sort(([a], [b]) => (a < b ? -1 : 1))
          .map(([key, value]) => ({ key, value: String(value) })),
    }),
    conditions: t.field({ type: [ConditionRef], resolve: (disk) => disk.status?.conditions ?? [] }),
  }),
});
