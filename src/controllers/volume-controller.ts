/**
 * The volume controller (key: volume name). Each reconcile reads the volume, its Engine,
 * its Replicas, the Nodes, the settings and its VolumeAttachment afresh, then takes the
 * first step that is due, in this order:
 *
 * 1. deletion (finalizer `hornbill.io/volume`): the Engine is deleted (its process stops),
 *    then the Replicas (their processes stop and their folders are removed), then the
 *    VolumeAttachment; then the finalizer goes and the volume with it;
 * 2. the finalizer and the Engine `<volume>-e-0` exist;
 * 3. replica failures and health are marked (volume-replicas.ts);
 * 4. salvage when every replica has failed (volume-salvage.ts);
 * 5. replicas are deleted, reused or scheduled to match numberOfReplicas and data locality,
 *    and evicted replicas are replaced, then deleted;
 * 6. a volume with spec.dataSource is filled from its source first (volume-clone.ts);
 * 7. the engine and replicas move toward the desired attachment (volume-attach.ts);
 * 8. expansion: a larger spec.size goes to the running engine (ExpandEngine), then to the
 *    replicas; a detached volume is expanded at its next attach (status.expansionRequired);
 * 9. status: state, robustness, currentNodeID, endpoint, actualSize, lastDegradedAt,
 *    lastAutoSalvagedAt, condition Scheduled; ticket statuses of the VolumeAttachment.
 * Every change of state or robustness is an Event.
 */
import {
  type Engine,
  ownerReferenceTo,
  parseByteQuantity,
  type Volume,
  type VolumeAttachment,
  type VolumeRobustness,
  type VolumeStatus,
} from '../resources/index.ts';
import {
  type ControllerContext,
  getOrUndefined,
  names,
  nowTimestamp,
  sameJson,
  VOLUME_FINALIZER,
  VOLUME_LABEL,
  withCondition,
} from './context.ts';
import { nodeReadiness } from './node-controller.ts';
import { type AttachOutcome, reconcileAttachment } from './volume-attach.ts';
import { cloneInProgress, reconcileClone, removeSourceTicket } from './volume-clone.ts';
import { desiredAttachment, robustnessFromModes, robustnessFromReplicas } from './volume-decisions.ts';
import {
  balanceReplicas,
  COMPONENT,
  liveEngineModes,
  markReplicaStates,
  type ReplicaPassResult,
  type VolumeWorld,
} from './volume-replicas.ts';
import { reconcileSalvage } from './volume-salvage.ts';
import type { ReconcileResult } from './work-queue.ts';

const RESYNC_MS = 5000;

export async function reconcileVolume(context: ControllerContext, name: string): Promise<ReconcileResult> {
  const volume = await getOrUndefined(context.store, 'Volume', context.namespace, name);
  if (volume === undefined) return {};
  const world = await readWorld(context, volume);
  const attachment = world.attachment;
  if (volume.metadata.deletionTimestamp !== undefined) return teardown(context, world);
  if (!(volume.metadata.finalizers ?? []).includes(VOLUME_FINALIZER)) {
    await context.store.update({
      ...volume,
      metadata: { ...volume.metadata, finalizers: [...(volume.metadata.finalizers ?? []), VOLUME_FINALIZER] },
    });
    return { requeueAfterMs: 0 };
  }
  if (world.engine === undefined) {
    await createEngine(context, volume);
    return { requeueAfterMs: 0 };
  }
  if (world.attachment === undefined) {
    // The volume's (empty) VolumeAttachment, where CSI, the API and others add tickets.
    await context.store.create({
      kind: 'VolumeAttachment',
      metadata: {
        name: names.volumeAttachment(name),
        namespace: context.namespace,
        labels: { [VOLUME_LABEL]: name },
        ownerReferences: [ownerReferenceTo(volume)],
      },
      spec: { volume: name },
    });
    return { requeueAfterMs: 0 };
  }
  if (await markReplicaStates(context, world)) return { requeueAfterMs: 0 };
  const salvage = await reconcileSalvage(context, world);
  if (salvage.salvagedAutomatically) {
    await context.store.updateStatus({
      ...volume,
      status: { ...volume.status, lastAutoSalvagedAt: nowTimestamp() },
    });
  }
  if (salvage.handled) return { requeueAfterMs: salvage.requeueAfterMs ?? 200 };
  const balance = await balanceReplicas(context, world);
  if (balance.changed) return { requeueAfterMs: 0 };
  const clone = await reconcileClone(context, world);
  if (clone?.requeueAfterMs === 0) return { requeueAfterMs: 0 };
  const attach = await reconcileAttachment(context, world, attachment);
  const expansionRequired = await expand(context, world, attach);
  await writeStatus(
    context,
    world,
    attach,
    balance,
    expansionRequired,
    salvage.blocked ?? attach.blocked ?? clone?.blocked,
  );
  if (attachment !== undefined) await writeTicketStatuses(context, world.volume, attachment, attach);
  const requeues = [
    attach.requeueAfterMs,
    balance.requeueAfterMs,
    salvage.requeueAfterMs,
    clone?.requeueAfterMs,
    RESYNC_MS,
  ].filter((value): value is number => value !== undefined);
  return { requeueAfterMs: Math.min(...requeues) };
}

