/**
 * Snapshot mutations. Create and delete are Snapshot resources (the snapshot controller
 * takes and deletes the snapshot through the running engine). Revert and purge have no
 * resource of their own in Hornbill's kinds; they are requests on the volume's Engine:
 *
 * - revertSnapshot sets the Engine annotation `hornbill.io/revert-snapshot` to the snapshot
 *   name (the volume must be attached without a frontend, as Longhorn requires);
 * - purgeSnapshots sets `hornbill.io/purge-requested-at` to the time of the request.
 *
 * The engine controller carries them out through the running engine
 * (src/controllers/engine-snapshot-requests.ts): RevertSnapshot, then the revert annotation
 * goes (Event SnapshotReverted); PurgeSnapshots once per requested time, remembered in
 * `hornbill.io/purge-handled-at` (Event SnapshotsPurged). Failures are Warning Events on
 * the Engine (docs/controllers.md).
 */
import { names, PURGE_REQUESTED_ANNOTATION, REVERT_SNAPSHOT_ANNOTATION } from '../../controllers/context.ts';
import {
  type Engine,
  formatTimestamp,
  ownerReferenceTo,
  retryOnConflict,
  type Snapshot,
  type Volume,
} from '../../resources/index.ts';
import { builder, SnapshotRef } from '../builder.ts';
import type { GraphQLContext } from '../context.ts';
import { type SnapshotView, snapshotViews } from '../views.ts';
import { argumentError, argumentField, checkName, payloadType, runMutation } from './payload.ts';
import { getVolume, LabelInputRef, labelMap, VolumePayloadRef } from './volume.ts';

export { PURGE_REQUESTED_ANNOTATION, REVERT_SNAPSHOT_ANNOTATION };

export const SnapshotPayloadRef = payloadType<SnapshotView>(
  'SnapshotPayload',
  'snapshot',
  SnapshotRef,
  'The snapshot as written (null when the mutation failed), or why not.',
);

function viewOf(snapshot: Snapshot): SnapshotView {
  return { name: snapshot.metadata.name, volumeName: snapshot.spec.volume, resource: snapshot };
}

/** The volume must be attached (and, for a revert, without a frontend). */
function requireAttached(volume: Volume, action: string, withoutFrontend: boolean): void {
  if (volume.status?.state !== 'attached') {
    throw argumentError(
      'GRAPHQL_PRECONDITION_FAILED',
      `volume ${volume.metadata.name} must be attached to ${action} (it is ${volume.status?.state ?? 'not yet reconciled'})`,
      'volume',
    );
  }
  if (withoutFrontend && !volume.spec.disableFrontend && volume.status.frontendDisabled !== true) {
    throw argumentError(
      'GRAPHQL_PRECONDITION_FAILED',
      `volume ${volume.metadata.name} must be attached without a frontend to ${action} (attachVolume with disableFrontend: true)`,
      'volume',
    );
  }
}

async function annotateEngine(
  context: GraphQLContext,
  volumeName: string,
  annotations: Record<string, string>,
) {
  const name = names.engine(volumeName);
  if ((await context.loader.get('Engine', name)) === undefined) {
    throw argumentError('GRAPHQL_PRECONDITION_FAILED', `volume ${volumeName} has no engine yet`, 'volume');
  }
  return retryOnConflict(async () => {
    const engine: Engine = await context.store.get({ kind: 'Engine', namespace: context.namespace, name });
    return context.store.update({
      ...engine,
      metadata: { ...engine.metadata, annotations: { ...engine.metadata.annotations, ...annotations } },
    });
  });
}

builder.mutationFields((t) => ({
  createSnapshot: t.field({
    type: SnapshotPayloadRef,
    description:
      'Takes a snapshot of an attached volume (a Snapshot resource; a name is generated when absent).',
    args: {
      volume: t.arg.string({ required: true }),
      name: t.arg.string(),
      labels: t.arg({ type: [LabelInputRef] }),
    },
    resolve: (_root, args, context) =>
      runMutation(
        context,
        'createSnapshot',
        async () => {
          const volume = await getVolume(context, args.volume, 'volume');
          if (args.name != null) checkName('Snapshot', args.name, 'name');
          const snapshot = await context.store.create({
            kind: 'Snapshot',
            metadata: {
              ...(args.name == null ? { generateName: `${args.volume}-snap-` } : { name: args.name }),
              namespace: context.namespace,
              ownerReferences: [ownerReferenceTo(volume, { blockOwnerDeletion: false })],
            },
            spec: { volume: args.volume, labels: labelMap(args.labels, 'labels') },
          });
          return viewOf(snapshot);
        },
        (field) => argumentField(field),
      ),
  }),
  deleteSnapshot: t.field({
    type: SnapshotPayloadRef,
    description: 'Deletes a snapshot: it is marked removed, and its data folded into its child by a purge.',
    args: { volume: t.arg.string({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      runMutation(context, 'deleteSnapshot', async () => {
        await getVolume(context, args.volume, 'volume');
        checkName('Snapshot', args.name, 'name');
        const snapshot = await context.loader.get('Snapshot', args.name);
        if (snapshot === undefined || snapshot.spec.volume !== args.volume) {
          throw argumentError(
            'RESOURCE_NOT_FOUND',
            `volume ${args.volume} has no snapshot resource ${args.name}`,
            'name',
          );
        }
        const result = await context.store.delete({
          kind: 'Snapshot',
          namespace: context.namespace,
          name: args.name,
        });
        return viewOf(result.object);
      }),
  }),
  revertSnapshot: t.field({
    type: VolumePayloadRef,
    description:
      'Reverts a volume to a snapshot. The volume must be attached without a frontend; the request is the ' +
      `Engine annotation ${REVERT_SNAPSHOT_ANNOTATION}.`,
    args: { volume: t.arg.string({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      runMutation(context, 'revertSnapshot', async () => {
        const volume = await getVolume(context, args.volume, 'volume');
        checkName('Snapshot', args.name, 'name');
        const engine = await context.loader.get('Engine', names.engine(args.volume));
        const view = snapshotViews(args.volume, await context.loader.list('Snapshot'), engine).find(
          (candidate) => candidate.name === args.name,
        );
        if (view === undefined) {
          throw argumentError(
            'RESOURCE_NOT_FOUND',
            `volume ${args.volume} has no snapshot ${args.name}`,
            'name',
          );
        }
        if (
          view.info?.removed ||
          view.resource?.status?.markRemoved ||
          view.resource?.metadata.deletionTimestamp
        ) {
          throw argumentError('STORE_SNAPSHOT_REMOVED', `snapshot ${args.name} is removed`, 'name');
        }
        requireAttached(volume, 'revert it', true);
        await annotateEngine(context, args.volume, { [REVERT_SNAPSHOT_ANNOTATION]: args.name });
        return context.store.get({ kind: 'Volume', namespace: context.namespace, name: args.volume });
      }),
  }),
  purgeSnapshots: t.field({
    type: VolumePayloadRef,
    description: `Folds removed snapshots into their children (the Engine annotation ${PURGE_REQUESTED_ANNOTATION}).`,
    args: { volume: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      runMutation(context, 'purgeSnapshots', async () => {
        const volume = await getVolume(context, args.volume, 'volume');
        requireAttached(volume, 'purge its snapshots', false);
        await annotateEngine(context, args.volume, {
          [PURGE_REQUESTED_ANNOTATION]: formatTimestamp(Date.now()),
        });
        return context.store.get({ kind: 'Volume', namespace: context.namespace, name: args.volume });
      }),
  }),
}));
