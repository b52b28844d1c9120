/**
 * Snapshot: a point-in-time layer of a volume, as a tree (parent and children). User
 * snapshots are Snapshot resources; the engine also reports the system snapshots it makes
 * (for rebuilds), which have no resource. Removed snapshots stay in the tree, marked
 * `removed`, until a purge folds them into their child.
 */
import { LabelRef, labelsOf, SnapshotRef } from '../builder.ts';

SnapshotRef.implement({
  description: 'A point-in-time layer of a volume.',
  fields: (t) => ({
    name: t.exposeString('name'),
    volumeName: t.exposeString('volumeName'),
    hasResource: t.boolean({
      description: 'A Snapshot resource tracks it (false for system snapshots the engine made).',
      resolve: (view) => view.resource !== undefined,
    }),
    parent: t.string({
      nullable: true,
      description: 'The older layer this one sits on; null for the first.',
      resolve: (view) => (view.info?.parent ?? view.resource?.status?.parent) || null,
    }),
    children: t.stringList({
      description: 'The newer layers on top of this one (volume-head is the live layer).',
      resolve: (view) => Object.keys(view.info?.children ?? view.resource?.status?.children ?? {}).sort(),
    }),
    size: t.field({
      type: 'Bytes',
      nullable: true,
      description: 'Bytes the layer holds.',
      resolve: (view) => view.info?.size ?? view.resource?.status?.size,
    }),
    restoreSize: t.field({
      type: 'Bytes',
      nullable: true,
      description: 'The volume size when the snapshot was taken.',
      resolve: (view) => view.resource?.status?.restoreSize,
    }),
    userCreated: t.boolean({
      resolve: (view) =>
        view.info?.userCreated ?? view.resource?.status?.userCreated ?? view.resource !== undefined,
    }),
    removed: t.boolean({
      description: 'Deleted, waiting for a purge.',
      resolve: (view) => view.info?.removed ?? view.resource?.status?.markRemoved ?? false,
    }),
    creationTime: t.string({
      nullable: true,
      resolve: (view) => view.resource?.status?.creationTime ?? view.info?.created,
    }),
    readyToUse: t.boolean({
      resolve: (view) => view.resource?.status?.readyToUse ?? view.info !== undefined,
    }),
    error: t.string({ nullable: true, resolve: (view) => view.resource?.status?.error || null }),
    checksum: t.string({ nullable: true, resolve: (view) => view.resource?.status?.checksum }),
    deleting: t.boolean({ resolve: (view) => view.resource?.metadata.deletionTimestamp !== undefined }),
    labels: t.field({
      type: [LabelRef],
      resolve: (view) => labelsOf(view.info?.labels ?? view.resource?.spec.labels),
    }),
  }),
});
