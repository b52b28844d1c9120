/**
 * The snapshot controller (key: Snapshot name). Snapshots are taken and deleted through
 * the volume's running engine (CreateSnapshot / DeleteSnapshot: at one I/O boundary on every
 * replica), so the volume must be attached; a detached volume is attached for it, without
 * frontend, by a `snapshot-<name>` attachment ticket (Longhorn's snapshot ticket) that goes
 * once the snapshot is taken or deleted:
 *
 * - a new Snapshot with `spec.createSnapshot` → CreateSnapshot named after the resource;
 *   status (parent, children, creationTime, size, restoreSize, readyToUse) from ListSnapshots;
 *   while the engine does not run yet, `status.error` says what it waits for;
 * - deletion (finalizer `hornbill.io/snapshot`) → DeleteSnapshot (the layer is marked removed
 *   and purged by the engine later); a volume that is being deleted takes its snapshots with it.
 * The Snapshot is owned by its Volume (garbage-collected with it).
 */
import type { GrpcMessage } from '../dataplane/instance-manager/grpc-client.ts';
import { isHornbillError } from '../errors.ts';
import { type Engine, ownerReferenceTo, type Snapshot, type SnapshotStatus } from '../resources/index.ts';
import { ensureTicket, readyNodes, removeTicket } from './attachment-tickets.ts';
import { type ControllerContext, getOrUndefined, names, sameJson } from './context.ts';
import type { ReconcileResult } from './work-queue.ts';

export const SNAPSHOT_FINALIZER = 'hornbill.io/snapshot';
const COMPONENT = 'hornbill-snapshot-controller';

export async function reconcileSnapshot(context: ControllerContext, name: string): Promise<ReconcileResult> {
  const snapshot = await getOrUndefined(context.store, 'Snapshot', context.namespace, name);
  if (snapshot === undefined) return {};
  const volume = await getOrUndefined(context.store, 'Volume', context.namespace, snapshot.spec.volume);
  const engine = await getOrUndefined(
    context.store,
    'Engine',
    context.namespace,
    names.engine(snapshot.spec.volume),
  );
  const monitor = engine?.spec.nodeID ? context.monitors.get(engine.spec.nodeID) : undefined;
  const instance = monitor?.reachable ? monitor.instance(names.engine(snapshot.spec.volume)) : undefined;
  const running = instance?.state === 'running' && engine?.spec.desireState === 'running';
  const finalizers = snapshot.metadata.finalizers ?? [];
  if (snapshot.metadata.deletionTimestamp !== undefined) {
    if (!finalizers.includes(SNAPSHOT_FINALIZER)) return {};
    const volumeGone = volume === undefined || volume.metadata.deletionTimestamp !== undefined;
    if (!volumeGone && snapshot.status?.creationTime !== undefined) {
      if (!running || monitor === undefined) {
        const waiting = await attachForSnapshot(context, snapshot, engine);
        await writeStatus(context, snapshot, {
          ...snapshot.status,
          error: `deleting: ${waiting}`,
        });
        return { requeueAfterMs: 1000 };
      }
      try {
        await monitor.client.call('DeleteSnapshot', {
          name: names.engine(snapshot.spec.volume),
          snapshot_name: name,
        });
      } catch (error) {
        if (!isHornbillError(error, 'STORE_SNAPSHOT_NOT_FOUND')) throw error;
      }
      await context.event(
        snapshot,
        'Normal',
        'Deleted',
        `snapshot ${name} of volume ${snapshot.spec.volume} deleted`,
        COMPONENT,
      );
    }
    if (volume !== undefined) await removeTicket(context, snapshot.spec.volume, ticketId(name));
    await context.store.update({
      ...snapshot,
      metadata: {
        ...snapshot.metadata,
        finalizers: finalizers.filter((finalizer) => finalizer !== SNAPSHOT_FINALIZER),
      },
    });
    return {};
  }
  if (volume === undefined) {
    await writeStatus(context, snapshot, {
      ...snapshot.status,
      error: `volume ${snapshot.spec.volume} does not exist`,
      readyToUse: false,
    });
    return { requeueAfterMs: 10_000 };
  }
  if (!finalizers.includes(SNAPSHOT_FINALIZER) || (snapshot.metadata.ownerReferences ?? []).length === 0) {
    await context.store.update({
      ...snapshot,
      metadata: {
        ...snapshot.metadata,
        finalizers: finalizers.includes(SNAPSHOT_FINALIZER)
          ? finalizers
          : [...finalizers, SNAPSHOT_FINALIZER],
        ownerReferences: snapshot.metadata.ownerReferences?.length
          ? snapshot.metadata.ownerReferences
          : [ownerReferenceTo(volume, { blockOwnerDeletion: false })],
      },
    });
    return { requeueAfterMs: 0 };
  }
  if (!running || monitor === undefined) {
    if (snapshot.status?.creationTime === undefined) {
      // To be taken: a detached volume is attached for it (without frontend), as Longhorn does.
      const waiting =
        snapshot.spec.createSnapshot && volume.metadata.deletionTimestamp === undefined
          ? await attachForSnapshot(context, snapshot, engine)
          : 'waiting for the volume to be attached';
      await writeStatus(context, snapshot, { ...snapshot.status, readyToUse: false, error: waiting });
      return { requeueAfterMs: 1000 };
    }
    return { requeueAfterMs: 2000 };
  }
  const engineName = names.engine(snapshot.spec.volume);
  let layers = ((await monitor.client.call('ListSnapshots', { name: engineName })).snapshots ??
    []) as GrpcMessage[];
  let layer = layers.find((entry) => entry.name === name);
  if (layer === undefined && snapshot.spec.createSnapshot && snapshot.status?.creationTime === undefined) {
    await monitor.client.call('CreateSnapshot', {
      name: engineName,
      snapshot_name: name,
      labels: snapshot.spec.labels,
    });
    await context.event(
      snapshot,
      'Normal',
      'Created',
      `snapshot ${name} of volume ${snapshot.spec.volume} taken`,
      COMPONENT,
    );
    layers = ((await monitor.client.call('ListSnapshots', { name: engineName })).snapshots ??
      []) as GrpcMessage[];
    layer = layers.find((entry) => entry.name === name);
  }
  if (layer === undefined) {
    await writeStatus(context, snapshot, {
      ...snapshot.status,
      readyToUse: false,
      error: 'the snapshot is not in the chain',
    });
    return { requeueAfterMs: 10_000 };
  }
  const status: SnapshotStatus = {
    ...snapshot.status,
    parent: String(layer.parent ?? ''),
    children: Object.fromEntries(((layer.children ?? []) as string[]).map((child) => [child, true])),
    markRemoved: Boolean(layer.removed),
    userCreated: Boolean(layer.user_created),
    creationTime: String(layer.created_at),
    size: Number(layer.data_bytes ?? 0),
    restoreSize: Number(layer.size_bytes ?? 0),
    readyToUse: !layer.removed,
    labels: (layer.labels ?? {}) as Record<string, string>,
  };
  delete status.error;
  await writeStatus(context, snapshot, status);
  await removeTicket(context, snapshot.spec.volume, ticketId(name));
  return { requeueAfterMs: 30_000 };
}

