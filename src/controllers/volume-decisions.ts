/**
 * The volume controller's decisions that need no I/O, kept pure so that unit tests can
 * hold them: robustness from replica modes, where to attach, which replicas an engine
 * starts with, which replicas a salvage brings back, whether a failed replica may be
 * reused, when the replenishment wait ends, and replica eviction (which replicas leave,
 * whether a replacement is due, which evicted replica may go).
 */
import {
  type AttachmentTicket,
  type Node,
  type Replica,
  type ReplicaMode,
  selectAttachmentTicket,
  type Volume,
  type VolumeAttachment,
  type VolumeRobustness,
} from '../resources/index.ts';
import { timestampMs } from './context.ts';
import { findDiskOfReplica } from './scheduler/placement.ts';

/** A replica that rebuilt and failed this many times is not reused again (Longhorn's limit). */
export const MAXIMUM_REBUILD_RETRIES = 5;
/**
 * A failed replica is reused no sooner than this after its failure: a process that just
 * died can still be listed as running for a poll interval (1 s), and reusing it then would
 * only fail again and use up a retry.
 */
export const REUSE_SETTLE_MS = 3000;

/**
 * Robustness of an attached volume from its engine's replica modes: RW replicas at least
 * numberOfReplicas → healthy; some → degraded; none → faulted.
 */
export function robustnessFromModes(
  modes: Readonly<Record<string, ReplicaMode>>,
  numberOfReplicas: number,
): VolumeRobustness {
  const readWrite = Object.values(modes).filter((mode) => mode === 'RW').length;
  if (readWrite === 0) return 'faulted';
  return readWrite >= numberOfReplicas ? 'healthy' : 'degraded';
}

/** Robustness of a detached volume from its replicas: usable (not failed) ones count. */
export function robustnessFromReplicas(
  replicas: readonly Replica[],
  numberOfReplicas: number,
): VolumeRobustness {
  const scheduled = replicas.filter((replica) => replica.spec.nodeID !== '');
  if (scheduled.length === 0) return 'unknown';
  const usable = scheduled.filter((replica) => isUsable(replica)).length;
  if (usable === 0) return 'faulted';
  return usable >= numberOfReplicas ? 'healthy' : 'degraded';
}

/** Not failed and not being deleted. */
export function isUsable(replica: Replica): boolean {
  return replica.spec.failedAt === undefined && replica.metadata.deletionTimestamp === undefined;
}

export function isFailed(replica: Replica): boolean {
  return replica.spec.failedAt !== undefined && replica.metadata.deletionTimestamp === undefined;
}

/**
 * Where the volume should be attached: the node of the attachment ticket that wins
 * (highest priority, then smallest id) when there are tickets, else spec.nodeID; '' for
 * detached. Also says whether the winning ticket asks for no frontend. An rwx volume is
 * attached where its share manager runs: its workloads' csi-attacher tickets are served
 * over NFS and do not move the block device (as in Longhorn).
 */
export function desiredAttachment(
  volume: Volume,
  attachment: VolumeAttachment | undefined,
): { nodeID: string; disableFrontend: boolean; ticket?: AttachmentTicket } {
  // A volume still being filled from its dataSource serves only the clone's ticket.
  const cloning = volume.spec.dataSource !== undefined && volume.status?.cloneStatus?.state !== 'completed';
  const tickets =
    attachment === undefined
      ? undefined
      : Object.fromEntries(
          Object.entries(attachment.spec.attachmentTickets).filter(([, ticket]) =>
            cloning
              ? ticket.type === 'clone'
              : volume.spec.accessMode !== 'rwx' || ticket.type !== 'csi-attacher',
          ),
        );
  const ticket = tickets === undefined ? undefined : selectAttachmentTicket(tickets);
  if (ticket !== undefined) {
    return {
      nodeID: ticket.nodeID,
      disableFrontend: volume.spec.disableFrontend || ticket.parameters.disableFrontend === 'true',
      ticket,
    };
  }
  return { nodeID: volume.spec.nodeID, disableFrontend: volume.spec.disableFrontend };
}

/**
 * The replicas an engine starts with: the usable ones on ready nodes that hold the
 * volume's data. Once any replica of the volume has been healthy (RW in an engine), only
 * replicas that have been healthy hold data; the others join later by rebuild. A volume
 * none of whose replicas was ever healthy is new: every replica starts empty and equal.
 */
