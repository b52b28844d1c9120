/**
 * The attach half of the volume controller: moves the volume's engine and replica
 * processes toward where the volume should be attached (desiredAttachment: the winning
 * attachment ticket, else spec.nodeID).
 *
 * detached → attaching: the replicas that hold the data are started (desireState running)
 *   on their nodes; once they run, the Engine gets nodeID, desireState running and their
 *   addresses; the engine controller starts it there.
 * attaching → attached: the engine runs (with its frontend endpoint unless disabled).
 * attached: replicas that are usable and running but not in the engine are added to its
 *   map (one at a time per volume, within concurrent-replica-rebuild-per-node-limit): the
 *   engine controller rebuilds them. A replica that moved to a new port is re-added.
 * attached → detaching (no node wanted, another node wanted, another frontend wanted, or the
 *   engine's node down — for rwx also: not answering after its share manager's lease expired
 *   there, fencedByShareManager): the engine stops; then the replicas stop → detached.
 */
import { parseByteQuantity, type VolumeAttachment } from '../resources/index.ts';
import { type ControllerContext, getOrUndefined } from './context.ts';
import { PREVIOUS_NODES_ANNOTATION } from './share-manager/world.ts';
import {
  desiredAttachment,
  engineStartReplicas,
  isUsable,
  MAXIMUM_REBUILD_RETRIES,
  rebuildsOnNode,
} from './volume-decisions.ts';
import { COMPONENT, liveEngineModes, type VolumeWorld } from './volume-replicas.ts';

export type AttachPhase = 'detached' | 'attaching' | 'attached' | 'detaching';

export interface AttachOutcome {
  phase: AttachPhase;
  /** Where the engine runs when attached. */
  nodeID?: string;
  endpoint?: string;
  /** Why the volume cannot attach now (a Warning event and the Attached condition say it). */
  blocked?: string;
  requeueAfterMs?: number;
}

export async function reconcileAttachment(
  context: ControllerContext,
  world: VolumeWorld,
  attachment: VolumeAttachment | undefined,
): Promise<AttachOutcome> {
  const { volume } = world;
  const engine = world.engine;
  if (engine === undefined) return { phase: 'detached', requeueAfterMs: 200 };
  const desired = desiredAttachment(volume, attachment);
  const engineWanted = engine.spec.desireState === 'running' && engine.spec.nodeID !== '';
  const engineNodeDown =
    engineWanted &&
    (world.downNodes.has(engine.spec.nodeID) ||
      (await fencedByShareManager(context, world, engine.spec.nodeID)));
  const living = world.replicas.filter((replica) => replica.metadata.deletionTimestamp === undefined);

  // Stop the engine when it should not run where it runs, or not with this frontend.
  const frontendChange =
    engineWanted && desired.nodeID !== '' && desired.disableFrontend !== engine.spec.disableFrontend;
  if (engineWanted && (desired.nodeID !== engine.spec.nodeID || engineNodeDown || frontendChange)) {
    await context.store.update({
      ...engine,
      spec: { ...engine.spec, desireState: 'stopped', nodeID: '', replicaAddressMap: {} },
    });
    const why = engineNodeDown
      ? world.downNodes.has(engine.spec.nodeID)
        ? `node ${engine.spec.nodeID} is down`
        : `node ${engine.spec.nodeID} does not answer and the volume's share manager there lost its lease (fast failover)`
      : desired.nodeID === ''
        ? 'detach requested'
        : desired.nodeID === engine.spec.nodeID
          ? `the frontend is turned ${desired.disableFrontend ? 'off' : 'on'}`
          : `moving to node ${desired.nodeID}`;
    await context.event(
      volume,
      engineNodeDown ? 'Warning' : 'Normal',
      'Detaching',
      `detaching from node ${engine.spec.nodeID}: ${why}`,
      COMPONENT,
    );
    return { phase: 'detaching', requeueAfterMs: 200 };
  }
  const engineState = engine.status?.currentState ?? 'stopped';
  if (!engineWanted && engineState !== 'stopped') {
    // The engine controller is stopping it; an engine on a node that is down counts as stopped.
    const nodeOfEngine = engine.status?.instanceManagerName;
    const stuckOnDownNode =
      [...world.downNodes].some((node) => nodeOfEngine === `instance-manager-${node}`) ||
      (nodeOfEngine !== undefined &&
        (await fencedByShareManager(context, world, nodeOfEngine.replace(/^instance-manager-/, ''))));
    if (!stuckOnDownNode) return { phase: 'detaching', requeueAfterMs: 500 };
  }

  if (desired.nodeID === '' || (!engineWanted && world.downNodes.has(desired.nodeID))) {
    // Detached: stop the replica processes.
    let stopping = false;
    for (const replica of living) {
      if (replica.spec.desireState === 'running') {
        await context.store.update({ ...replica, spec: { ...replica.spec, desireState: 'stopped' } });
        stopping = true;
      } else if (replica.status?.currentState === 'running' && world.readyNodes.has(replica.spec.nodeID))
        stopping = true;
    }
    const blocked = desired.nodeID === '' ? undefined : `node ${desired.nodeID} is down`;
    return stopping
      ? { phase: 'detaching', requeueAfterMs: 500, blocked }
      : { phase: 'detached', blocked, requeueAfterMs: blocked ? 5000 : undefined };
  }

  if (!engineWanted) return startEngine(context, world, desired);
  return keepAttached(context, world);
}

