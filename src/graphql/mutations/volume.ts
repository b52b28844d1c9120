/**
 * Volume mutations, each a resource write the controllers act on (docs/resources.md):
 * create/delete the Volume; attach = an `api` ticket in the volume's VolumeAttachment plus
 * spec.nodeID and spec.frontend; detach = the ticket removed and spec.nodeID cleared;
 * expand, replica count and data locality = the Volume spec; salvage = the Engine's
 * spec.salvageRequested (the volume controller clears it); deleteReplica = the Replica
 * deleted (the volume controller schedules and rebuilds a new one).
 */
import { names, VOLUME_LABEL } from '../../controllers/context.ts';
import {
  type AttachmentTicket,
  type CreateInput,
  type Frontend,
  findResource,
  ownerReferenceTo,
  retryOnConflict,
  type Volume,
} from '../../resources/index.ts';
import { builder, VolumeRef } from '../builder.ts';
import type { GraphQLContext } from '../context.ts';
import { AccessModeEnum, DataLocalityEnum, FrontendEnum } from '../types/volume.ts';
import { argumentError, argumentField, checkName, payloadType, runMutation } from './payload.ts';

/** The id of the ticket the API adds to a VolumeAttachment (one per volume). */
export const API_TICKET_ID = 'hornbill-api';

export const VolumePayloadRef = payloadType<Volume>(
  'VolumePayload',
  'volume',
  VolumeRef,
  'The volume as written (null when the mutation failed), or why not.',
);

export const LabelInputRef = builder.inputType('LabelInput', {
  fields: (t) => ({ key: t.string({ required: true }), value: t.string({ required: true }) }),
});

/** A list of key/value pairs as a map; a repeated key is INVALID_ARGUMENT. */
export function labelMap(
  labels: readonly { key: string; value: string }[] | null | undefined,
  field: string,
) {
  const map: Record<string, string> = {};
  for (const { key, value } of labels ?? []) {
    if (Object.hasOwn(map, key))
      throw argumentError('INVALID_ARGUMENT', `label ${JSON.stringify(key)} is repeated`, field);
    map[key] = value;
  }
  return map;
}

const CreateVolumeInput = builder.inputType('CreateVolumeInput', {
  description:
    'A new volume. Unset fields take their defaults (replica count and locality from the settings).',
  fields: (t) => ({
    name: t.string({ required: true, description: 'A DNS label.' }),
    size: t.string({ required: true, description: 'A quantity: 2Gi, 10737418240; a multiple of 4 KiB.' }),
    numberOfReplicas: t.int(),
    frontend: t.field({ type: FrontendEnum }),
    disableFrontend: t.boolean(),
    dataLocality: t.field({ type: DataLocalityEnum }),
    accessMode: t.field({ type: AccessModeEnum }),
    staleReplicaTimeout: t.int({ description: 'Minutes.' }),
    nodeSelector: t.stringList(),
    diskSelector: t.stringList(),
    dataSource: t.string({ description: 'vol://<volume> or snap://<volume>/<snapshot>.' }),
    fromBackup: t.string(),
    snapshotMaxCount: t.int(),
    snapshotMaxSize: t.string(),
    labels: t.field({ type: [LabelInputRef] }),
  }),
});

async function getVolume(context: GraphQLContext, name: string, field = 'name'): Promise<Volume> {
  checkName('Volume', name, field);
  const volume = await context.loader.get('Volume', name);
  if (volume === undefined) throw argumentError('RESOURCE_NOT_FOUND', `volume ${name} does not exist`, field);
  return volume;
}

/** Read-modify-write of a Volume's spec, retried on conflict. */
function updateVolumeSpec(
  context: GraphQLContext,
  name: string,
  change: (volume: Volume) => Partial<Volume['spec']>,
): Promise<Volume> {
  return retryOnConflict(async () => {
    const volume = await context.store.get({ kind: 'Volume', namespace: context.namespace, name });
    return context.store.update({ ...volume, spec: { ...volume.spec, ...change(volume) } });
  });
}

