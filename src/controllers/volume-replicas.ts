/**
 * The replica half of the volume controller: keeps the volume's Replica resources in line
 * with the volume.
 *
 * - failure: a replica whose node is down, whose engine reports it ERR, whose process is in
 *   error, or which restarted at another address gets `spec.failedAt` (Event ReplicaFailed)
 *   and leaves the engine's replica map; its process is kept running (started again when
 *   its node returns) so that it can be reused;
 * - health: a replica the engine reports RW gets `spec.healthyAt` (it holds the data);
 * - stale replicas: failed longer than spec.staleReplicaTimeout minutes → deleted, unless
 *   failed replicas are all that is left;
 * - too few usable replicas (creation, a failure, numberOfReplicas raised, data locality):
 *   reuse a failed replica whose node is back (the engine re-syncs only what changed);
 *   else, once replica-replenishment-wait-interval has passed since the last failure, a new
 *   replica is scheduled (one per reconcile; condition Scheduled says why it cannot be);
 * - too many (numberOfReplicas lowered, a local replica built): the scheduler picks which go;
 * - eviction: a replica whose node or disk asks for eviction gets `spec.evictionRequested`
 *   (cleared again when the request is withdrawn, if the controller set it); an evicted
 *   replica is replaced — while fewer than numberOfReplicas usable replicas are not being
 *   evicted, one more is scheduled — and deleted once numberOfReplicas replicas that stay
 *   are whole (Event ReplicaEvicted); when no node can take it, Event EvictionBlocked.
 */
import {
  type Engine,
  type Node,
  ownerReferenceTo,
  type Replica,
  type SettingValues,
  type Volume,
  type VolumeAttachment,
} from '../resources/index.ts';
import {
  type ControllerContext,
  NODE_LABEL,
  names,
  nowTimestamp,
  shortHash,
  VOLUME_LABEL,
} from './context.ts';
import { localityNeedsReplicaOn, scheduleReplica, selectReplicasToRemove } from './scheduler/index.ts';
import {
  evictionPlan,
  isEvicting,
  isFailed,
  isUsable,
  placementEvicting,
  replenishmentWaitLeftMs,
  reusableFailedReplica,
  staleReplicas,
} from './volume-decisions.ts';

export const COMPONENT = 'hornbill-volume-controller';
/**
 * Replica annotation: the controller set spec.evictionRequested because the node or disk
 * asks for eviction (so it clears it when that request is withdrawn, and leaves a flag set
 * by hand alone).
 */
export const EVICTION_MARK_ANNOTATION = 'hornbill.io/eviction-from-placement';

export interface VolumeWorld {
  volume: Volume;
  engine: Engine | undefined;
  /** This volume's replicas (being deleted included). */
  replicas: Replica[];
  allReplicas: Replica[];
  nodes: Node[];
  /** Nodes whose instance manager answers now. */
  readyNodes: Set<string>;
  /** Nodes marked down (Ready False). */
  downNodes: Set<string>;
  /** This volume's replicas whose process runs now on a ready node: name → host:port. */
  runningReplicas: Map<string, string>;
  settings: SettingValues;
  nowMs: number;
  attachment: VolumeAttachment | undefined;
  /** Where the volume is wanted ('' detached): strict-local places its replica there. */
  desiredNodeID: string;
}

/** What the replica pass found: whether it changed something, and when to look again. */
export interface ReplicaPassResult {
  changed: boolean;
  requeueAfterMs?: number;
  scheduling?: { status: 'True' | 'False'; reason: string; message: string };
}

/** The engine process as its instance manager reports it now (address → mode), if it runs. */
export function liveEngineModes(
  context: ControllerContext,
  engine: Engine | undefined,
): Record<string, string> | undefined {
  if (engine === undefined || engine.spec.desireState !== 'running' || engine.spec.nodeID === '')
    return undefined;
  const monitor = context.monitors.get(engine.spec.nodeID);
  const instance = monitor?.reachable ? monitor.instance(engine.metadata.name) : undefined;
  if (instance === undefined || instance.state !== 'running') return undefined;
  return (instance.engine?.replica_mode_map ?? {}) as Record<string, string>;
}

/**
 * Whether the engine is adding the replica at `address` right now: AddReplica lists it as
 * ERR ("rebuilding") while it connects, before the rebuild makes it WO. Asked only when a
 * mode is ERR.
 */
