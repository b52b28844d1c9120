/**
 * The checks one node and its disks go through, in this order (the order of
 * SCHEDULING_REASONS); the first check a node or disk fails rejects it:
 *
 * 1. the node is usable: not being deleted, `spec.allowScheduling`, no
 *    `spec.evictionRequested`, and conditions Ready and Schedulable both True;
 * 2. the node's `spec.tags` include every tag of the volume's `spec.nodeSelector`;
 * 3. hard zone anti-affinity: the node's zone holds none of the volume's replicas (a node
 *    without a zone is in no zone, so this never rejects it);
 * 4. hard node anti-affinity: the node holds none of the volume's replicas;
 * then each disk of `spec.disks`:
 * 5. the disk is usable: `allowScheduling`, no `evictionRequested`, a `status.diskStatus`
 *    entry, and its Ready and Schedulable conditions True when it has them;
 * 6. the disk's tags include every tag of the volume's `spec.diskSelector`;
 * 7. hard disk anti-affinity: the disk holds none of the volume's replicas;
 * 8. space: see rules.ts (over-provisioning and minimal available).
 * A disk that passes all of them is a candidate. Soft anti-affinity rejects nothing; it
 * ranks the candidates (schedule.ts).
 */
import type { Condition } from '../../resources/api.ts';
import { findCondition } from '../../resources/conditions.ts';
import type { Node } from '../../resources/kinds/node.ts';
import { requireByteQuantity } from '../../resources/quantity.ts';
import { type PlacementTally, type ReplicaPlacement, zoneOf } from './placement.ts';
import type { SchedulingReason } from './reasons.ts';
import { type AntiAffinityPolicy, type SpaceLimits, spaceProblem, tagProblem } from './rules.ts';

/** What the checks need to know about the volume and the cluster. */
export interface SchedulingContext {
  volumeName: string;
  sizeBytes: number;
  /** The data a new replica receives by rebuild now (the volume's status.actualSize). */
  actualBytes: number;
  nodeSelector: readonly string[];
  diskSelector: readonly string[];
  policy: AntiAffinityPolicy;
  limits: SpaceLimits;
  /** The volume's replicas that count for anti-affinity. */
  volumeTally: PlacementTally;
  /** Every replica in the cluster: for space and for balance. */
  clusterTally: PlacementTally;
}

export interface Problem {
  reason: SchedulingReason;
  text: string;
}

/** A disk that can take the replica. */
export interface DiskCandidate {
  nodeName: string;
  diskName: string;
  diskPath: string;
  /** The disk's UUID from the node's status, else its name. */
  diskID: string;
  /** storageAvailable − storageReserved: Longhorn's "most usable storage". */
  freeBytes: number;
}

/** The outcome for one node: rejected as a whole, or disk by disk (some may be candidates). */
export interface NodeVerdict {
  nodeName: string;
  nodeProblem: Problem | undefined;
  diskProblems: { diskName: string; problem: Problem }[];
  candidates: DiskCandidate[];
}

/** Replica names listed in one message entry, at most. */
const LISTED_REPLICAS_MAX = 4;
/** Characters of a condition message quoted from a node or disk, at most. */
const QUOTED_MESSAGE_MAX = 160;

export function evaluateNode(node: Node, context: SchedulingContext): NodeVerdict {
  const nodeName = node.metadata.name;
  const verdict: NodeVerdict = { nodeName, nodeProblem: undefined, diskProblems: [], candidates: [] };
  verdict.nodeProblem = nodeLevelProblem(node, context);
  if (verdict.nodeProblem !== undefined) return verdict;
  const diskNames = Object.keys(node.spec.disks).sort();
  if (diskNames.length === 0) {
    verdict.nodeProblem = { reason: 'NoSchedulableDisk', text: 'has no disks' };
    return verdict;
  }
  for (const diskName of diskNames) {
    const problem = diskProblem(node, diskName, context);
    if (problem !== undefined) {
      verdict.diskProblems.push({ diskName, problem });
      continue;
    }
    const status = node.status!.diskStatus![diskName];
    const spec = node.spec.disks[diskName];
    const reservedBytes = requireByteQuantity(spec.storageReserved, `Node ${nodeName} disk ${diskName}`);
    verdict.candidates.push({
      nodeName,
      diskName,
      diskPath: spec.path,
      diskID: status.diskUUID !== undefined && status.diskUUID !== '' ? status.diskUUID : diskName,
      freeBytes: status.storageAvailable - reservedBytes,
    });
  }
  return verdict;
}