/** The ticket a snapshot holds on its volume while it is taken or deleted on a detached volume. */
function ticketId(snapshot: string): string {
  return `snapshot-${snapshot}`;
}

/**
 * Asks for the volume to be attached (without frontend) so that its engine runs: a
 * `snapshot` ticket on the node the engine is wanted on, else one of the volume's replicas'
 * ready nodes, else any ready node. Returns what the snapshot waits for.
 */
async function attachForSnapshot(
  context: ControllerContext,
  snapshot: Snapshot,
  engine: Engine | undefined,
): Promise<string> {
  const ready = await readyNodes(context);
  const replicas = (await context.store.list('Replica', { namespace: context.namespace })).items.filter(
    (replica) => replica.spec.volumeName === snapshot.spec.volume && replica.spec.failedAt === undefined,
  );
  const node = [
    engine?.spec.nodeID ?? '',
    ...replicas.map((replica) => replica.spec.nodeID),
    ...[...ready].sort(),
  ].find((candidate) => candidate !== '' && ready.has(candidate));
  if (node === undefined) return 'waiting for a ready node to attach the volume on';
  await ensureTicket(context, snapshot.spec.volume, ticketId(snapshot.metadata.name), 'snapshot', node);
  return `attaching the volume on ${node} for the snapshot`;
}

async function writeStatus(
  context: ControllerContext,
  snapshot: Snapshot,
  status: SnapshotStatus,
): Promise<void> {
  const next = { ...status, observedGeneration: snapshot.metadata.generation };
  if (sameJson(next, snapshot.status)) return;
  await context.store.updateStatus({ ...snapshot, status: next });
}
