/**
 * Removing a share manager: its volume was deleted or is no longer rwx, or the ShareManager is
 * being deleted. The process (or Pod, hosting.ts) goes from every node it ran on (a node that is down is not waited
 * for), then the ticket, the Service and EndpointSlice (Kubernetes mode), the lease (file or
 * Lease object) and the Volume's share fields; then the finalizer.
 */
import { isHornbillError } from '../../errors.ts';
import type { ShareManager, Volume } from '../../resources/index.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { nodeCandidates, nodeReadyOf, previousNodes, removeTicket } from './placement.ts';
import { writeVolumeShareStatus } from './status.ts';
import { SHARE_MANAGER_FINALIZER, type ShareManagerWorld, shareManagerInstanceName } from './world.ts';

export async function tearDown(
  world: ShareManagerWorld,
  shareManager: ShareManager,
  volume: Volume | undefined,
): Promise<ReconcileResult> {
  const name = shareManager.metadata.name;
  const volumeGone = volume === undefined || volume.metadata.deletionTimestamp !== undefined;
  const { nodes } = await nodeCandidates(world);
  const where = [...new Set([shareManager.status?.nodeID ?? '', ...previousNodes(shareManager)])].filter(
    (node) => node !== '',
  );
  for (const node of where) {
    try {
      await world.hosting.stop(name, node, { removeData: volumeGone, deadlineMs: 30_000 });
      // A Pod leaves its state folder on the node: the node's instance manager removes it.
      if (volumeGone && world.hosting.mode === 'pod')
        await world
          .instanceManagerClient?.(node)
          ?.call(
            'DeleteShareManager',
            { name: shareManagerInstanceName(name), remove_data: true, volume_name: name },
            { deadlineMs: 30_000 },
          );
    } catch (error) {
      // A node that is down is not waited for (it has no running share manager to stop).
      if (nodeReadyOf(nodes, node) !== 'False') throw error;
    }
  }
  await removeTicket(world, name);
  await world.services.remove(name);
  await world.removeLease(name);
  world.forget(name);
  if (volume !== undefined && volume.metadata.deletionTimestamp === undefined)
    await writeVolumeShareStatus(world, volume, undefined);
  const finalizers = (shareManager.metadata.finalizers ?? []).filter(
    (finalizer) => finalizer !== SHARE_MANAGER_FINALIZER,
  );
  if (finalizers.length !== (shareManager.metadata.finalizers ?? []).length) {
    await world.store.update({ ...shareManager, metadata: { ...shareManager.metadata, finalizers } });
  }
  if (shareManager.metadata.deletionTimestamp === undefined) {
    await world.store.delete({ kind: 'ShareManager', namespace: world.namespace, name }).catch((error) => {
      if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
    });
  }
  await world.event(
    volume ?? shareManager,
    'Normal',
    'ShareManagerDeleted',
    `share manager of ${name} stopped and removed`,
  );
  return {};
}