export function engineStartReplicas(
  replicas: readonly Replica[],
  readyNodes: ReadonlySet<string>,
): Replica[] {
  const candidates = replicas.filter(
    (replica) => isUsable(replica) && replica.spec.nodeID !== '' && readyNodes.has(replica.spec.nodeID),
  );
  const everHealthy = replicas.some((replica) => replica.spec.healthyAt !== undefined);
  return everHealthy ? candidates.filter((replica) => replica.spec.healthyAt !== undefined) : candidates;
}

/**
 * The failed replica to reuse for replenishment, if any: its process runs again (on a ready
 * node: `running` names them), it failed at least REUSE_SETTLE_MS ago, it was rebuilt fewer
 * than MAXIMUM_REBUILD_RETRIES times, the most
 * recently failed first (its data is the newest, so its re-sync copies least).
 */
export function reusableFailedReplica(
  replicas: readonly Replica[],
  running: ReadonlySet<string>,
  nowMs: number,
): Replica | undefined {
  return replicas
    .filter(
      (replica) =>
        isFailed(replica) &&
        running.has(replica.metadata.name) &&
        nowMs - (timestampMs(replica.spec.failedAt) ?? 0) >= REUSE_SETTLE_MS &&
        replica.spec.rebuildRetryCount < MAXIMUM_REBUILD_RETRIES &&
        replica.spec.dataDirectoryName !== '',
    )
    .sort((a, b) => (timestampMs(b.spec.failedAt) ?? 0) - (timestampMs(a.spec.failedAt) ?? 0))[0];
}

/**
 * Milliseconds left of the replenishment wait: a new replica is built only once the most
 * recent failure is `waitSeconds` old (the failed replica may come back and re-sync less).
 * 0 when the wait is over or nothing failed.
 */
export function replenishmentWaitLeftMs(
  replicas: readonly Replica[],
  waitSeconds: number,
  nowMs: number,
): number {
  const latest = Math.max(
    0,
    ...replicas.filter(isFailed).map((replica) => timestampMs(replica.spec.failedAt) ?? 0),
  );
  if (latest === 0) return 0;
  return Math.max(0, latest + waitSeconds * 1000 - nowMs);
}

/** Failed replicas older than the stale replica timeout, to delete — never the last copies. */
export function staleReplicas(
  replicas: readonly Replica[],
  staleTimeoutMinutes: number,
  nowMs: number,
): Replica[] {
  const usable = replicas.filter(isUsable).length;
  if (usable === 0) return []; // failed replicas are all that is left: keep them for salvage
  return replicas.filter(
    (replica) =>
      isFailed(replica) &&
      nowMs - (timestampMs(replica.spec.failedAt) ?? nowMs) >= staleTimeoutMinutes * 60_000,
  );
}

/** Replicas that failed within this much of the last failure count as failing last. */
export const LAST_FAILURE_WINDOW_MS = 5000;

/**
 * The replicas a salvage must wait for, or [] to go ahead: those that failed last (within
 * LAST_FAILURE_WINDOW_MS of the last failure: one of them saw the newest writes) and are not
 * on a ready node — every one of them, not just one: a replica's failedAt is when the
 * controller noticed, so one dropped by the engine earlier can land in the window when the
 * controller was slow, and going ahead with it alone would bring back older data (found by
 * a CI run of the e2e salvage test). For at most `waitSeconds` after that failure, after
 * which the salvage takes the best of what is there.
 */
export function salvageWaitsFor(
  replicas: readonly Replica[],
  readyNodes: ReadonlySet<string>,
  waitSeconds: number,
  nowMs: number,
): Replica[] {
  const failed = replicas.filter(isFailed);
  if (failed.length === 0) return [];
  const latestMs = Math.max(...failed.map((replica) => timestampMs(replica.spec.failedAt) ?? 0));
  const failedLast = failed.filter(
    (replica) => (timestampMs(replica.spec.failedAt) ?? 0) >= latestMs - LAST_FAILURE_WINDOW_MS,
  );
  const away = failedLast.filter((replica) => !readyNodes.has(replica.spec.nodeID));
  return nowMs - latestMs < waitSeconds * 1000 ? away : [];
}

/**
 * Whether a salvage may choose now although some running candidates did not answer with
 * their revision counter (a replica just started, a slow node): not while the last failure
 * is younger than `waitSeconds` — one of them may hold the newest data, and choosing without
 * it would bring back older data and rebuild the newest replica from it.
 */
