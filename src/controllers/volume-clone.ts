/**
 * The clone half of the volume controller: a volume with `spec.dataSource` is filled from
 * another volume before anything else may use it (as Longhorn's volume clone):
 *
 * - `snap://<source>/<snapshot>` copies that snapshot; `vol://<source>` first takes a
 *   snapshot of the source (a Snapshot resource `clone-for-<volume>`, kept afterwards so
 *   the clone's origin stays inspectable) and copies it;
 * - both volumes get a `clone` attachment ticket on one node (the source's node when it is
 *   attached) with the frontend off, so the source's replicas and the new volume's engine
 *   run; workloads' tickets wait (desiredAttachment) until the copy completes;
 * - the new volume's engine copies the data from an RW replica of the source
 *   (CloneSnapshot, dataplane/engine/clone.ts) into each of its replicas; progress goes to
 *   `status.cloneStatus`; a failed copy is tried again after a back-off (5 s doubling to 5 min);
 * - once completed, both tickets go and the volume is an ordinary volume; an attach that
 *   was waiting goes ahead (with its frontend).
 * Deleting the new volume mid-copy removes its ticket from the source (removeSourceTicket).
 */
import type { GrpcMessage } from '../dataplane/instance-manager/grpc-client.ts';
import type { Volume, VolumeCloneStatus } from '../resources/index.ts';
import { ensureTicket, removeTicket } from './attachment-tickets.ts';
import {
  type ControllerContext,
  getOrUndefined,
  names,
  nowTimestamp,
  sameJson,
  timestampMs,
} from './context.ts';
import { COMPONENT, liveEngineModes, type VolumeWorld } from './volume-replicas.ts';

const TARGET_TICKET = 'clone';
const POLL_MS = 1000;
const FIRST_RETRY_MS = 5000;
const MAXIMUM_RETRY_MS = 300_000;

export interface CloneSource {
  volume: string;
  /** The snapshot to copy; for vol:// the one taken for this clone. */
  snapshot: string;
  /** vol://: the Snapshot resource this controller takes. */
  takeSnapshot: boolean;
}

/** The source a dataSource names, or undefined when it names none. */
export function cloneSource(volume: Volume): CloneSource | undefined {
  const dataSource = volume.spec.dataSource;
  if (dataSource === undefined) return undefined;
  const snapshot = /^snap:\/\/([^/]+)\/(.+)$/.exec(dataSource);
  if (snapshot !== null) return { volume: snapshot[1], snapshot: snapshot[2], takeSnapshot: false };
  const whole = /^vol:\/\/(.+)$/.exec(dataSource);
  if (whole !== null)
    return { volume: whole[1], snapshot: `clone-for-${volume.metadata.name}`, takeSnapshot: true };
  return undefined;
}

/** Whether the volume still waits for its data (workloads may not attach it yet). */
export function cloneInProgress(volume: Volume): boolean {
  return volume.spec.dataSource !== undefined && volume.status?.cloneStatus?.state !== 'completed';
}

function sourceTicketId(target: string): string {
  return `clone-${target}`;
}

/**
 * Moves the clone one step; returns undefined when there is nothing (left) to do, else
 * when to look again and what blocks it.
 */