async function beingAdded(
  context: ControllerContext,
  engine: Engine | undefined,
  address: string,
): Promise<boolean> {
  if (engine === undefined) return false;
  const monitor = context.monitors.get(engine.spec.nodeID);
  const status = await monitor?.client
    .call('GetEngineStatus', { name: engine.metadata.name }, { deadlineMs: 5000 })
    .catch(() => undefined);
  if (status === undefined) return false;
  const entry = ((status.replicas ?? []) as { address: string; mode: string; error: string }[]).find(
    (candidate) => candidate.address === address,
  );
  if (entry === undefined) return false;
  if (entry.mode !== 'ERR') return true; // it moved on (WO or RW) since the last poll
  if (entry.error === 'rebuilding') return true;
  const rebuild = status.rebuild as { target: string; state: string } | null | undefined;
  return rebuild?.target === address && rebuild.state !== 'done' && rebuild.state !== 'failed';
}

/** Marks failures and health from the engine and the nodes. Returns whether anything changed. */
export async function markReplicaStates(context: ControllerContext, world: VolumeWorld): Promise<boolean> {
  const { engine, volume } = world;
  const live = liveEngineModes(context, engine);
  const failedNames: string[] = [];
  let changed = false;
  for (const replica of world.replicas) {
    if (!isUsable(replica)) continue;
    const mappedAddress = engine?.spec.replicaAddressMap[replica.metadata.name];
    const runningAddress = world.runningReplicas.get(replica.metadata.name);
    const liveMode = mappedAddress === undefined ? undefined : live?.[mappedAddress];
    let why: string | undefined;
    if (replica.spec.nodeID !== '' && world.downNodes.has(replica.spec.nodeID))
      why = `node ${replica.spec.nodeID} is down`;
    else if (liveMode === 'ERR' && !(await beingAdded(context, engine, mappedAddress ?? '')))
      why = 'the engine set it ERR';
    else if (replica.status?.currentState === 'error' && world.readyNodes.has(replica.spec.nodeID))
      why = 'its process is in error';
    else if (mappedAddress !== undefined && runningAddress !== undefined && runningAddress !== mappedAddress)
      why = `its process restarted at ${runningAddress} and missed writes`;
    if (why !== undefined) {
      const now = nowTimestamp();
      await context.store.update({ ...replica, spec: { ...replica.spec, failedAt: now, lastFailedAt: now } });
      await context.event(
        volume,
        'Warning',
        'ReplicaFailed',
        `replica ${replica.metadata.name} failed: ${why}`,
        COMPONENT,
      );
      failedNames.push(replica.metadata.name);
      changed = true;
    } else if (
      liveMode === 'RW' &&
      (replica.spec.healthyAt === undefined || replica.spec.rebuildRetryCount > 0)
    ) {
      const now = nowTimestamp();
      const healthyAt = replica.spec.healthyAt ?? now;
      await context.store.update({
        ...replica,
        spec: { ...replica.spec, healthyAt, lastHealthyAt: now, rebuildRetryCount: 0 },
      });
      changed = true;
    }
  }
  // Level-triggered: every replica in the engine's map that is failed, being deleted or gone
  // leaves it (also one failed by an earlier pass whose map update did not land).
  const usableNames = new Set(
    world.replicas
      .filter((replica) => isUsable(replica) && !failedNames.includes(replica.metadata.name))
      .map((replica) => replica.metadata.name),
  );
  const leaving = Object.keys(engine?.spec.replicaAddressMap ?? {}).filter((name) => !usableNames.has(name));
  if (leaving.length > 0 && engine !== undefined) {
    const replicaAddressMap = { ...engine.spec.replicaAddressMap };
    for (const name of leaving) delete replicaAddressMap[name];
    await context.store.update({ ...engine, spec: { ...engine.spec, replicaAddressMap } });
  }
  return changed;
}

