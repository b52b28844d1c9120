/**
 * GetCapacity: how large a volume the replica scheduler could place now, per topology
 * segment (`kubernetes.io/hostname`, `topology.kubernetes.io/zone`, `.../region`).
 *
 * A replica lives on one disk, so the answer is the largest space one matching disk can
 * still take — by the scheduler's two rules (docs/scheduler.md):
 *   storageAvailable − storageMaximum × minimal-available%        (room left on the disk)
 *   (storageMaximum − storageReserved) × over-provisioning% − storageScheduled  (promises)
 * over the schedulable disks of schedulable, ready nodes in the segment whose tags cover the
 * StorageClass's diskSelector and nodeSelector. No segment: every node.
 */

import type { Node } from '../resources/kinds/node.ts';
import { parseByteQuantity } from '../resources/quantity.ts';
import { resolveSettings } from '../resources/settings.ts';
import { checkCapabilities, MAX_CSI_VOLUME_BYTES } from './capabilities.ts';
import { type CsiDriverContext, storeOf } from './context.ts';
import type { CsiRequest } from './controller-volumes.ts';
import { parseStorageClassParameters } from './parameters.ts';

export const TOPOLOGY_HOSTNAME_KEY = 'kubernetes.io/hostname';
export const TOPOLOGY_ZONE_KEY = 'topology.kubernetes.io/zone';
export const TOPOLOGY_REGION_KEY = 'topology.kubernetes.io/region';

function conditionTrue(node: Node, type: string): boolean {
  return (
    node.status?.conditions?.some((condition) => condition.type === type && condition.status === 'True') ??
    false
  );
}

function inSegment(node: Node, segments: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(segments)) {
    if (key === TOPOLOGY_HOSTNAME_KEY && value !== node.metadata.name) return false;
    if (key === TOPOLOGY_ZONE_KEY && value !== (node.status?.zone ?? '')) return false;
    if (key === TOPOLOGY_REGION_KEY && value !== (node.status?.region ?? '')) return false;
    if (![TOPOLOGY_HOSTNAME_KEY, TOPOLOGY_ZONE_KEY, TOPOLOGY_REGION_KEY].includes(key)) return false;
  }
  return true;
}

export async function getCapacity(context: CsiDriverContext, request: CsiRequest) {
  if (request.volume_capabilities && request.volume_capabilities.length > 0)
    checkCapabilities(request.volume_capabilities);
  const parameters = parseStorageClassParameters(request.parameters ?? {});
  const store = storeOf(context);
  const settings = resolveSettings((await store.list('Setting', { namespace: context.namespace })).items);
  const minimalAvailable = settings['storage-minimal-available-percentage'] / 100;
  const overProvisioning = settings['storage-over-provisioning-percentage'] / 100;
  const segments: Record<string, string> = request.accessible_topology?.segments ?? {};
  const diskTags = parameters.spec.diskSelector ?? [];
  const nodeTags = parameters.spec.nodeSelector ?? [];
  let largest = 0;
  for (const node of (await store.list('Node', { namespace: context.namespace })).items) {
    if (!inSegment(node, segments) || !node.spec.allowScheduling || node.spec.evictionRequested) continue;
    if (!conditionTrue(node, 'Ready') || !conditionTrue(node, 'Schedulable')) continue;
    if (!nodeTags.every((tag) => node.spec.tags.includes(tag))) continue;
    for (const [diskName, disk] of Object.entries(node.spec.disks)) {
      const status = node.status?.diskStatus?.[diskName];
      if (status === undefined || !disk.allowScheduling || disk.evictionRequested) continue;
      if (!diskTags.every((tag) => disk.tags.includes(tag))) continue;
      const reserved = parseByteQuantity(disk.storageReserved) ?? 0;
      const room = status.storageAvailable - status.storageMaximum * minimalAvailable;
      const promised = (status.storageMaximum - reserved) * overProvisioning - status.storageScheduled;
      largest = Math.max(largest, Math.floor(Math.min(room, promised)));
    }
  }
  return {
    available_capacity: largest,
    maximum_volume_size: { value: MAX_CSI_VOLUME_BYTES },
    minimum_volume_size: null,
  };
}
