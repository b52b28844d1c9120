/**
 * Salvage: bringing a volume back when every replica has failed (robustness faulted).
 *
 * It runs automatically when the auto-salvage setting is true, and on request when the
 * volume's Engine has `spec.salvageRequested: true` (the salvage action; the volume
 * controller clears it and sets the Engine's `status.salvageExecuted`). Steps, one per
 * reconcile, each repeated safely after a crash:
 * 1. the engine is stopped;
 * 2. the failed replicas on ready nodes are started — once one of the replicas that failed
 *    last (within 5 s of the last failure: they saw the newest writes) is on a ready node,
 *    or replica-replenishment-wait-interval after that failure if none comes back;
 * 3. each one's revision counter is read (GetReplicaInfo);
 * 4. the replicas with the highest counter lose their failedAt (they hold the newest data);
 *    the others stay failed and are re-synced from them (reuse) or replaced.
 * The attach logic then starts the engine again where the volume is wanted.
 */
import type { GrpcMessage } from '../dataplane/instance-manager/grpc-client.ts';
import type { ControllerContext } from './context.ts';
import { nowTimestamp } from './context.ts';
import {
  isFailed,
  isUsable,
  type SalvageCandidate,
  salvageMayDecide,
  salvageWaitsFor,
  selectSalvageReplicas,
} from './volume-decisions.ts';
import { COMPONENT, type VolumeWorld } from './volume-replicas.ts';

export interface SalvageOutcome {
  /** The salvage took a step (or waits for one): the caller stops here and comes back. */
  handled: boolean;
  requeueAfterMs?: number;
  /** Salvage is needed but cannot run (why). */
  blocked?: string;
  /** Set when the replicas were chosen (automatic salvage). */
  salvagedAutomatically?: boolean;
}

export async function reconcileSalvage(
  context: ControllerContext,
  world: VolumeWorld,
): Promise<SalvageOutcome> {
  const { engine, volume } = world;
  const living = world.replicas.filter(
    (replica) => replica.metadata.deletionTimestamp === undefined && replica.spec.nodeID !== '',
  );
  const requested = engine?.spec.salvageRequested === true;
  if (living.length === 0 || living.some(isUsable)) {
    if (requested && engine !== undefined) {
      await context.store.update({ ...engine, spec: { ...engine.spec, salvageRequested: false } });
      await context.event(
        volume,
        'Normal',
        'SalvageNotNeeded',
        'salvage requested, but the volume has usable replicas',
        COMPONENT,
      );
      return { handled: true, requeueAfterMs: 0 };
    }
    return { handled: false };
  }
  if (!world.settings['auto-salvage'] && !requested) {
    return {
      handled: false,
      blocked:
        'every replica has failed and auto-salvage is off: request a salvage (Engine spec.salvageRequested)',
    };
  }
  if (engine === undefined) return { handled: true, requeueAfterMs: 200 };
  // 1. The engine stops.
  if (engine.spec.desireState === 'running') {
    await context.store.update({
      ...engine,
      spec: { ...engine.spec, desireState: 'stopped', nodeID: '', replicaAddressMap: {} },
    });
    await context.event(
      volume,
      'Warning',
      'Salvaging',
      'every replica has failed: stopping the engine to salvage the volume',
      COMPONENT,
    );
    return { handled: true, requeueAfterMs: 200 };
  }
  const engineNodeReady =
    engine.status?.currentState === 'stopped' || engine.status?.currentState === undefined;
  if (!engineNodeReady && engine.status?.currentState !== 'unknown')
    return { handled: true, requeueAfterMs: 300 };
  // The replicas that failed last hold the newest data: wait for one of them to be back.
  const failedLast = salvageWaitsFor(
    living,
    world.readyNodes,
    world.settings['replica-replenishment-wait-interval'],
    world.nowMs,
  );
  if (failedLast.length > 0) {
    const names = failedLast
      .map((replica) => `${replica.metadata.name} (node ${replica.spec.nodeID})`)
      .join(', ');
    return {
      handled: false,
      blocked: `salvage waits for ${names}, which failed last and holds the newest data`,
      requeueAfterMs: 1000,
    };
  }
  // 2. The failed replicas on ready nodes run.
  const candidates = living.filter(
    (replica) => isFailed(replica) && world.readyNodes.has(replica.spec.nodeID),
  );
  if (candidates.length === 0) {
    return {
      handled: false,
      blocked: 'every replica has failed and none is on a ready node to salvage from',
    };
  }
  let waiting = false;
  for (const replica of candidates) {
    if (replica.spec.desireState !== 'running') {
      await context.store.update({ ...replica, spec: { ...replica.spec, desireState: 'running' } });
      waiting = true;
    } else if (replica.status?.currentState !== 'running' && replica.status?.currentState !== 'error')
      waiting = true;
  }
  if (waiting) return { handled: true, requeueAfterMs: 300 };
  // 3. Their revision counters.
  const counters: SalvageCandidate[] = [];
  const unanswered: typeof candidates = [];
  for (const replica of candidates) {
    if (replica.status?.currentState !== 'running') continue;
    const monitor = context.monitors.get(replica.spec.nodeID);
    const info: GrpcMessage | undefined = await monitor?.client
      .call('GetReplicaInfo', { name: replica.metadata.name }, { deadlineMs: 10_000 })
      .catch(() => undefined);
    if (info === undefined) unanswered.push(replica);
    else if (!info.rebuilding) {
      counters.push({ name: replica.metadata.name, revisionCounter: Number(info.revision_counter) });
    }
  }
  // A running replica that did not answer may hold the newest data: ask again before choosing.
  if (
    !salvageMayDecide(unanswered, living, world.settings['replica-replenishment-wait-interval'], world.nowMs)
  ) {
    return {
      handled: false,
      blocked: `salvage waits for the revision counter of ${unanswered.map((replica) => replica.metadata.name).join(', ')}`,
      requeueAfterMs: 1000,
    };
  }
  const chosen = new Set(selectSalvageReplicas(counters));
  if (chosen.size === 0)
    return {
      handled: false,
      blocked: 'no failed replica answered with its revision counter',
      requeueAfterMs: 2000,
    };
  // 4. The newest come back.
  const now = nowTimestamp();
  for (const replica of candidates) {
    if (!chosen.has(replica.metadata.name)) continue;
    const spec = { ...replica.spec, healthyAt: replica.spec.healthyAt ?? now, rebuildRetryCount: 0 };
    delete spec.failedAt;
    await context.store.update({ ...replica, spec });
  }
  const best = counters.find((candidate) => chosen.has(candidate.name))?.revisionCounter;
  await context.event(
    volume,
    'Warning',
    requested ? 'Salvaged' : 'AutoSalvaged',
    `salvaged from replica(s) ${[...chosen].join(', ')} at revision ${best}; the others are rebuilt from them`,
    COMPONENT,
  );
  if (requested) {
    const updated = await context.store.update({
      ...engine,
      spec: { ...engine.spec, salvageRequested: false },
    });
    await context.store.updateStatus({ ...updated, status: { ...updated.status, salvageExecuted: true } });
  }
  return { handled: true, requeueAfterMs: 0, salvagedAutomatically: !requested };
}
