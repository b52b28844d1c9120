/**
 * The replica scheduler: pure functions over the resources, no I/O. The rules, the reasons
 * and examples are in docs/scheduler.md.
 *
 * - `scheduleReplica` — the node and disk for a new replica, or why there is none
 *   (schedule.ts; the checks in candidates.ts, the space and anti-affinity rules in rules.ts).
 * - `selectReplicasToRemove` — which replicas to delete when there are too many (removal.ts).
 * - `localityNeedsReplicaOn` — whether data locality wants a replica on the engine's node
 *   (locality.ts).
 *
 * Failure reasons (the Scheduled condition's reason), from the first check to the last:
 * `StrictLocalNodeUnset`, `HardNodeAffinityNotSatisfied`, `NoSchedulableNode`,
 * `NoNodeMatchesSelector`, `HardZoneAntiAffinity`, `HardNodeAntiAffinity`,
 * `NoSchedulableDisk`, `NoDiskMatchesSelector`, `HardDiskAntiAffinity`,
 * `InsufficientStorage` (reasons.ts).
 *
 * ```ts
 * const result = scheduleReplica({ volume, volumeReplicas, allReplicas, nodes, settings: resolveSettings(settingObjects) });
 * if (result.scheduled) replica.spec = { ...replica.spec, nodeID: result.nodeID, diskID: result.diskID, diskPath: result.diskPath };
 * else conditions = setCondition(conditions, { type: 'Scheduled', status: 'False', reason: result.reason, message: result.message });
 * ```
 */
import type { SettingValues } from '../../resources/settings.ts';

export { localityNeedsReplicaOn } from './locality.ts';
export {
  SCHEDULING_REASON_ORDER,
  SCHEDULING_REASONS,
  SCHEDULING_REMEDIES,
  type SchedulingReason,
} from './reasons.ts';
export { type RemovalInput, selectReplicasToRemove } from './removal.ts';
export { type AntiAffinityPolicy, antiAffinityPolicy, formatBytes } from './rules.ts';
export { type SchedulingInput, type SchedulingResult, scheduleReplica } from './schedule.ts';

/** What resolveSettings() returns (the brief's name for it). */
export type ResolvedSettings = SettingValues;
