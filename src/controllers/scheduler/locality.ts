/**
 * localityNeedsReplicaOn: data locality (Longhorn's best-effort and strict-local) wants a
 * replica of the volume on the node its engine runs on.
 *
 * True when the volume's `spec.dataLocality` is best-effort or strict-local, the engine has a
 * node, and none of the volume's replicas is there or on its way there. A replica is there
 * when its `spec.nodeID` is the engine's node, and on its way when it has no node yet and its
 * `spec.hardNodeAffinity` is the engine's node. Replicas being deleted or evicted do not
 * count (they are leaving); failed ones do (they are reused, or removed and then replaced).
 *
 * The caller then creates a replica with `spec.hardNodeAffinity` set to the engine's node and
 * schedules it with `scheduleReplica({ ..., hardNodeAffinity })`; once it is healthy the volume
 * has one replica too many, and `selectReplicasToRemove` picks one away from the engine's node.
 */
import type { SchedulingInput } from './schedule.ts';

export function localityNeedsReplicaOn(input: SchedulingInput & { engineNodeID: string }): boolean {
  const { engineNodeID } = input;
  if (input.volume.spec.dataLocality === 'disabled' || engineNodeID === '') return false;
  const present = input.volumeReplicas.some(
    (replica) =>
      replica.metadata.deletionTimestamp === undefined &&
      !replica.spec.evictionRequested &&
      (replica.spec.nodeID === engineNodeID ||
        (replica.spec.nodeID === '' && replica.spec.hardNodeAffinity === engineNodeID)),
  );
  return !present;
}