async function readWorld(context: ControllerContext, volume: Volume): Promise<VolumeWorld> {
  const { namespace } = context;
  const settings = await context.settings();
  const allReplicas = (await context.store.list('Replica', { namespace })).items;
  const nodes = (await context.store.list('Node', { namespace })).items;
  const engine = await getOrUndefined(context.store, 'Engine', namespace, names.engine(volume.metadata.name));
  const attachment = await getOrUndefined(
    context.store,
    'VolumeAttachment',
    namespace,
    names.volumeAttachment(volume.metadata.name),
  );
  const readyNodes = new Set<string>();
  const downNodes = new Set<string>();
  for (const monitor of context.monitors.all()) {
    const readiness = nodeReadiness(monitor, settings);
    if (readiness === 'ready') readyNodes.add(monitor.endpoint.nodeID);
    if (readiness === 'down') downNodes.add(monitor.endpoint.nodeID);
  }
  for (const node of nodes)
    if (context.monitors.get(node.metadata.name) === undefined) downNodes.add(node.metadata.name);
  const replicas = allReplicas.filter((replica) => replica.spec.volumeName === volume.metadata.name);
  const runningReplicas = new Map<string, string>();
  for (const replica of replicas) {
    if (!readyNodes.has(replica.spec.nodeID)) continue;
    const instance = context.monitors.get(replica.spec.nodeID)?.instance(replica.metadata.name);
    if (instance?.state === 'running' && instance.port)
      runningReplicas.set(replica.metadata.name, `${instance.address}:${instance.port}`);
  }
  return {
    volume,
    engine,
    replicas,
    runningReplicas,
    allReplicas,
    nodes,
    readyNodes,
    downNodes,
    settings,
    nowMs: Date.now(),
    attachment,
    desiredNodeID: desiredAttachment(volume, attachment).nodeID,
  };
}

async function createEngine(context: ControllerContext, volume: Volume): Promise<Engine> {
  const engine = await context.store.create({
    kind: 'Engine',
    metadata: {
      name: names.engine(volume.metadata.name),
      namespace: context.namespace,
      labels: { [VOLUME_LABEL]: volume.metadata.name },
      ownerReferences: [ownerReferenceTo(volume)],
    },
    spec: {
      volumeName: volume.metadata.name,
      volumeSize: volume.spec.size,
      frontend: volume.spec.frontend,
      disableFrontend: volume.spec.disableFrontend,
      desireState: 'stopped',
    },
  });
  await context.event(
    volume,
    'Normal',
    'Created',
    `volume of ${volume.spec.size} with ${volume.spec.numberOfReplicas} replica(s) created`,
    COMPONENT,
  );
  return engine;
}

/** Applies a larger spec.size; returns whether an expansion still waits for an attach. */
async function expand(
  context: ControllerContext,
  world: VolumeWorld,
  attach: AttachOutcome,
): Promise<boolean> {
  const { volume, engine } = world;
  const wantedBytes = parseByteQuantity(volume.spec.size) ?? 0;
  if (engine === undefined) return false;
  if (attach.phase !== 'attached') {
    return world.replicas.some((replica) => (parseByteQuantity(replica.spec.volumeSize) ?? 0) < wantedBytes);
  }
  if ((parseByteQuantity(engine.spec.volumeSize) ?? 0) < wantedBytes) {
    await context.store.update({ ...engine, spec: { ...engine.spec, volumeSize: volume.spec.size } });
    await context.event(volume, 'Normal', 'Expanding', `expanding to ${volume.spec.size}`, COMPONENT);
    return false;
  }
  const currentBytes = Number(engine.status?.currentSize ?? 0);
  if (currentBytes < wantedBytes) return false;
  for (const replica of world.replicas) {
    if (
      (parseByteQuantity(replica.spec.volumeSize) ?? 0) >= currentBytes ||
      replica.metadata.deletionTimestamp
    )
      continue;
    if (!(replica.metadata.name in engine.spec.replicaAddressMap)) continue;
    await context.store.update({ ...replica, spec: { ...replica.spec, volumeSize: String(currentBytes) } });
  }
  return false;
}