async function startEngine(
  context: ControllerContext,
  world: VolumeWorld,
  desired: { nodeID: string; disableFrontend: boolean },
): Promise<AttachOutcome> {
  const { volume } = world;
  const engine = world.engine!;
  if (!world.readyNodes.has(desired.nodeID)) {
    return { phase: 'detached', blocked: `node ${desired.nodeID} is not ready`, requeueAfterMs: 1000 };
  }
  const living = world.replicas.filter((replica) => replica.metadata.deletionTimestamp === undefined);
  const start = engineStartReplicas(living, world.readyNodes);
  if (start.length === 0) {
    return { phase: 'detached', blocked: 'no usable replica holds the data', requeueAfterMs: 2000 };
  }
  // Start every usable replica on a ready node; the engine starts with those holding data.
  let waiting = false;
  for (const replica of living) {
    if (!isUsable(replica) || !world.readyNodes.has(replica.spec.nodeID)) continue;
    if (replica.spec.desireState !== 'running') {
      await context.store.update({ ...replica, spec: { ...replica.spec, desireState: 'running' } });
      waiting = true;
    }
  }
  const replicaAddressMap: Record<string, string> = {};
  for (const replica of start) {
    const address = world.runningReplicas.get(replica.metadata.name);
    if (address === undefined) {
      if (replica.status?.currentState !== 'error') waiting = true;
      continue;
    }
    replicaAddressMap[replica.metadata.name] = address;
  }
  if (waiting) return { phase: 'attaching', requeueAfterMs: 300 };
  if (Object.keys(replicaAddressMap).length === 0) {
    return {
      phase: 'detached',
      blocked: 'no replica holding the data could be started',
      requeueAfterMs: 2000,
    };
  }
  const sizes = start
    .map((replica) => parseByteQuantity(replica.spec.volumeSize) ?? 0)
    .filter((size) => size > 0);
  await context.store.update({
    ...engine,
    spec: {
      ...engine.spec,
      nodeID: desired.nodeID,
      desireState: 'running',
      frontend: volume.spec.frontend,
      disableFrontend: desired.disableFrontend,
      replicaAddressMap,
      volumeSize: sizes.length > 0 ? String(Math.min(...sizes)) : volume.spec.size,
    },
  });
  await context.event(
    volume,
    'Normal',
    'Attaching',
    `attaching to node ${desired.nodeID} with replicas ${Object.keys(replicaAddressMap).join(', ')}`,
    COMPONENT,
  );
  return { phase: 'attaching', requeueAfterMs: 300 };
}