/** Adds, replaces (ticket given) or removes (undefined) the API ticket of a volume. */
async function writeApiTicket(context: GraphQLContext, volume: Volume, ticket: AttachmentTicket | undefined) {
  const key = {
    kind: 'VolumeAttachment' as const,
    namespace: context.namespace,
    name: names.volumeAttachment(volume.metadata.name),
  };
  await retryOnConflict(async () => {
    const attachment = await findResource(context.store, key);
    if (attachment === undefined) {
      if (ticket === undefined) return;
      await context.store.create({
        kind: 'VolumeAttachment',
        // The shape the volume controller gives it (it creates it when the API has not).
        metadata: {
          name: key.name,
          namespace: context.namespace,
          labels: { [VOLUME_LABEL]: volume.metadata.name },
          ownerReferences: [ownerReferenceTo(volume)],
        },
        spec: { volume: volume.metadata.name, attachmentTickets: { [ticket.id]: ticket } },
      });
      return;
    }
    const tickets = { ...attachment.spec.attachmentTickets };
    const previous = tickets[API_TICKET_ID];
    if (ticket === undefined) {
      if (previous === undefined) return;
      delete tickets[API_TICKET_ID];
    } else {
      tickets[API_TICKET_ID] = { ...ticket, generation: (previous?.generation ?? 0) + 1 };
    }
    await context.store.update({ ...attachment, spec: { ...attachment.spec, attachmentTickets: tickets } });
  });
}