export async function reconcileClone(
  context: ControllerContext,
  world: VolumeWorld,
): Promise<{ requeueAfterMs: number; blocked?: string } | undefined> {
  const { volume } = world;
  const source = cloneSource(volume);
  if (source === undefined || !cloneInProgress(volume)) return undefined;
  const previous = volume.status?.cloneStatus;
  let status: VolumeCloneStatus = previous ?? {
    state: 'pending',
    sourceVolume: source.volume,
    snapshot: source.snapshot,
    progress: 0,
    attemptCount: 0,
  };
  const save = async (next: VolumeCloneStatus) => {
    status = next;
    if (!sameJson(next, volume.status?.cloneStatus))
      await context.store.updateStatus({ ...volume, status: { ...volume.status, cloneStatus: next } });
  };
  const sourceVolume = await getOrUndefined(context.store, 'Volume', context.namespace, source.volume);
  if (sourceVolume === undefined || sourceVolume.metadata.deletionTimestamp !== undefined) {
    await save({ ...status, state: 'failed', error: `the source volume ${source.volume} does not exist` });
    return { requeueAfterMs: 10_000, blocked: `clone source volume ${source.volume} not found` };
  }
  const retryAtMs = timestampMs(status.nextAttemptAt) ?? 0;
  if (status.state === 'failed' && retryAtMs > world.nowMs)
    return { requeueAfterMs: retryAtMs - world.nowMs, blocked: `clone failed: ${status.error}` };

  // One node for both volumes: the source's when it is attached.
  const nodeID =
    status.nodeID && world.readyNodes.has(status.nodeID) ? status.nodeID : chooseNode(world, sourceVolume);
  if (nodeID === undefined) return { requeueAfterMs: 2000, blocked: 'no ready node to clone on' };
  if (status.nodeID !== nodeID) await save({ ...status, nodeID });
  await ensureTicket(context, source.volume, sourceTicketId(volume.metadata.name), 'clone', nodeID);
  await ensureTicket(context, volume.metadata.name, TARGET_TICKET, 'clone', nodeID);

  if (source.takeSnapshot && !(await sourceSnapshotReady(context, volume, source)))
    return { requeueAfterMs: POLL_MS };
  const sourceAddresses = await readWriteAddresses(context, source.volume);
  const engine = world.engine;
  const live = liveEngineModes(context, engine);
  const monitor = engine === undefined ? undefined : context.monitors.get(engine.spec.nodeID);
  if (
    engine === undefined ||
    monitor === undefined ||
    live === undefined ||
    !Object.values(live).includes('RW') ||
    sourceAddresses.length === 0
  ) {
    return { requeueAfterMs: POLL_MS };
  }

  if (status.state === 'copying') {
    const report = (await monitor.client.call('GetEngineStatus', { name: engine.metadata.name }))
      .clone as GrpcMessage | null;
    if (report !== null && report !== undefined && report.state === 'done') {
      await save({
        ...status,
        state: 'completed',
        progress: 100,
        transferredBytes: Number(report.transferred_bytes),
        completedAt: nowTimestamp(),
        error: undefined,
        nextAttemptAt: undefined,
      });
      await removeTicket(context, source.volume, sourceTicketId(volume.metadata.name));
      await removeTicket(context, volume.metadata.name, TARGET_TICKET);
      await context.event(
        volume,
        'Normal',
        'Cloned',
        `filled from ${volume.spec.dataSource}: ${Number(report.transferred_bytes)} bytes of data copied from ${report.source}`,
        COMPONENT,
      );
      return { requeueAfterMs: 0 };
    }
    if (report !== null && report !== undefined && report.is_cloning === true) {
      await save({
        ...status,
        progress: Number(report.progress),
        transferredBytes: Number(report.transferred_bytes),
      });
      return { requeueAfterMs: POLL_MS };
    }
    // Failed, or the engine restarted and knows of no clone: try again.
    return failed(
      context,
      volume,
      status,
      save,
      String(report?.error || 'the engine restarted during the copy'),
    );
  }

  try {
    await monitor.client.call('CloneSnapshot', {
      name: engine.metadata.name,
      source_replica_addresses: sourceAddresses,
      snapshot_name: source.snapshot,
      origin: volume.spec.dataSource,
      bandwidth_bytes_per_second:
        (volume.spec.replicaRebuildingBandwidthLimit ||
          world.settings['replica-rebuilding-bandwidth-limit']) *
        1024 *
        1024,
    });
  } catch (error) {
    return failed(context, volume, status, save, (error as Error).message);
  }
  await save({ ...status, state: 'copying', progress: 0, startedAt: nowTimestamp(), error: undefined });
  await context.event(
    volume,
    'Normal',
    'Cloning',
    `copying ${volume.spec.dataSource} (snapshot ${source.snapshot}) on node ${nodeID}`,
    COMPONENT,
  );
  return { requeueAfterMs: POLL_MS };
}

async function failed(
  context: ControllerContext,
  volume: Volume,
  status: VolumeCloneStatus,
  save: (next: VolumeCloneStatus) => Promise<void>,
  error: string,
): Promise<{ requeueAfterMs: number; blocked: string }> {
  const attemptCount = status.attemptCount + 1;
  const delayMs = Math.min(MAXIMUM_RETRY_MS, FIRST_RETRY_MS * 2 ** (attemptCount - 1));
  await save({
    ...status,
    state: 'failed',
    attemptCount,
    error,
    nextAttemptAt: new Date(Date.now() + delayMs).toISOString(),
  });
  await context.event(
    volume,
    'Warning',
    'CloneFailed',
    `copying ${volume.spec.dataSource} failed (attempt ${attemptCount}, next in ${Math.round(delayMs / 1000)} s): ${error}`,
    COMPONENT,
  );
  return { requeueAfterMs: delayMs, blocked: `clone failed: ${error}` };
}

function chooseNode(world: VolumeWorld, sourceVolume: Volume): string | undefined {
  const candidates = [
    sourceVolume.status?.state === 'attached' ? sourceVolume.status.currentNodeID : undefined,
    world.engine?.spec.nodeID,
    ...world.replicas.map((replica) => replica.spec.nodeID),
    ...[...world.readyNodes].sort(),
  ];
  return candidates.find((node): node is string => node !== undefined && world.readyNodes.has(node));
}

/** vol://: the Snapshot taken for the clone exists and is ready. */
async function sourceSnapshotReady(
  context: ControllerContext,
  volume: Volume,
  source: CloneSource,
): Promise<boolean> {
  const snapshot = await getOrUndefined(context.store, 'Snapshot', context.namespace, source.snapshot);
  if (snapshot === undefined) {
    await context.store.create({
      kind: 'Snapshot',
      metadata: {
        name: source.snapshot,
        namespace: context.namespace,
        labels: { 'hornbill.io/clone-target': volume.metadata.name },
      },
      spec: { volume: source.volume, createSnapshot: true, labels: {} },
    });
    return false;
  }
  return snapshot.status?.readyToUse === true;
}

/** host:port of the source engine's RW replicas (empty unless the source engine runs). */
async function readWriteAddresses(context: ControllerContext, volume: string): Promise<string[]> {
  const engine = await getOrUndefined(context.store, 'Engine', context.namespace, names.engine(volume));
  const live = liveEngineModes(context, engine);
  if (live === undefined) return [];
  return Object.entries(live)
    .filter(([, mode]) => mode === 'RW')
    .map(([address]) => address);
}

/** A volume being deleted takes its ticket off its clone source. */
export async function removeSourceTicket(context: ControllerContext, volume: Volume): Promise<void> {
  const source = cloneSource(volume);
  if (source !== undefined) await removeTicket(context, source.volume, sourceTicketId(volume.metadata.name));
}