function nodeLevelProblem(node: Node, context: SchedulingContext): Problem | undefined {
  const usability = nodeUsabilityProblem(node);
  if (usability !== undefined) return { reason: 'NoSchedulableNode', text: usability };
  const tags = tagProblem(node.spec.tags, context.nodeSelector);
  if (tags !== undefined) return { reason: 'NoNodeMatchesSelector', text: tags };
  const zone = zoneOf(node);
  const inZone = context.volumeTally.inZone(zone);
  if (context.policy.zone === 'hard' && inZone.length > 0) {
    return {
      reason: 'HardZoneAntiAffinity',
      text: `hard zone anti-affinity: zone ${zone} already holds ${listReplicas(inZone, true)}`,
    };
  }
  const onNode = context.volumeTally.onNode(node.metadata.name);
  if (context.policy.node === 'hard' && onNode.length > 0) {
    return {
      reason: 'HardNodeAntiAffinity',
      text: `hard node anti-affinity: already holds ${listReplicas(onNode)}`,
    };
  }
  return undefined;
}

function nodeUsabilityProblem(node: Node): string | undefined {
  if (node.metadata.deletionTimestamp !== undefined) return 'being deleted';
  if (!node.spec.allowScheduling) return 'scheduling disabled (spec.allowScheduling false)';
  if (node.spec.evictionRequested) return 'eviction requested';
  for (const type of ['Ready', 'Schedulable']) {
    const condition = findCondition(node.status?.conditions, type);
    if (condition === undefined) return `not ${type} (no ${type} condition yet)`;
    if (condition.status !== 'True') return `not ${type}${describeCondition(condition)}`;
  }
  return undefined;
}

function diskProblem(node: Node, diskName: string, context: SchedulingContext): Problem | undefined {
  const spec = node.spec.disks[diskName];
  const status = node.status?.diskStatus?.[diskName];
  const unusable = (text: string): Problem => ({ reason: 'NoSchedulableDisk', text });
  if (!spec.allowScheduling) return unusable('scheduling disabled (allowScheduling false)');
  if (spec.evictionRequested) return unusable('eviction requested');
  if (status === undefined) return unusable('no status yet');
  for (const type of ['Ready', 'Schedulable']) {
    const condition = findCondition(status.conditions, type);
    if (condition !== undefined && condition.status !== 'True') {
      return unusable(`not ${type}${describeCondition(condition)}`);
    }
  }
  const tags = tagProblem(spec.tags, context.diskSelector);
  if (tags !== undefined) return { reason: 'NoDiskMatchesSelector', text: tags };
  const onDisk = context.volumeTally.onDisk(node.metadata.name, diskName);
  if (context.policy.disk === 'hard' && onDisk.length > 0) {
    return {
      reason: 'HardDiskAntiAffinity',
      text: `hard disk anti-affinity: already holds ${listReplicas(onDisk)}`,
    };
  }
  const space = spaceProblem(
    {
      maximumBytes: status.storageMaximum,
      availableBytes: status.storageAvailable,
      reservedBytes: requireByteQuantity(spec.storageReserved, `Node ${node.metadata.name} disk ${diskName}`),
      scheduledBytes: context.clusterTally.scheduledBytesOnDisk(node.metadata.name, diskName),
    },
    { sizeBytes: context.sizeBytes, actualBytes: context.actualBytes },
    context.limits,
  );
  if (space !== undefined) return { reason: 'InsufficientStorage', text: space };
  return undefined;
}

/** ` (KubeletNotReady: kubelet stopped posting status)`, shortened. */
function describeCondition(condition: Condition): string {
  const message =
    condition.message.length > QUOTED_MESSAGE_MAX
      ? `${condition.message.slice(0, QUOTED_MESSAGE_MAX)}…`
      : condition.message;
  const parts = [condition.reason, message].filter((part) => part !== '');
  return parts.length === 0 ? '' : ` (${parts.join(': ')})`;
}

/** `vol1-r-a1b2, vol1-r-c3d4 (failed)`; with nodes: `vol1-r-a1b2 on node-1`. */
function listReplicas(placements: readonly ReplicaPlacement[], withNode = false): string {
  const sorted = [...placements].sort((a, b) => compareText(a.replicaName, b.replicaName));
  const names = sorted
    .slice(0, LISTED_REPLICAS_MAX)
    .map(
      (placement) =>
        `${placement.replicaName}${withNode ? ` on ${placement.nodeID}` : ''}${placement.failed ? ' (failed)' : ''}`,
    );
  const more = sorted.length - names.length;
  return more > 0 ? `${names.join(', ')} and ${more} more` : names.join(', ');
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