async function keepAttached(context: ControllerContext, world: VolumeWorld): Promise<AttachOutcome> {
  const { volume } = world;
  const engine = world.engine!;
  const living = world.replicas.filter((replica) => replica.metadata.deletionTimestamp === undefined);
  // Replicas on ready nodes run: the usable ones, and the failed ones so they can be reused.
  for (const replica of living) {
    const reusable = isUsable(replica) || replica.spec.rebuildRetryCount < MAXIMUM_REBUILD_RETRIES;
    if (reusable && replica.spec.desireState !== 'running' && world.readyNodes.has(replica.spec.nodeID)) {
      await context.store.update({ ...replica, spec: { ...replica.spec, desireState: 'running' } });
    }
  }
  const usableInEngine = living.filter(
    (replica) => isUsable(replica) && replica.metadata.name in engine.spec.replicaAddressMap,
  );
  if (usableInEngine.length === 0) {
    // Every replica the engine was started with is gone or failed: start it again.
    await context.store.update({
      ...engine,
      spec: { ...engine.spec, desireState: 'stopped', nodeID: '', replicaAddressMap: {} },
    });
    await context.event(
      volume,
      'Warning',
      'Restarting',
      'no replica the engine runs with is usable; starting the engine again',
      COMPONENT,
    );
    return { phase: 'attaching', requeueAfterMs: 200 };
  }
  const live = liveEngineModes(context, engine);
  const attachedBefore =
    volume.status?.state === 'attached' && volume.status.currentNodeID === engine.spec.nodeID;
  if (live === undefined && attachedBefore && context.monitors.get(engine.spec.nodeID)?.lastContactMs === 0) {
    // This manager has not reached the engine's node yet (it just started): still attached as far as is known.
    return {
      phase: 'attached',
      nodeID: engine.spec.nodeID,
      endpoint: volume.status?.endpoint,
      requeueAfterMs: 300,
    };
  }
  if (engine.status?.currentState !== 'running' || live === undefined) {
    return { phase: 'attaching', requeueAfterMs: 300 };
  }
  if (!engine.spec.disableFrontend && !engine.status.endpoint)
    return { phase: 'attaching', requeueAfterMs: 300 };
  const attached = {
    phase: 'attached' as const,
    nodeID: engine.spec.nodeID,
    endpoint: engine.status.endpoint,
  };
  // Add usable running replicas the engine lacks: one pending (not yet RW) at a time per volume.
  const map = engine.spec.replicaAddressMap;
  const pending = Object.values(map).some((address) => live[address] !== 'RW');
  if (pending) return { ...attached, requeueAfterMs: 500 };
  let requeueAfterMs = 2000;
  const engines = (await context.store.list('Engine', { namespace: context.namespace })).items;
  const byName = new Map(world.allReplicas.map((replica) => [replica.metadata.name, replica]));
  for (const replica of living) {
    if (!isUsable(replica) || map[replica.metadata.name] !== undefined) continue;
    const address = world.runningReplicas.get(replica.metadata.name);
    // Not running yet, or the engine still holds that address (it leaves first).
    if (address === undefined || live[address] !== undefined) continue;
    const limit = world.settings['concurrent-replica-rebuild-per-node-limit'];
    if (rebuildsOnNode(replica.spec.nodeID, byName, engines) >= limit) {
      requeueAfterMs = 1000;
      continue;
    }
    await context.store.update({
      ...engine,
      spec: { ...engine.spec, replicaAddressMap: { ...map, [replica.metadata.name]: address } },
    });
    await context.event(
      volume,
      'Normal',
      'RebuildRequested',
      `replica ${replica.metadata.name} on node ${replica.spec.nodeID} joins the engine and is rebuilt`,
      COMPONENT,
    );
    return { ...attached, requeueAfterMs: 300 };
  }
  return { ...attached, requeueAfterMs };
}

/**
 * rwx fast failover (Longhorn's rwx-volume-fast-failover): the volume's share manager lost its
 * lease on `nodeID` and was moved away (the ShareManager's previous-nodes annotation names the
 * node; a move happens only after the lease expired and was broken), and that node does not
 * answer. The share manager there has fenced itself — it stops serving when it cannot renew —
 * and it was the engine's only client, so the engine there counts as stopped without waiting
 * for node-down-timeout.
 */
async function fencedByShareManager(
  context: ControllerContext,
  world: VolumeWorld,
  nodeID: string,
): Promise<boolean> {
  if (world.volume.spec.accessMode !== 'rwx' || nodeID === '' || world.readyNodes.has(nodeID)) return false;
  const shareManager = await getOrUndefined(
    context.store,
    'ShareManager',
    context.namespace,
    world.volume.metadata.name,
  );
  const previous = shareManager?.metadata.annotations?.[PREVIOUS_NODES_ANNOTATION] ?? '';
  return previous.split(',').includes(nodeID);
}