/** Deletes stale and surplus replicas, reuses or schedules missing ones. */
export async function balanceReplicas(
  context: ControllerContext,
  world: VolumeWorld,
): Promise<ReplicaPassResult> {
  const { volume, settings, nowMs } = world;
  const living = world.replicas.filter((replica) => replica.metadata.deletionTimestamp === undefined);
  for (const replica of staleReplicas(living, volume.spec.staleReplicaTimeout, nowMs)) {
    await context.store.delete({
      kind: 'Replica',
      namespace: context.namespace,
      name: replica.metadata.name,
    });
    await context.event(
      volume,
      'Normal',
      'StaleReplicaDeleted',
      `replica ${replica.metadata.name} failed more than ${volume.spec.staleReplicaTimeout} minutes ago`,
      COMPONENT,
    );
    return { changed: true };
  }
  const nodesByName = new Map(world.nodes.map((node) => [node.metadata.name, node]));
  // Mirror the node's / disk's eviction request into the replicas (the API shows it).
  for (const replica of living) {
    const fromPlacement = placementEvicting(replica, nodesByName);
    const marked = replica.metadata.annotations?.[EVICTION_MARK_ANNOTATION] !== undefined;
    if (fromPlacement && !replica.spec.evictionRequested) {
      await context.store.update({
        ...replica,
        metadata: {
          ...replica.metadata,
          annotations: { ...replica.metadata.annotations, [EVICTION_MARK_ANNOTATION]: 'true' },
        },
        spec: { ...replica.spec, evictionRequested: true },
      });
      return { changed: true };
    }
    if (!fromPlacement && marked) {
      const annotations = { ...replica.metadata.annotations };
      delete annotations[EVICTION_MARK_ANNOTATION];
      await context.store.update({
        ...replica,
        metadata: { ...replica.metadata, annotations },
        spec: { ...replica.spec, evictionRequested: false },
      });
      return { changed: true };
    }
  }
  const evicting = (replica: Replica) => isEvicting(replica, nodesByName);
  const usable = living.filter(isUsable);
  const engineNodeID = world.engine?.spec.desireState === 'running' ? world.engine.spec.nodeID : '';
  const input = {
    volume,
    volumeReplicas: living,
    allReplicas: world.allReplicas,
    nodes: world.nodes,
    settings,
  };
  const wantsLocal = engineNodeID !== '' && localityNeedsReplicaOn({ ...input, engineNodeID });
  const wanted = volume.spec.numberOfReplicas + (wantsLocal ? 1 : 0);
  // Whole: RW in the running engine; holding the data when detached. A volume that never
  // held data (detached, no replica ever healthy) has nothing to lose.
  const live = liveEngineModes(context, world.engine);
  const addresses = world.engine?.spec.replicaAddressMap ?? {};
  const fresh = !living.some((replica) => replica.spec.healthyAt !== undefined) && engineNodeID === '';
  const whole = (replica: Replica) =>
    fresh ||
    (live !== undefined
      ? live[addresses[replica.metadata.name] ?? ''] === 'RW'
      : engineNodeID === '' && replica.spec.healthyAt !== undefined);
  const eviction = evictionPlan(usable, volume.spec.numberOfReplicas, evicting, whole);
  if (eviction.deletable !== undefined) {
    const evicted = eviction.deletable;
    await context.store.delete({
      kind: 'Replica',
      namespace: context.namespace,
      name: evicted.metadata.name,
    });
    await context.event(
      volume,
      'Normal',
      'ReplicaEvicted',
      `replica ${evicted.metadata.name} evicted from node ${evicted.spec.nodeID}: ${volume.spec.numberOfReplicas} whole replica(s) stay`,
      COMPONENT,
    );
    return { changed: true };
  }
  // While replicas are being evicted, only the eviction above removes replicas.
  if (usable.length > wanted && !wantsLocal && eviction.evicting.length === 0) {
    const modes = world.engine?.status?.replicaModeMap;
    // Remove only when every usable replica is whole (RW in the running engine; holding
    // the data when detached), so that the ones left hold the data: never during a rebuild.
    if (usable.every(whole)) {
      const victims = selectReplicasToRemove({
        ...input,
        volumeReplicas: usable,
        count: usable.length - volume.spec.numberOfReplicas,
        engineNodeID,
        replicaModes: modes,
      });
      for (const victim of victims) {
        await context.store.delete({
          kind: 'Replica',
          namespace: context.namespace,
          name: victim.metadata.name,
        });
        await context.event(
          volume,
          'Normal',
          'ReplicaRemoved',
          `replica ${victim.metadata.name} on node ${victim.spec.nodeID} removed: the volume has ${usable.length} of ${volume.spec.numberOfReplicas}`,
          COMPONENT,
        );
      }
      if (victims.length > 0) return { changed: true };
    }
  }
  // Locality: a failed replica on the engine's node is brought back (then the surplus goes).
  if (engineNodeID !== '' && volume.spec.dataLocality !== 'disabled' && usable.length > 0) {
    const onEngineNode = usable.some((replica) => replica.spec.nodeID === engineNodeID);
    const local = onEngineNode
      ? undefined
      : reusableFailedReplica(
          living.filter((replica) => replica.spec.nodeID === engineNodeID),
          new Set(world.runningReplicas.keys()),
          nowMs,
        );
    if (local !== undefined) {
      await reuse(context, volume, local);
      return { changed: true };
    }
  }
  if (usable.length >= wanted && !eviction.needsReplacement) {
    return {
      changed: false,
      scheduling: {
        status: 'True',
        reason: 'ReplicasScheduled',
        message: `${usable.length} replica(s) scheduled`,
      },
    };
  }
  const everUsed = living.some((replica) => replica.spec.healthyAt !== undefined);
  if (usable.length === 0 && everUsed) {
    // Nothing to rebuild from: only a salvage brings the volume back (volume-salvage.ts).
    return {
      changed: false,
      scheduling: {
        status: 'True',
        reason: 'WaitingForSalvage',
        message: 'every replica has failed; a replica can be rebuilt only from a salvaged one',
      },
    };
  }
  // Replenish: a failed replica whose node is back comes first.
  const reusable = reusableFailedReplica(
    living.filter((replica) => !evicting(replica)),
    new Set(world.runningReplicas.keys()),
    nowMs,
  );
  if (reusable !== undefined && !wantsLocal) {
    await reuse(context, volume, reusable);
    return { changed: true };
  }
  const waitLeftMs =
    everUsed && !wantsLocal
      ? replenishmentWaitLeftMs(living, settings['replica-replenishment-wait-interval'], nowMs)
      : 0;
  if (waitLeftMs > 0) {
    return {
      changed: false,
      requeueAfterMs: waitLeftMs + 50,
      scheduling: {
        status: 'True',
        reason: 'WaitingForFailedReplica',
        message: `a new replica is built if no failed replica is back within ${Math.ceil(waitLeftMs / 1000)} s`,
      },
    };
  }
  const hardNodeAffinity = wantsLocal ? engineNodeID : undefined;
  const result = scheduleReplica({
    ...input,
    hardNodeAffinity,
    engineNodeID: engineNodeID || world.desiredNodeID || undefined,
  });
  if (!result.scheduled) {
    if (eviction.needsReplacement) {
      await context.event(
        volume,
        'Warning',
        'EvictionBlocked',
        `replica(s) ${eviction.evicting.map((replica) => replica.metadata.name).join(', ')} kept: no replacement can be scheduled: ${result.reason}: ${result.message}`,
        COMPONENT,
        { throttleMs: 30_000 },
      );
    }
    return {
      changed: false,
      requeueAfterMs: 10_000,
      scheduling: { status: 'False', reason: result.reason, message: result.message },
    };
  }
  const name = freeReplicaName(volume, world.allReplicas);
  const created = await context.store.create({
    kind: 'Replica',
    metadata: {
      name,
      namespace: context.namespace,
      labels: { [VOLUME_LABEL]: volume.metadata.name, [NODE_LABEL]: result.nodeID },
      ownerReferences: [ownerReferenceTo(volume)],
    },
    spec: {
      volumeName: volume.metadata.name,
      volumeSize: world.engine?.status?.currentSize ?? volume.spec.size,
      nodeID: result.nodeID,
      diskID: result.diskID,
      diskPath: result.diskPath,
      dataDirectoryName: `${name}-${shortHash(`${name}/${Date.now()}/${Math.random()}`)}`,
      engineName: names.engine(volume.metadata.name),
      desireState: engineNodeID !== '' ? 'running' : 'stopped',
      ...(hardNodeAffinity === undefined ? {} : { hardNodeAffinity }),
    },
  });
  await context.event(
    volume,
    'Normal',
    'ReplicaScheduled',
    `replica ${created.metadata.name} scheduled on node ${result.nodeID} disk ${result.diskName}`,
    COMPONENT,
  );
  return {
    changed: true,
    scheduling: {
      status: 'True',
      reason: 'ReplicasScheduled',
      message: `replica ${name} scheduled on ${result.nodeID}`,
    },
  };
}

