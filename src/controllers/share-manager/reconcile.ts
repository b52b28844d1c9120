/**
 * One reconcile of the ShareManager controller (key: volume name; the ShareManager is named
 * after its volume, as Longhorn's). Each pass takes the first step that is due:
 *
 * 1. not wanted (no Volume, Volume deleting, accessMode not rwx, ShareManager deleting) →
 *    (teardown.ts) delete the share manager process wherever it ran, remove the attachment ticket and the
 *    lease, clear the Volume's share status, remove the finalizer (and the ShareManager);
 * 2. no ShareManager → create it (owned by the Volume, finalizer, the allocation of
 *    services.ts in annotations: its loopback service address in embedded mode, its listen
 *    port in Kubernetes mode);
 * 3. no node → choose one (ready, schedulable; where the volume is attached, else where a
 *    replica lives); state starting;
 * 4. the `share-manager` attachment ticket names that node (the volume controller attaches
 *    the engine there); wait until the volume is attached there;
 * 5. start the share manager there (hosting.ts: CreateShareManager on that node's instance
 *    manager, or a Pod on that node in Kubernetes mode; idempotent, starts a stopped or failed
 *    one again); running → the stable address leads there
 *    (Kubernetes: the Service's EndpointSlice), status running, endpoint, Volume
 *    shareEndpoint / shareState; then probe it every poll interval (decisions.ts
 *    `healthDecision`): an unreachable node's share manager is moved once its lease expired —
 *    the lease is broken, the ticket moves to a new node, and the same endpoint is served there
 *    (Event ShareManagerFailover with the measured seconds).
 */
import { isHornbillError } from '../../errors.ts';
import { ownerReferenceTo, type ShareManager, type Volume } from '../../resources/index.ts';
import { getOrUndefined } from '../context.ts';
import type { ReconcileResult } from '../work-queue.ts';
import { chooseShareManagerNode, healthDecision, type NodeCandidate } from './decisions.ts';
import {
  cleanPreviousNodes,
  ensureTicket,
  nodeCandidates,
  nodeReadyOf,
  previousNodes,
  replicaNodes,
} from './placement.ts';
import { writeStatus, writeVolumeShareStatus } from './status.ts';
import { tearDown } from './teardown.ts';
import {
  FAILOVER_FROM_ANNOTATION,
  FAILOVER_STARTED_ANNOTATION,
  LAST_FAILOVER_SECONDS_ANNOTATION,
  PREVIOUS_NODES_ANNOTATION,
  SHARE_MANAGER_FINALIZER,
  type ShareManagerWorld,
} from './world.ts';

export async function reconcileShareManager(
  world: ShareManagerWorld,
  volumeName: string,
): Promise<ReconcileResult> {
  const { store, namespace } = world;
  const volume = await getOrUndefined(store, 'Volume', namespace, volumeName);
  const shareManager = await getOrUndefined(store, 'ShareManager', namespace, volumeName);
  const wanted =
    volume !== undefined &&
    volume.metadata.deletionTimestamp === undefined &&
    volume.spec.accessMode === 'rwx';
  if (!wanted || shareManager?.metadata.deletionTimestamp !== undefined) {
    if (shareManager !== undefined) return tearDown(world, shareManager, volume);
    if (volume !== undefined && volume.metadata.deletionTimestamp === undefined)
      await writeVolumeShareStatus(world, volume, undefined);
    return {};
  }
  if (shareManager === undefined) {
    await createShareManager(world, volume);
    return { requeueAfterMs: 0 };
  }
  return drive(world, shareManager, volume);
}

async function createShareManager(world: ShareManagerWorld, volume: Volume): Promise<void> {
  const { annotations, description } = await world.services.allocate(volume.metadata.name);
  const created = await world.store.create({
    apiVersion: volume.apiVersion,
    kind: 'ShareManager',
    metadata: {
      name: volume.metadata.name,
      namespace: world.namespace,
      labels: { 'hornbill.io/volume': volume.metadata.name },
      annotations,
      finalizers: [SHARE_MANAGER_FINALIZER],
      ownerReferences: [ownerReferenceTo(volume)],
    },
    spec: { volumeName: volume.metadata.name },
  });
  await world.event(
    created,
    'Normal',
    'Created',
    `share manager for rwx volume ${volume.metadata.name} ${description}`,
  );
}