function robustnessOf(
  context: ControllerContext,
  world: VolumeWorld,
  attach: AttachOutcome,
): VolumeRobustness {
  const { volume, engine } = world;
  if (attach.phase === 'attached' && engine !== undefined) {
    const live = liveEngineModes(context, engine);
    // The engine's node not reached yet (the manager just started): nothing new is known.
    if (live === undefined) return volume.status?.robustness ?? 'unknown';
    const modes: Record<string, 'RW' | 'WO' | 'ERR'> = {};
    for (const [replicaName, address] of Object.entries(engine.spec.replicaAddressMap)) {
      const mode = live[address];
      if (mode === 'RW' || mode === 'WO' || mode === 'ERR') modes[replicaName] = mode;
    }
    return robustnessFromModes(modes, volume.spec.numberOfReplicas);
  }
  return robustnessFromReplicas(world.replicas, volume.spec.numberOfReplicas);
}

async function writeStatus(
  context: ControllerContext,
  world: VolumeWorld,
  attach: AttachOutcome,
  balance: ReplicaPassResult,
  expansionRequired: boolean,
  blocked: string | undefined,
): Promise<void> {
  const { volume } = world;
  const previous = volume.status ?? {};
  const hasReplicas = world.replicas.some((replica) => replica.spec.nodeID !== '');
  const state =
    !hasReplicas && previous.state !== 'attached'
      ? previous.state === undefined || previous.state === 'creating'
        ? 'creating'
        : 'detached'
      : attach.phase;
  const robustness = robustnessOf(context, world, attach);
  const status: VolumeStatus = {
    ...previous,
    state,
    robustness,
    observedGeneration: volume.metadata.generation,
    expansionRequired,
  };
  if (attach.phase === 'attached' && attach.nodeID) status.currentNodeID = attach.nodeID;
  else delete status.currentNodeID;
  if (attach.phase === 'attached' && attach.endpoint) status.endpoint = attach.endpoint;
  else delete status.endpoint;
  status.frontendDisabled = world.engine?.spec.disableFrontend ?? false;
  if (robustness === 'degraded' && previous.robustness !== 'degraded') status.lastDegradedAt = nowTimestamp();
  const actualSize = actualSizeOf(context, world);
  if (actualSize !== undefined) status.actualSize = actualSize;
  if (balance.scheduling !== undefined) {
    status.conditions = withCondition(previous.conditions, {
      type: 'Scheduled',
      ...balance.scheduling,
      observedGeneration: volume.metadata.generation,
    }).conditions;
  }
  if (sameJson(status, volume.status)) {
    if (blocked !== undefined)
      await context.event(volume, 'Warning', 'AttachBlocked', blocked, COMPONENT, { throttleMs: 30_000 });
    return;
  }
  await context.store.updateStatus({ ...volume, status });
  if (previous.state !== status.state) {
    const where =
      status.currentNodeID === undefined
        ? ''
        : ` to node ${status.currentNodeID}${status.endpoint ? ` at ${status.endpoint}` : ''}`;
    await context.event(volume, 'Normal', capitalize(state), `volume ${state}${where}`, COMPONENT);
  }
  if (previous.robustness !== robustness) {
    await context.event(
      volume,
      robustness === 'healthy' || robustness === 'unknown' ? 'Normal' : 'Warning',
      capitalize(robustness),
      `volume is ${robustness}`,
      COMPONENT,
    );
  }
  const previousScheduled = previous.conditions?.find((condition) => condition.type === 'Scheduled');
  if (
    balance.scheduling?.status === 'False' &&
    (previousScheduled?.status !== 'False' || previousScheduled.reason !== balance.scheduling.reason)
  ) {
    await context.event(
      volume,
      'Warning',
      'FailedScheduling',
      `${balance.scheduling.reason}: ${balance.scheduling.message}`,
      COMPONENT,
    );
  }
  if (blocked !== undefined)
    await context.event(volume, 'Warning', 'AttachBlocked', blocked, COMPONENT, { throttleMs: 30_000 });
}

