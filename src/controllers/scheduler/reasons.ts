/**
 * Why a replica could not be scheduled: the `reason` of the volume's Scheduled condition.
 *
 * Every node and disk the scheduler looks at passes the same checks in the same order (the
 * order below). A rejected node or disk is rejected by the first check it fails. When no disk
 * is left, the failure's reason is the check that stopped the candidates that got furthest:
 * with three healthy nodes that each already hold a replica, the reason is
 * `HardNodeAntiAffinity`, not `NoSchedulableNode`, because that is what there is to change.
 *
 * Longhorn reports every failure as `ReplicaSchedulingFailure` with a list of sub-reasons in
 * the message; Hornbill names the deciding check in the reason (so alerts can match on it) and
 * keeps the per-node, per-disk detail in the message.
 */

/** The checks, in the order they are applied; each one's meaning is what docs/scheduler.md lists. */
export const SCHEDULING_REASONS = {
  StrictLocalNodeUnset:
    'data locality strict-local puts the replica on the node the volume is attached to, and it has none yet',
  HardNodeAffinityNotSatisfied:
    'the replica must go on one node (strict-local, or the replica of best-effort locality) and that node is not there',
  NoSchedulableNode:
    'the node is not Ready, not Schedulable, has scheduling disabled, is being evicted or being deleted',
  NoNodeMatchesSelector: "the node lacks a tag of the volume's nodeSelector",
  HardZoneAntiAffinity:
    "the node's zone already holds a replica of the volume and zone anti-affinity is hard",
  HardNodeAntiAffinity: 'the node already holds a replica of the volume and node anti-affinity is hard',
  NoSchedulableDisk:
    'the disk has scheduling disabled, is being evicted, is not Ready or Schedulable, or has no status yet (or the node has no disk)',
  NoDiskMatchesSelector: "the disk lacks a tag of the volume's diskSelector",
  HardDiskAntiAffinity: 'the disk already holds a replica of the volume and disk anti-affinity is hard',
  InsufficientStorage:
    'over-provisioning or minimal-available limit: the disk cannot promise or hold the replica',
} as const;

export type SchedulingReason = keyof typeof SCHEDULING_REASONS;

/** The reasons from the first check to the last. */
export const SCHEDULING_REASON_ORDER = Object.keys(SCHEDULING_REASONS) as SchedulingReason[];

/** How far a candidate got: the position of the check that rejected it. */
export function reasonDepth(reason: SchedulingReason): number {
  return SCHEDULING_REASON_ORDER.indexOf(reason);
}

/** What an operator can do about each reason; appended to the failure message. */
export const SCHEDULING_REMEDIES: Record<SchedulingReason, string> = {
  StrictLocalNodeUnset: 'attach the volume, or use data locality best-effort or disabled',
  HardNodeAffinityNotSatisfied: 'bring the required node back, or remove the replica that requires it',
  NoSchedulableNode: 'make a node Ready and Schedulable, with spec.allowScheduling true and no eviction',
  NoNodeMatchesSelector: 'tag a node with every tag of spec.nodeSelector, or change the selector',
  HardZoneAntiAffinity:
    'add a node in another zone, or allow soft zone anti-affinity (setting replica-zone-soft-anti-affinity or spec.replicaZoneSoftAntiAffinity enabled)',
  HardNodeAntiAffinity:
    'add a node, delete a failed replica that keeps a node, or allow soft node anti-affinity (setting replica-soft-anti-affinity or spec.replicaSoftAntiAffinity enabled)',
  NoSchedulableDisk: 'add a disk, or allow scheduling on one',
  NoDiskMatchesSelector: 'tag a disk with every tag of spec.diskSelector, or change the selector',
  HardDiskAntiAffinity:
    'add a disk, or allow soft disk anti-affinity (setting replica-disk-soft-anti-affinity or spec.replicaDiskSoftAntiAffinity enabled)',
  InsufficientStorage:
    'free or add disk space, lower storage-minimal-available-percentage, or raise storage-over-provisioning-percentage',
};
