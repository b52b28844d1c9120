/**
 * scheduleReplica: where a new replica of a volume goes, or exactly why it cannot go anywhere.
 *
 * 1. Which nodes may be considered: every node, or only one when the replica is bound to a
 *    node (`hardNodeAffinity`, or data locality strict-local: the volume's `spec.nodeID`, else
 *    the engine's node, else `status.currentNodeID`).
 * 2. Each node and disk goes through the checks of candidates.ts; the disks that pass them
 *    are the candidates.
 * 3. The best candidate, node first and then disk, in this order of preference (Longhorn's
 *    "unused zone, then unused node" extended to a full, deterministic order):
 *    node: (a) fewest replicas of the volume on the node, then (b) in its zone — so a node
 *    in a zone without a replica of the volume comes first, then a node without one, then
 *    the rest (soft anti-affinity); (c) with data locality best-effort, the volume's node;
 *    (d) fewest replicas of any volume on the node; (e) most free space (available −
 *    reserved) over its candidate disks; (f) name.
 *    disk: fewest replicas of the volume on it (soft disk anti-affinity), fewest replicas of
 *    any volume, most free space, name.
 * 4. No candidate: the reason is the check that stopped the candidates that got furthest
 *    (reasons.ts), and the message names every node (and disk) and why it was refused.
 *
 * The caller schedules one replica at a time and passes the placed replica in
 * `volumeReplicas` and `allReplicas` before scheduling the next.
 */
import { assert } from '../../assert.ts';
import type { Node } from '../../resources/kinds/node.ts';
import type { Replica } from '../../resources/kinds/replica.ts';
import type { Volume } from '../../resources/kinds/volume.ts';
import { requireByteQuantity } from '../../resources/quantity.ts';
import type { SettingValues } from '../../resources/settings.ts';
import {
  compareText,
  type DiskCandidate,
  evaluateNode,
  type NodeVerdict,
  type Problem,
  type SchedulingContext,
} from './candidates.ts';
import { countsForAntiAffinity, PlacementTally, placeReplicas, uniqueReplicas, zoneOf } from './placement.ts';
import { reasonDepth, SCHEDULING_REMEDIES, type SchedulingReason } from './reasons.ts';
import { antiAffinityPolicy, formatBytes } from './rules.ts';

export interface SchedulingInput {
  volume: Volume;
  /** This volume's replicas, in any state (failed ones included). */
  volumeReplicas: Replica[];
  /** Every replica in the cluster: a replica counts its spec.volumeSize as scheduled on its disk. */
  allReplicas: Replica[];
  nodes: Node[];
  /** From resolveSettings() (src/resources/settings.ts). */
  settings: SettingValues;
  /** Only this node may take the replica (Replica.spec.hardNodeAffinity): best-effort locality, reuse. */
  hardNodeAffinity?: string;
  /** Where the volume's engine runs; strict-local uses it when the volume's spec.nodeID is empty. */
  engineNodeID?: string;
}

export type SchedulingResult =
  | { scheduled: true; nodeID: string; diskName: string; diskPath: string; diskID: string }
  | { scheduled: false; reason: SchedulingReason; message: string };

/** Characters of the per-node part of a failure message, at most (a condition message holds 32 KiB). */
const FAILURE_DETAILS_MAX = 12_000;

export function scheduleReplica(input: SchedulingInput): SchedulingResult {
  const { volume } = input;
  const volumeName = volume.metadata.name;
  const nodesByName = new Map<string, Node>();
  for (const node of input.nodes) {
    assert(!nodesByName.has(node.metadata.name), `node ${node.metadata.name} is listed twice`);
    nodesByName.set(node.metadata.name, node);
  }
  for (const replica of input.volumeReplicas) {
    assert(
      replica.spec.volumeName === volumeName,
      `replica ${replica.metadata.name} is not of ${volumeName}`,
    );
  }
  const context = schedulingContext(input, nodesByName);
  const subject = `replica of volume ${volumeName} (${formatBytes(context.sizeBytes)})`;

  const bound = boundNode(input);
  if (bound.problem !== undefined)
    return failure(bound.problem.reason, `cannot place a ${subject}: ${bound.problem.text}`);
  let nodes = [...nodesByName.values()].sort((a, b) => compareText(a.metadata.name, b.metadata.name));
  if (bound.nodeID !== undefined) {
    const node = nodesByName.get(bound.nodeID);
    if (node === undefined) {
      return failure(
        'HardNodeAffinityNotSatisfied',
        `cannot place a ${subject}: it must go on node ${bound.nodeID} (${bound.why}), and there is no such node`,
      );
    }
    nodes = [node];
  }
  if (nodes.length === 0)
    return failure('NoSchedulableNode', `cannot place a ${subject}: there are no nodes`);

  const verdicts = nodes.map((node) => evaluateNode(node, context));
  const candidates = verdicts.flatMap((verdict) => verdict.candidates);
  if (candidates.length === 0) return refusal(subject, verdicts, bound);
  const localNodeID = volume.spec.dataLocality === 'best-effort' ? attachedNode(input) : undefined;
  const best = bestCandidate(candidates, context, nodesByName, localNodeID);
  return {
    scheduled: true,
    nodeID: best.nodeName,
    diskName: best.diskName,
    diskPath: best.diskPath,
    diskID: best.diskID,
  };
}