async function writeTicketStatuses(
  context: ControllerContext,
  volume: Volume,
  attachment: VolumeAttachment,
  attach: AttachOutcome,
): Promise<void> {
  const statuses: NonNullable<NonNullable<VolumeAttachment['status']>['attachmentTicketStatuses']> = {};
  // While the volume is filled from its dataSource only the clone's own ticket is served.
  const cloning = cloneInProgress(volume);
  for (const ticket of Object.values(attachment.spec.attachmentTickets)) {
    const waitsForClone = cloning && ticket.type !== 'clone';
    const satisfied = !waitsForClone && attach.phase === 'attached' && attach.nodeID === ticket.nodeID;
    const conditions = withCondition(attachment.status?.attachmentTicketStatuses?.[ticket.id]?.conditions, {
      type: 'Satisfied',
      status: satisfied ? 'True' : 'False',
      reason: satisfied ? 'Attached' : waitsForClone ? 'WaitingForClone' : 'Waiting',
      message: satisfied
        ? `attached on ${ticket.nodeID}`
        : waitsForClone
          ? `the volume is being filled from ${volume.spec.dataSource}`
          : `the volume is ${attach.phase}`,
    }).conditions;
    statuses[ticket.id] = { id: ticket.id, satisfied, conditions, generation: ticket.generation };
  }
  const status = {
    ...attachment.status,
    attachmentTicketStatuses: statuses,
    observedGeneration: attachment.metadata.generation,
  };
  if (sameJson(status, attachment.status)) return;
  await context.store.updateStatus({ ...attachment, status });
}

async function teardown(context: ControllerContext, world: VolumeWorld): Promise<ReconcileResult> {
  const { volume, engine } = world;
  await removeSourceTicket(context, volume);
  if (volume.status?.state !== 'deleting') {
    await context.store.updateStatus({ ...volume, status: { ...volume.status, state: 'deleting' } });
    await context.event(
      volume,
      'Normal',
      'Deleting',
      'deleting the engine, the replicas and their data',
      COMPONENT,
    );
  }
  if (engine !== undefined) {
    if (engine.metadata.deletionTimestamp === undefined) {
      await context.store.delete({
        kind: 'Engine',
        namespace: context.namespace,
        name: engine.metadata.name,
      });
    }
    return { requeueAfterMs: 300 };
  }
  if (world.replicas.length > 0) {
    for (const replica of world.replicas) {
      if (replica.metadata.deletionTimestamp !== undefined) continue;
      await context.store.delete({
        kind: 'Replica',
        namespace: context.namespace,
        name: replica.metadata.name,
      });
    }
    return { requeueAfterMs: 300 };
  }
  const attachment = await getOrUndefined(
    context.store,
    'VolumeAttachment',
    context.namespace,
    names.volumeAttachment(volume.metadata.name),
  );
  if (
    attachment !== undefined &&
    attachment.spec.volume === volume.metadata.name &&
    attachment.metadata.deletionTimestamp === undefined
  ) {
    await context.store.delete({
      kind: 'VolumeAttachment',
      namespace: context.namespace,
      name: attachment.metadata.name,
    });
  }
  await context.store.update({
    ...volume,
    metadata: {
      ...volume.metadata,
      finalizers: (volume.metadata.finalizers ?? []).filter((finalizer) => finalizer !== VOLUME_FINALIZER),
    },
  });
  await context.event(volume, 'Normal', 'Deleted', 'engine, replicas and data removed', COMPONENT);
  return {};
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Bytes the largest usable replica folder holds, from the instance managers' disk statistics. */
function actualSizeOf(context: ControllerContext, world: VolumeWorld): number | undefined {
  let largest: number | undefined;
  for (const replica of world.replicas) {
    if (replica.spec.failedAt !== undefined) continue;
    const disks = context.monitors.get(replica.spec.nodeID)?.diskStats ?? [];
    for (const disk of disks) {
      if (disk.path !== replica.spec.diskPath) continue;
      const usage = (disk.replicas ?? []).find(
        (entry: { data_directory_name: string }) =>
          entry.data_directory_name === replica.spec.dataDirectoryName,
      );
      if (usage !== undefined) largest = Math.max(largest ?? 0, Number(usage.used_bytes));
    }
  }
  return largest;
}