async function drive(
  world: ShareManagerWorld,
  shareManager: ShareManager,
  volume: Volume,
): Promise<ReconcileResult> {
  const name = volume.metadata.name;
  if (!world.services.allocated(shareManager)) {
    // Made by another mode or an older version: give it this mode's allocation first.
    const { annotations } = await world.services.allocate(name);
    const merged = { ...shareManager.metadata.annotations, ...annotations };
    await world.store.update({
      ...shareManager,
      metadata: { ...shareManager.metadata, annotations: merged },
    });
    return { requeueAfterMs: 0 };
  }
  const { nodes, candidates } = await nodeCandidates(world);
  const current = shareManager.status?.nodeID ?? '';
  if (current === '') {
    const chosen = chooseShareManagerNode({
      nodes: candidates,
      replicaNodes: await replicaNodes(world, name),
      attachedNode: volume.status?.state === 'attached' ? volume.status.currentNodeID : undefined,
    });
    if (chosen === undefined) {
      await writeStatus(
        world,
        shareManager,
        volume,
        { state: 'error', nodeID: '' },
        'no ready, schedulable node can run the share manager',
      );
      return { requeueAfterMs: 2_000 };
    }
    await writeStatus(world, shareManager, volume, { state: 'starting', nodeID: chosen });
    await world.event(shareManager, 'Normal', 'Scheduled', `share manager goes to node ${chosen}`);
    return { requeueAfterMs: 0 };
  }
  await ensureTicket(world, name, current);
  // A Pod on a node it left is deleted at once (Kubernetes), so this may update the ShareManager.
  shareManager = await cleanPreviousNodes(world, shareManager);

  const probe = await world.hosting.probe(name, current);
  const decision = healthDecision({
    instanceManagerReachable: probe.reachable,
    nodeReady: nodeReadyOf(nodes, current),
    instanceState: probe.instance?.state,
    // Observed on every pass, so that its expiry is counted from its last renewal seen.
    lease: await world.leaseState(name),
  });
  if (decision.action === 'move')
    return failOver(world, shareManager, volume, candidates, current, decision.reason);
  if (decision.action === 'wait-for-lease') {
    // It may still serve (a slow or partitioned node): state and endpoint stay, Ready is Unknown.
    const state = shareManager.status?.state === 'running' ? 'running' : 'starting';
    await writeStatus(
      world,
      shareManager,
      volume,
      { state, nodeID: current, readyUnknown: true },
      decision.reason,
    );
    return { requeueAfterMs: Math.min(decision.retryAfterMs, world.pollIntervalMs) };
  }
  if (probe.reachable && probe.instance?.state === 'running') {
    world.markHealthy(name);
    return running(world, shareManager, volume, probe.instance);
  }
  // Start in place, once the volume is attached on this node.
  const attached = volume.status?.state === 'attached' && volume.status.currentNodeID === current;
  if (!attached) {
    await writeStatus(
      world,
      shareManager,
      volume,
      { state: 'starting', nodeID: current },
      `waiting for volume ${name} to attach on node ${current}`,
    );
    return { requeueAfterMs: 300 };
  }
  const canAttachDevices = probe.canAttachDevices && (volume.status?.endpoint ?? '').startsWith('iscsi://');
  try {
    const instance = await world.hosting.start(
      current,
      world.createRequest(volume, shareManager, canAttachDevices ? volume.status!.endpoint! : ''),
      shareManager,
    );
    if (instance.state !== 'running') {
      // A Pod just created (or replacing one elsewhere): running once the kubelet reports it Ready.
      await writeStatus(
        world,
        shareManager,
        volume,
        { state: 'starting', nodeID: current },
        `the share manager on node ${current} is ${instance.state}`,
      );
      return { requeueAfterMs: Math.min(1_000, world.pollIntervalMs) };
    }
    world.markHealthy(name);
    return running(world, shareManager, volume, instance);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    await writeStatus(
      world,
      shareManager,
      volume,
      { state: 'error', nodeID: current },
      `starting on node ${current} failed: ${message}`,
    );
    await world.event(shareManager, 'Warning', 'StartFailed', `node ${current}: ${message}`, {
      throttleMs: 30_000,
    });
    if (isHornbillError(error, 'INSTANCE_FAILED') || isHornbillError(error, 'INSTANCE_MANAGER_UNREACHABLE'))
      return { requeueAfterMs: 2_000 };
    throw error;
  }
}

