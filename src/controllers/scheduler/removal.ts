/**
 * selectReplicasToRemove: which of a volume's replicas to delete when it has more than it
 * should (numberOfReplicas lowered, a replacement built for an evicted or a local replica).
 *
 * Replicas already being deleted are never chosen; `count` is how many of the others to
 * remove. They are chosen one at a time, each time the first in this order among those left:
 * 1. not scheduled (no node): it holds nothing;
 * 2. failed: `spec.failedAt` set, or mode ERR (from `replicaModes`, the engine's
 *    replicaModeMap, else the replica's `status.mode`);
 * 3. being evicted (`spec.evictionRequested`);
 * 4. rebuilding (mode WO): not yet a full copy;
 * 5. the rest (RW, or no mode known);
 * and within one of these groups: the replica that shares its node with the most other
 * remaining replicas of the volume, then its zone (a node without a zone shares nothing);
 * then, with data locality best-effort or strict-local and `engineNodeID` known, one not on
 * the engine's node; then the newest (`metadata.creationTimestamp`, then the name, last first).
 * Choosing one at a time means that of two replicas on one node only one is removed for
 * anti-affinity: the other is then alone there.
 */
import { assert } from '../../assert.ts';
import type { ReplicaMode } from '../../resources/kinds/engine.ts';
import type { Node } from '../../resources/kinds/node.ts';
import type { Replica } from '../../resources/kinds/replica.ts';
import { compareText } from './candidates.ts';
import { zoneOf } from './placement.ts';
import type { SchedulingInput } from './schedule.ts';

export interface RemovalInput extends SchedulingInput {
  /** How many replicas to remove (at most the replicas not already being deleted). */
  count: number;
  engineNodeID?: string;
  /** The engine's status.replicaModeMap: replica name → RW, WO or ERR. */
  replicaModes?: Record<string, ReplicaMode>;
}

const UNSCHEDULED = 0;
const FAILED = 1;
const EVICTING = 2;
const REBUILDING = 3;
const HEALTHY = 4;

export function selectReplicasToRemove(input: RemovalInput): Replica[] {
  assert(
    Number.isInteger(input.count) && input.count >= 0,
    `count must be a whole number ≥ 0, not ${input.count}`,
  );
  const zoneByNode = new Map<string, string | undefined>(
    input.nodes.map((node: Node) => [node.metadata.name, zoneOf(node)]),
  );
  const locality = input.volume.spec.dataLocality;
  const engineNodeID =
    locality !== 'disabled' && input.engineNodeID !== undefined && input.engineNodeID !== ''
      ? input.engineNodeID
      : undefined;
  const remaining = input.volumeReplicas.filter(
    (replica) => replica.metadata.deletionTimestamp === undefined,
  );
  const chosen: Replica[] = [];
  while (chosen.length < input.count && remaining.length > 0) {
    const keyed = remaining.map((replica) => ({
      replica,
      key: removalKey(replica, remaining, zoneByNode, engineNodeID, input.replicaModes),
    }));
    keyed.sort((a, b) => compareRemoval(a, b));
    const first = keyed[0].replica;
    chosen.push(first);
    remaining.splice(remaining.indexOf(first), 1);
  }
  return chosen;
}

function removalKey(
  replica: Replica,
  remaining: readonly Replica[],
  zoneByNode: ReadonlyMap<string, string | undefined>,
  engineNodeID: string | undefined,
  replicaModes: Record<string, ReplicaMode> | undefined,
): number[] {
  const nodeID = replica.spec.nodeID;
  const zone = nodeID === '' ? undefined : zoneByNode.get(nodeID);
  let sharingNode = 0;
  let sharingZone = 0;
  for (const other of remaining) {
    if (other === replica || other.spec.nodeID === '' || nodeID === '') continue;
    if (other.spec.nodeID === nodeID) sharingNode++;
    if (zone !== undefined && zoneByNode.get(other.spec.nodeID) === zone) sharingZone++;
  }
  const local = engineNodeID !== undefined && nodeID === engineNodeID ? 1 : 0;
  return [group(replica, replicaModes), -sharingNode, -sharingZone, local];
}

function group(replica: Replica, replicaModes: Record<string, ReplicaMode> | undefined): number {
  if (replica.spec.nodeID === '') return UNSCHEDULED;
  const mode = replicaModes?.[replica.metadata.name] ?? replica.status?.mode;
  if ((replica.spec.failedAt !== undefined && replica.spec.failedAt !== '') || mode === 'ERR') return FAILED;
  if (replica.spec.evictionRequested) return EVICTING;
  if (mode === 'WO') return REBUILDING;
  return HEALTHY;
}

function compareRemoval(
  a: { replica: Replica; key: number[] },
  b: { replica: Replica; key: number[] },
): number {
  for (let index = 0; index < a.key.length; index++) {
    if (a.key[index] !== b.key[index]) return a.key[index] - b.key[index];
  }
  // Newest first: the later creation time, then the later name.
  return (
    compareText(b.replica.metadata.creationTimestamp ?? '', a.replica.metadata.creationTimestamp ?? '') ||
    compareText(b.replica.metadata.name, a.replica.metadata.name)
  );
}
