/**
 * Where replicas are: each replica with a node mapped to its node, disk and zone.
 *
 * A replica names its disk by `spec.diskID` (the disk's UUID from the node's status, or the
 * disk's name when the status has no UUID) and `spec.diskPath`; `findDiskOfReplica` accepts
 * either, so replicas written by either convention are found.
 *
 * Which replicas count:
 * - for space, every replica on a disk (failed, stopped or being deleted alike: its folder
 *   and the space promised to it are there until it is gone);
 * - for anti-affinity, the volume's replicas that have a node, are not being deleted
 *   (`metadata.deletionTimestamp`) and are not being evicted (`spec.evictionRequested`: they
 *   are about to leave, and their replacement may take another disk of the same node, as in
 *   Longhorn). A failed replica (`spec.failedAt`) that has a node counts: it still holds its
 *   folder and may be reused, and a new replica beside it would put two copies on one node
 *   once it is rebuilt (Longhorn issue 8043). A replica without a node counts for nothing.
 */
import type { Node } from '../../resources/kinds/node.ts';
import type { Replica } from '../../resources/kinds/replica.ts';
import { requireByteQuantity } from '../../resources/quantity.ts';

export interface ReplicaPlacement {
  replicaName: string;
  nodeID: string;
  /** The disk's name on the node; undefined when the node or the disk is not known. */
  diskName: string | undefined;
  /** undefined when the node is not known or has no zone. */
  zone: string | undefined;
  failed: boolean;
  sizeBytes: number;
}

/** A node's zone; '' and absent are no zone (such a node is its own failure domain). */
export function zoneOf(node: Node): string | undefined {
  const zone = node.status?.zone;
  return zone === undefined || zone === '' ? undefined : zone;
}

/** The name of the disk of `node` that `replica` is on, or undefined. */
export function findDiskOfReplica(node: Node, replica: Replica): string | undefined {
  const { diskID, diskPath } = replica.spec;
  const diskNames = Object.keys(node.spec.disks);
  if (diskID !== '') {
    const byUUID = diskNames.find((name) => node.status?.diskStatus?.[name]?.diskUUID === diskID);
    if (byUUID !== undefined) return byUUID;
    if (Object.hasOwn(node.spec.disks, diskID)) return diskID;
  }
  if (diskPath !== '') return diskNames.find((name) => node.spec.disks[name].path === diskPath);
  return undefined;
}

/** The placements of the replicas that have a node. */
export function placeReplicas(
  replicas: readonly Replica[],
  nodesByName: ReadonlyMap<string, Node>,
): ReplicaPlacement[] {
  const placements: ReplicaPlacement[] = [];
  for (const replica of replicas) {
    const nodeID = replica.spec.nodeID;
    if (nodeID === '') continue;
    const node = nodesByName.get(nodeID);
    placements.push({
      replicaName: replica.metadata.name,
      nodeID,
      diskName: node === undefined ? undefined : findDiskOfReplica(node, replica),
      zone: node === undefined ? undefined : zoneOf(node),
      failed: replica.spec.failedAt !== undefined && replica.spec.failedAt !== '',
      sizeBytes: requireByteQuantity(
        replica.spec.volumeSize,
        `Replica ${replica.metadata.name} spec.volumeSize`,
      ),
    });
  }
  return placements;
}

/** Whether a replica of the volume keeps others of the volume off its node, zone and disk. */
export function countsForAntiAffinity(replica: Replica): boolean {
  return (
    replica.spec.nodeID !== '' &&
    replica.metadata.deletionTimestamp === undefined &&
    !replica.spec.evictionRequested
  );
}

/** The replicas of both lists, each once (by namespace and name), the first list's copy kept. */
export function uniqueReplicas(...lists: (readonly Replica[])[]): Replica[] {
  const seen = new Map<string, Replica>();
  for (const list of lists) {
    for (const replica of list) {
      const key = `${replica.metadata.namespace}/${replica.metadata.name}`;
      if (!seen.has(key)) seen.set(key, replica);
    }
  }
  return [...seen.values()];
}

/** Counts and sums of placements by node, by zone and by node+disk. */
export class PlacementTally {
  private readonly byNode = new Map<string, ReplicaPlacement[]>();
  private readonly byZone = new Map<string, ReplicaPlacement[]>();
  private readonly byDisk = new Map<string, ReplicaPlacement[]>();

  constructor(placements: readonly ReplicaPlacement[]) {
    for (const placement of placements) {
      append(this.byNode, placement.nodeID, placement);
      if (placement.zone !== undefined) append(this.byZone, placement.zone, placement);
      if (placement.diskName !== undefined) {
        append(this.byDisk, diskKey(placement.nodeID, placement.diskName), placement);
      }
    }
  }

  onNode(nodeName: string): readonly ReplicaPlacement[] {
    return this.byNode.get(nodeName) ?? [];
  }

  /** Nothing for a node without a zone. */
  inZone(zone: string | undefined): readonly ReplicaPlacement[] {
    return zone === undefined ? [] : (this.byZone.get(zone) ?? []);
  }

  onDisk(nodeName: string, diskName: string): readonly ReplicaPlacement[] {
    return this.byDisk.get(diskKey(nodeName, diskName)) ?? [];
  }

  scheduledBytesOnDisk(nodeName: string, diskName: string): number {
    let total = 0;
    for (const placement of this.onDisk(nodeName, diskName)) total += placement.sizeBytes;
    return total;
  }
}

function diskKey(nodeName: string, diskName: string): string {
  return `${nodeName}\u0000${diskName}`;
}

function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