async function running(
  world: ShareManagerWorld,
  shareManager: ShareManager,
  volume: Volume,
  // biome-ignore lint/suspicious/noExplicitAny: a ShareManagerInstance message
  instance: Record<string, any>,
): Promise<ReconcileResult> {
  const startedAt = Number(shareManager.metadata.annotations?.[FAILOVER_STARTED_ANNOTATION] ?? Number.NaN);
  // Embedded: the reported endpoint (the loopback service address); Kubernetes: the Service's
  // EndpointSlice is pointed at this node's address and port, clients keep nfs://<ClusterIP>/<volume>.
  const { endpoint } = await world.services.ensure(shareManager, {
    nodeID: instance.node_name,
    address: instance.address,
    port: instance.port,
    endpoint: instance.endpoint,
  });
  const dataSource =
    instance.source === 'device'
      ? {
          status: 'True' as const,
          reason: 'BlockDevice',
          message: `the volume's block device ${instance.device} is mounted and exported`,
        }
      : {
          status: 'False' as const,
          reason: 'DirectoryExport',
          message: `the export is the plain directory ${instance.export_path} on node ${instance.node_name}, not the replicated volume: this host cannot attach block devices (no kernel iSCSI initiator, or the instance manager runs without --attach-devices); files written before a failover stay on the old node`,
        };
  await writeStatus(
    world,
    shareManager,
    volume,
    { state: 'running', nodeID: instance.node_name, endpoint },
    undefined,
    dataSource,
  );
  if (Number.isFinite(startedAt)) {
    const seconds = (Date.now() - startedAt) / 1000;
    const from = shareManager.metadata.annotations?.[FAILOVER_FROM_ANNOTATION] ?? '?';
    const fresh = await world.store.get({
      kind: 'ShareManager',
      namespace: world.namespace,
      name: shareManager.metadata.name,
    });
    const annotations: Record<string, string> = {
      ...fresh.metadata.annotations,
      [LAST_FAILOVER_SECONDS_ANNOTATION]: seconds.toFixed(1),
    };
    delete annotations[FAILOVER_STARTED_ANNOTATION];
    delete annotations[FAILOVER_FROM_ANNOTATION];
    await world.store.update({ ...fresh, metadata: { ...fresh.metadata, annotations } });
    await world.event(
      shareManager,
      'Normal',
      'ShareManagerFailover',
      `moved from node ${from} to node ${instance.node_name} (${instance.address}:${instance.port}, clients mount ${endpoint}) in ${seconds.toFixed(1)} s (last seen healthy → serving again)`,
    );
  }
  return { requeueAfterMs: world.pollIntervalMs };
}

async function failOver(
  world: ShareManagerWorld,
  shareManager: ShareManager,
  volume: Volume,
  candidates: NodeCandidate[],
  from: string,
  reason: string,
): Promise<ReconcileResult> {
  const name = volume.metadata.name;
  if (!(await world.breakLease(name))) return { requeueAfterMs: 200 }; // the holder renewed meanwhile
  const previous = previousNodes(shareManager);
  const chosen = chooseShareManagerNode({
    nodes: candidates,
    replicaNodes: await replicaNodes(world, name),
    exclude: new Set([from]),
  });
  if (chosen === undefined) {
    await writeStatus(
      world,
      shareManager,
      volume,
      { state: 'error', nodeID: from },
      `${reason}; no other ready, schedulable node`,
    );
    return { requeueAfterMs: 2_000 };
  }
  const annotations: Record<string, string> = {
    ...shareManager.metadata.annotations,
    [PREVIOUS_NODES_ANNOTATION]: [...new Set([...previous, from])]
      .filter((node) => node !== chosen)
      .join(','),
  };
  if (annotations[FAILOVER_STARTED_ANNOTATION] === undefined) {
    annotations[FAILOVER_STARTED_ANNOTATION] = String(world.lastHealthyMs(name) ?? Date.now());
    annotations[FAILOVER_FROM_ANNOTATION] = from;
  }
  const updated = await world.store.update({
    ...shareManager,
    metadata: { ...shareManager.metadata, annotations },
  });
  await writeStatus(
    world,
    updated,
    volume,
    { state: 'starting', nodeID: chosen },
    `moving from node ${from}: ${reason}`,
  );
  await world.event(
    shareManager,
    'Warning',
    'ShareManagerMoving',
    `moving from node ${from} to node ${chosen}: ${reason}`,
  );
  return { requeueAfterMs: 0 };
}