function schedulingContext(input: SchedulingInput, nodesByName: Map<string, Node>): SchedulingContext {
  const { volume, settings } = input;
  const antiAffinityReplicas = input.volumeReplicas.filter(countsForAntiAffinity);
  return {
    volumeName: volume.metadata.name,
    sizeBytes: requireByteQuantity(volume.spec.size, `Volume ${volume.metadata.name} spec.size`),
    actualBytes: volume.status?.actualSize ?? 0,
    nodeSelector: volume.spec.nodeSelector,
    diskSelector: volume.spec.diskSelector,
    policy: antiAffinityPolicy(volume.spec, settings),
    limits: {
      overProvisioningPercent: settings['storage-over-provisioning-percentage'],
      minimalAvailablePercent: settings['storage-minimal-available-percentage'],
    },
    volumeTally: new PlacementTally(placeReplicas(antiAffinityReplicas, nodesByName)),
    clusterTally: new PlacementTally(
      placeReplicas(uniqueReplicas(input.allReplicas, input.volumeReplicas), nodesByName),
    ),
  };
}

/** The node the volume is (to be) attached to, or undefined. */
function attachedNode(input: SchedulingInput): string | undefined {
  const candidates = [input.volume.spec.nodeID, input.engineNodeID, input.volume.status?.currentNodeID];
  return candidates.find((nodeID) => nodeID !== undefined && nodeID !== '');
}

interface BoundNode {
  nodeID: string | undefined;
  why: string;
  problem: Problem | undefined;
}

/** The one node the replica must go on, if any. */
function boundNode(input: SchedulingInput): BoundNode {
  const strictLocal = input.volume.spec.dataLocality === 'strict-local';
  const affinity = input.hardNodeAffinity === '' ? undefined : input.hardNodeAffinity;
  if (!strictLocal) return { nodeID: affinity, why: 'hard node affinity of the replica', problem: undefined };
  const local = attachedNode(input);
  if (local === undefined) {
    const text =
      'data locality strict-local puts it on the node the volume is attached to, and it has none yet';
    return { nodeID: undefined, why: '', problem: { reason: 'StrictLocalNodeUnset', text } };
  }
  if (affinity !== undefined && affinity !== local) {
    const text = `its hard node affinity is ${affinity} but data locality strict-local requires ${local}, the volume's node`;
    return { nodeID: undefined, why: '', problem: { reason: 'HardNodeAffinityNotSatisfied', text } };
  }
  return { nodeID: local, why: "data locality strict-local: the volume's node", problem: undefined };
}

function bestCandidate(
  candidates: readonly DiskCandidate[],
  context: SchedulingContext,
  nodesByName: ReadonlyMap<string, Node>,
  localNodeID: string | undefined,
): DiskCandidate {
  const byNode = new Map<string, DiskCandidate[]>();
  for (const candidate of candidates) {
    byNode.set(candidate.nodeName, [...(byNode.get(candidate.nodeName) ?? []), candidate]);
  }
  const nodeKeys = [...byNode].map(([nodeName, disks]) => {
    const zone = zoneOf(nodesByName.get(nodeName)!);
    const onNode = context.volumeTally.onNode(nodeName).length;
    const inZone = context.volumeTally.inZone(zone).length;
    const freeBytes = disks.reduce((total, disk) => total + disk.freeBytes, 0);
    const key = [
      onNode,
      inZone,
      nodeName === localNodeID ? 0 : 1,
      context.clusterTally.onNode(nodeName).length,
      -freeBytes,
    ];
    return { nodeName, disks, key };
  });
  nodeKeys.sort((a, b) => compareKeys(a.key, b.key) || compareText(a.nodeName, b.nodeName));
  const diskKeys = nodeKeys[0].disks.map((disk) => ({
    disk,
    key: [
      context.volumeTally.onDisk(disk.nodeName, disk.diskName).length,
      context.clusterTally.onDisk(disk.nodeName, disk.diskName).length,
      -disk.freeBytes,
    ],
  }));
  diskKeys.sort((a, b) => compareKeys(a.key, b.key) || compareText(a.disk.diskName, b.disk.diskName));
  return diskKeys[0].disk;
}

function compareKeys(a: readonly number[], b: readonly number[]): number {
  for (let index = 0; index < a.length; index++) {
    if (a[index] !== b[index]) return a[index] - b[index];
  }
  return 0;
}

/** The failure when no disk passed: the deepest check's reason, every node and disk listed. */
function refusal(subject: string, verdicts: readonly NodeVerdict[], bound: BoundNode): SchedulingResult {
  const entries: string[] = [];
  let reason: SchedulingReason | undefined;
  const consider = (problem: Problem) => {
    if (reason === undefined || reasonDepth(problem.reason) > reasonDepth(reason)) reason = problem.reason;
  };
  for (const verdict of verdicts) {
    if (verdict.nodeProblem !== undefined) {
      consider(verdict.nodeProblem);
      entries.push(`${verdict.nodeName}: ${verdict.nodeProblem.text}`);
    }
    for (const { diskName, problem } of verdict.diskProblems) {
      consider(problem);
      entries.push(`${verdict.nodeName}: disk ${diskName}: ${problem.text}`);
    }
  }
  assert(reason !== undefined && entries.length > 0, 'a refusal has at least one rejected node or disk');
  const where = bound.nodeID === undefined ? '' : ` (it must go on node ${bound.nodeID}: ${bound.why})`;
  return failure(reason, `cannot place a ${subject}${where}: ${boundedList(entries)}`);
}

function failure(reason: SchedulingReason, message: string): SchedulingResult {
  return { scheduled: false, reason, message: `${message}. To fix: ${SCHEDULING_REMEDIES[reason]}` };
}

/** The entries joined by '; ', cut after FAILURE_DETAILS_MAX characters with a count of the rest. */
function boundedList(entries: readonly string[]): string {
  let text = '';
  for (let index = 0; index < entries.length; index++) {
    const next = text === '' ? entries[index] : `${text}; ${entries[index]}`;
    if (next.length > FAILURE_DETAILS_MAX) return `${text}; and ${entries.length - index} more`;
    text = next;
  }
  return text;
}