/**
 * Clears a failed replica's failure and starts it: the engine re-syncs what changed. It no
 * longer holds the volume's data until the engine reports it RW again, so it loses
 * `healthyAt`: an engine (re)started before that starts without it (engineStartReplicas) and
 * adds it by rebuild, so that a stale replica can never be taken for an up-to-date one when
 * the up-to-date replica is slow to answer at the engine's start.
 */
async function reuse(context: ControllerContext, volume: Volume, replica: Replica): Promise<void> {
  const spec = {
    ...replica.spec,
    rebuildRetryCount: replica.spec.rebuildRetryCount + 1,
    desireState: 'running' as const,
  };
  delete spec.failedAt;
  delete spec.healthyAt;
  await context.store.update({ ...replica, spec });
  await context.event(
    volume,
    'Normal',
    'ReplicaReused',
    `failed replica ${replica.metadata.name} on node ${replica.spec.nodeID} is back; it re-syncs what changed`,
    COMPONENT,
  );
}

/**
 * The first replica name of this volume incarnation not in use: the same every time it is
 * computed, so a reconcile repeated after a crash (or on a stale read) collides with
 * RESOURCE_ALREADY_EXISTS instead of creating a second replica.
 */
function freeReplicaName(volume: Volume, allReplicas: readonly Replica[]): string {
  const taken = new Set(allReplicas.map((replica) => replica.metadata.name));
  for (let index = 0; ; index++) {
    const name = names.replica(volume.metadata.name, volume.metadata.uid, index);
    if (!taken.has(name)) return name;
  }
}

/** Failed replicas (for callers that report them). */
export function failedReplicas(replicas: readonly Replica[]): Replica[] {
  return replicas.filter(isFailed);
}