builder.mutationFields((t) => ({
  createVolume: t.field({
    type: VolumePayloadRef,
    description: 'Creates a volume; the controllers schedule its replicas.',
    args: { input: t.arg({ type: CreateVolumeInput, required: true }) },
    resolve: (_root, { input }, context) =>
      runMutation(
        context,
        'createVolume',
        async () => {
          checkName('Volume', input.name, 'input.name');
          const settings = await context.loader.settings();
          const spec: CreateInput<'Volume'>['spec'] = {
            size: input.size,
            numberOfReplicas: input.numberOfReplicas ?? settings['default-replica-count'],
            dataLocality:
              input.dataLocality ?? (settings['default-data-locality'] as Volume['spec']['dataLocality']),
          };
          if (input.frontend != null) spec.frontend = input.frontend;
          if (input.disableFrontend != null) spec.disableFrontend = input.disableFrontend;
          if (input.accessMode != null) spec.accessMode = input.accessMode;
          if (input.staleReplicaTimeout != null) spec.staleReplicaTimeout = input.staleReplicaTimeout;
          if (input.nodeSelector != null) spec.nodeSelector = input.nodeSelector;
          if (input.diskSelector != null) spec.diskSelector = input.diskSelector;
          if (input.dataSource != null) spec.dataSource = input.dataSource;
          if (input.fromBackup != null) spec.fromBackup = input.fromBackup;
          if (input.snapshotMaxCount != null) spec.snapshotMaxCount = input.snapshotMaxCount;
          if (input.snapshotMaxSize != null) spec.snapshotMaxSize = input.snapshotMaxSize;
          return context.store.create({
            kind: 'Volume',
            metadata: {
              name: input.name,
              namespace: context.namespace,
              labels: labelMap(input.labels, 'input.labels'),
            },
            spec,
          });
        },
        (field) => argumentField(field, 'input.'),
      ),
  }),
  deleteVolume: t.field({
    type: VolumePayloadRef,
    description: 'Deletes a volume: its engine, replicas, data and snapshots go with it.',
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, context) =>
      runMutation(context, 'deleteVolume', async () => {
        await getVolume(context, name);
        const result = await context.store.delete({ kind: 'Volume', namespace: context.namespace, name });
        return result.object;
      }),
  }),
  attachVolume: t.field({
    type: VolumePayloadRef,
    description: 'Attaches a volume to a node with a frontend (an api attachment ticket).',
    args: {
      name: t.arg.string({ required: true }),
      node: t.arg.string({ required: true }),
      frontend: t.arg({ type: FrontendEnum }),
      disableFrontend: t.arg.boolean({ description: 'Attach without a frontend (maintenance: revert).' }),
    },
    resolve: (_root, args, context) =>
      runMutation(context, 'attachVolume', async () => {
        const volume = await getVolume(context, args.name);
        checkName('Node', args.node, 'node');
        if ((await context.loader.get('Node', args.node)) === undefined) {
          throw argumentError('RESOURCE_NOT_FOUND', `node ${args.node} does not exist`, 'node');
        }
        if (volume.metadata.deletionTimestamp !== undefined) {
          throw argumentError('GRAPHQL_PRECONDITION_FAILED', `volume ${args.name} is being deleted`, 'name');
        }
        const current = volume.status?.currentNodeID;
        if (current !== undefined && current !== args.node) {
          throw argumentError(
            'GRAPHQL_PRECONDITION_FAILED',
            `volume ${args.name} is attached to node ${current}; detach it first`,
            'node',
          );
        }
        const frontend: Frontend = args.frontend ?? volume.spec.frontend;
        const state = volume.status?.state;
        if (
          frontend !== volume.spec.frontend &&
          state !== undefined &&
          state !== 'detached' &&
          state !== 'creating'
        ) {
          throw argumentError(
            'GRAPHQL_PRECONDITION_FAILED',
            `the frontend of volume ${args.name} can change only while it is detached (it is ${state})`,
            'frontend',
          );
        }
        const parameters: Record<string, string> = args.disableFrontend ? { disableFrontend: 'true' } : {};
        await writeApiTicket(context, volume, {
          id: API_TICKET_ID,
          type: 'api',
          nodeID: args.node,
          parameters,
          generation: 0,
        });
        return updateVolumeSpec(context, args.name, () => ({ nodeID: args.node, frontend }));
      }),
  }),
  detachVolume: t.field({
    type: VolumePayloadRef,
    description:
      'Removes the api attachment ticket; the volume detaches unless another ticket (CSI) keeps it.',
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, context) =>
      runMutation(context, 'detachVolume', async () => {
        const volume = await getVolume(context, name);
        await writeApiTicket(context, volume, undefined);
        return updateVolumeSpec(context, name, () => ({ nodeID: '' }));
      }),
  }),
  expandVolume: t.field({
    type: VolumePayloadRef,
    description: 'Grows a volume (never shrinks); attached volumes grow online.',
    args: { name: t.arg.string({ required: true }), size: t.arg.string({ required: true }) },
    resolve: (_root, { name, size }, context) =>
      runMutation(context, 'expandVolume', async () => {
        await getVolume(context, name);
        return updateVolumeSpec(context, name, () => ({ size }));
      }),
  }),
  updateReplicaCount: t.field({
    type: VolumePayloadRef,
    args: { name: t.arg.string({ required: true }), replicaCount: t.arg.int({ required: true }) },
    resolve: (_root, { name, replicaCount }, context) =>
      runMutation(
        context,
        'updateReplicaCount',
        async () => {
          await getVolume(context, name);
          return updateVolumeSpec(context, name, () => ({ numberOfReplicas: replicaCount }));
        },
        (field) => (field === 'spec.numberOfReplicas' ? 'replicaCount' : argumentField(field)),
      ),
  }),
  updateDataLocality: t.field({
    type: VolumePayloadRef,
    args: {
      name: t.arg.string({ required: true }),
      dataLocality: t.arg({ type: DataLocalityEnum, required: true }),
    },
    resolve: (_root, { name, dataLocality }, context) =>
      runMutation(context, 'updateDataLocality', async () => {
        await getVolume(context, name);
        return updateVolumeSpec(context, name, () => ({ dataLocality }));
      }),
  }),
  salvageVolume: t.field({
    type: VolumePayloadRef,
    description:
      "Asks for a faulted volume to be brought back from its newest replicas (the Engine's spec.salvageRequested).",
    args: { name: t.arg.string({ required: true }) },
    resolve: (_root, { name }, context) =>
      runMutation(context, 'salvageVolume', async () => {
        await getVolume(context, name);
        const engineName = names.engine(name);
        if ((await context.loader.get('Engine', engineName)) === undefined) {
          throw argumentError('GRAPHQL_PRECONDITION_FAILED', `volume ${name} has no engine yet`, 'name');
        }
        await retryOnConflict(async () => {
          const engine = await context.store.get({
            kind: 'Engine',
            namespace: context.namespace,
            name: engineName,
          });
          if (engine.spec.salvageRequested) return engine;
          return context.store.update({ ...engine, spec: { ...engine.spec, salvageRequested: true } });
        });
        return context.store.get({ kind: 'Volume', namespace: context.namespace, name });
      }),
  }),
  deleteReplica: t.field({
    type: VolumePayloadRef,
    description: 'Deletes one replica of a volume; a new one is scheduled and rebuilt.',
    args: { volume: t.arg.string({ required: true }), replica: t.arg.string({ required: true }) },
    resolve: (_root, args, context) =>
      runMutation(context, 'deleteReplica', async () => {
        await getVolume(context, args.volume, 'volume');
        checkName('Replica', args.replica, 'replica');
        const replica = await context.loader.get('Replica', args.replica);
        if (replica === undefined || replica.spec.volumeName !== args.volume) {
          throw argumentError(
            'RESOURCE_NOT_FOUND',
            `volume ${args.volume} has no replica ${args.replica}`,
            'replica',
          );
        }
        await context.store.delete({ kind: 'Replica', namespace: context.namespace, name: args.replica });
        return context.store.get({ kind: 'Volume', namespace: context.namespace, name: args.volume });
      }),
  }),
}));

export { getVolume };
