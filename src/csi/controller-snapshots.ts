/**
 * Controller service, snapshots: CreateSnapshot makes a Snapshot resource (the snapshot
 * controller cuts it through the volume's engine and sets status.readyToUse), DeleteSnapshot
 * deletes it, ListSnapshots pages through them. Snapshot ids are `snap://VOLUME/SNAPSHOT`,
 * the form a Volume's spec.dataSource takes, so CreateVolume from a snapshot is one field.
 */
import { HornbillError, isHornbillError } from '../errors.ts';
import type { Snapshot } from '../resources/kinds/snapshot.ts';
import { findResource } from '../resources/store/helpers.ts';
import { type CsiDriverContext, storeOf, volumeSizeBytes } from './context.ts';
import { type CsiRequest, requireText, requireVolume } from './controller-volumes.ts';
import { CSI_NAME_ANNOTATION, paginate, parseSnapshotId, resourceNameFor, snapshotId } from './names.ts';

function timestampOf(text: string | undefined, fallback: string): { seconds: number; nanos: number } {
  const parsed = Date.parse(text ?? '');
  const milliseconds = Number.isNaN(parsed) ? Date.parse(fallback) : parsed;
  return { seconds: Math.floor(milliseconds / 1000), nanos: (milliseconds % 1000) * 1_000_000 };
}

function snapshotMessage(snapshot: Snapshot, volumeSize: number) {
  return {
    size_bytes: snapshot.status?.restoreSize ?? volumeSize,
    snapshot_id: snapshotId(snapshot.spec.volume, snapshot.metadata.name),
    source_volume_id: snapshot.spec.volume,
    creation_time: timestampOf(snapshot.status?.creationTime, snapshot.metadata.creationTimestamp),
    ready_to_use: snapshot.status?.readyToUse === true,
    group_snapshot_id: '',
  };
}

async function sizeOfVolume(context: CsiDriverContext, volume: string): Promise<number> {
  const found = await findResource(storeOf(context), {
    kind: 'Volume',
    namespace: context.namespace,
    name: volume,
  });
  return found === undefined ? 0 : volumeSizeBytes(found);
}

export async function createSnapshot(context: CsiDriverContext, request: CsiRequest) {
  const sourceVolumeId = requireText(request.source_volume_id, 'source_volume_id');
  const csiName = requireText(request.name, 'name');
  const name = resourceNameFor(csiName, 'name');
  const store = storeOf(context);
  const key = { kind: 'Snapshot' as const, namespace: context.namespace, name };
  let snapshot = await findResource(store, key);
  if (snapshot === undefined) {
    const volume = await requireVolume(context, sourceVolumeId);
    try {
      snapshot = await store.create({
        kind: 'Snapshot',
        metadata: {
          name,
          namespace: context.namespace,
          annotations: csiName === name ? {} : { [CSI_NAME_ANNOTATION]: csiName },
          ownerReferences: [
            {
              apiVersion: volume.apiVersion,
              kind: 'Volume',
              name: volume.metadata.name,
              uid: volume.metadata.uid,
            },
          ],
        },
        spec: { volume: sourceVolumeId, createSnapshot: true },
      });
      context.log('info', 'snapshot requested', { volume: sourceVolumeId, snapshot: name });
    } catch (error) {
      if (!isHornbillError(error, 'RESOURCE_ALREADY_EXISTS')) throw error;
      snapshot = await store.get(key);
    }
  }
  if (snapshot.spec.volume !== sourceVolumeId)
    throw new HornbillError(
      'CSI_VOLUME_INCOMPATIBLE',
      `snapshot ${JSON.stringify(csiName)} exists already, of volume ${snapshot.spec.volume}`,
      { snapshot: name, volume: snapshot.spec.volume },
    );
  if (snapshot.status?.error && snapshot.status.readyToUse !== true)
    context.log('debug', 'snapshot not ready yet', { snapshot: name, reason: snapshot.status.error });
  return { snapshot: snapshotMessage(snapshot, await sizeOfVolume(context, sourceVolumeId)) };
}

export async function deleteSnapshot(context: CsiDriverContext, request: CsiRequest) {
  const id = requireText(request.snapshot_id, 'snapshot_id');
  const parsed = parseSnapshotId(id);
  if (parsed === undefined) return {};
  const store = storeOf(context);
  const snapshot = await findResource(store, {
    kind: 'Snapshot',
    namespace: context.namespace,
    name: parsed.snapshot,
  });
  if (
    snapshot === undefined ||
    snapshot.spec.volume !== parsed.volume ||
    snapshot.metadata.deletionTimestamp !== undefined
  )
    return {};
  try {
    await store.delete({ kind: 'Snapshot', namespace: context.namespace, name: parsed.snapshot });
    context.log('info', 'snapshot deleted', { volume: parsed.volume, snapshot: parsed.snapshot });
  } catch (error) {
    if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
  }
  return {};
}

export async function listSnapshots(context: CsiDriverContext, request: CsiRequest) {
  const wantedId = typeof request.snapshot_id === 'string' ? request.snapshot_id : '';
  const wantedVolume = typeof request.source_volume_id === 'string' ? request.source_volume_id : '';
  let items: Snapshot[];
  if (wantedId !== '') {
    const parsed = parseSnapshotId(wantedId);
    const snapshot =
      parsed === undefined
        ? undefined
        : await findResource(storeOf(context), {
            kind: 'Snapshot',
            namespace: context.namespace,
            name: parsed.snapshot,
          });
    items = snapshot !== undefined && snapshot.spec.volume === parsed?.volume ? [snapshot] : [];
  } else {
    items = (await storeOf(context).list('Snapshot', { namespace: context.namespace })).items;
  }
  items = items.filter(
    (snapshot) =>
      snapshot.metadata.deletionTimestamp === undefined &&
      snapshot.status?.markRemoved !== true &&
      (wantedVolume === '' || snapshot.spec.volume === wantedVolume),
  );
  const { page, nextToken } = paginate(items, (snapshot) => snapshot.metadata.name, {
    max_entries: request.max_entries ?? 0,
    starting_token: request.starting_token ?? '',
  });
  const sizes = new Map<string, number>();
  const entries = [];
  for (const snapshot of page) {
    if (!sizes.has(snapshot.spec.volume))
      sizes.set(snapshot.spec.volume, await sizeOfVolume(context, snapshot.spec.volume));
    entries.push({ snapshot: snapshotMessage(snapshot, sizes.get(snapshot.spec.volume) ?? 0) });
  }
  return { entries, next_token: nextToken };
}