export function salvageMayDecide(
  unanswered: readonly Replica[],
  replicas: readonly Replica[],
  waitSeconds: number,
  nowMs: number,
): boolean {
  if (unanswered.length === 0) return true;
  const failed = replicas.filter(isFailed);
  const latestMs = Math.max(0, ...failed.map((replica) => timestampMs(replica.spec.failedAt) ?? 0));
  return nowMs - latestMs >= waitSeconds * 1000;
}

export interface SalvageCandidate {
  name: string;
  revisionCounter: number;
}

/**
 * The replicas a salvage brings back: those with the highest revision counter (they applied
 * the most writes; the others are behind and will be rebuilt from them).
 */
export function selectSalvageReplicas(candidates: readonly SalvageCandidate[]): string[] {
  if (candidates.length === 0) return [];
  const best = Math.max(...candidates.map((candidate) => candidate.revisionCounter));
  return candidates
    .filter((candidate) => candidate.revisionCounter === best)
    .map((candidate) => candidate.name)
    .sort();
}

/** Replicas being rebuilt on `nodeID` across all engines (in an engine's map, not yet RW). */
export function rebuildsOnNode(
  nodeID: string,
  replicasByName: ReadonlyMap<string, Replica>,
  engines: readonly {
    spec: { replicaAddressMap: Record<string, string> };
    status?: { replicaModeMap?: Record<string, ReplicaMode> };
  }[],
): number {
  let count = 0;
  for (const engine of engines) {
    for (const replicaName of Object.keys(engine.spec.replicaAddressMap)) {
      if (replicasByName.get(replicaName)?.spec.nodeID !== nodeID) continue;
      if (engine.status?.replicaModeMap?.[replicaName] !== 'RW') count++;
    }
  }
  return count;
}

/**
 * Whether the replica's node or disk asks for eviction (Node `spec.evictionRequested`, or
 * `spec.disks[disk].evictionRequested` of the disk it is on). The volume controller mirrors
 * this into the Replica's `spec.evictionRequested`.
 */
export function placementEvicting(replica: Replica, nodesByName: ReadonlyMap<string, Node>): boolean {
  if (replica.spec.nodeID === '') return false;
  const node = nodesByName.get(replica.spec.nodeID);
  if (node === undefined) return false;
  if (node.spec.evictionRequested) return true;
  const disk = findDiskOfReplica(node, replica);
  return disk !== undefined && node.spec.disks[disk].evictionRequested === true;
}

/** Being evicted: its own spec.evictionRequested, or its node or disk is evicting. */
export function isEvicting(replica: Replica, nodesByName: ReadonlyMap<string, Node>): boolean {
  return replica.spec.evictionRequested || placementEvicting(replica, nodesByName);
}

export interface EvictionPlan {
  /** The usable replicas being evicted. */
  evicting: Replica[];
  /** Fewer than numberOfReplicas usable replicas stay: schedule (and rebuild) one more. */
  needsReplacement: boolean;
  /**
   * An evicted replica that may be deleted now: at least numberOfReplicas replicas that
   * stay are whole (`whole`: RW in the running engine, or holding the data when detached),
   * so the volume keeps its redundancy without it. Undefined otherwise.
   */
  deletable: Replica | undefined;
}

/**
 * Eviction of a volume's replicas (as Longhorn's): an evicted replica is "to be replaced".
 * While fewer than numberOfReplicas usable replicas are not being evicted, one more is
 * needed; an evicted one goes only once numberOfReplicas whole replicas stay, never before.
 * `usable` are the volume's usable replicas (not failed, not being deleted).
 */
export function evictionPlan(
  usable: readonly Replica[],
  numberOfReplicas: number,
  evicting: (replica: Replica) => boolean,
  whole: (replica: Replica) => boolean,
): EvictionPlan {
  const leaving = usable.filter(evicting);
  if (leaving.length === 0) return { evicting: [], needsReplacement: false, deletable: undefined };
  const staying = usable.filter((replica) => !evicting(replica));
  const wholeStaying = staying.filter(whole).length;
  const deletable =
    wholeStaying >= numberOfReplicas
      ? [...leaving].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))[0]
      : undefined;
  return { evicting: leaving, needsReplacement: staying.length < numberOfReplicas, deletable };
}
