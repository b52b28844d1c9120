/**
 * The engine controller (key: engine name, `<volume>-e-0`). Makes the engine process match
 * the Engine resource and reports it in status:
 *
 * - `desireState: running` on `spec.nodeID` → CreateEngine there with the replicas of
 *   `spec.replicaAddressMap` and the frontend (`none` with disableFrontend); an engine of
 *   this name on any other node, or one in error, is deleted first;
 * - while running: addresses in the map that the engine lacks are added (AddReplica: the
 *   replica joins WO and is rebuilt, at most one rebuild at a time, at the bandwidth of
 *   the volume or of the replica-rebuilding-bandwidth-limit setting); addresses the engine
 *   has but the map does not are removed (RemoveReplica); a larger spec.volumeSize is
 *   applied with ExpandEngine; the snapshot requests the API leaves as annotations (revert,
 *   purge) are carried out (engine-snapshot-requests.ts);
 * - `desireState: stopped` → the engine process is deleted (the frontend goes first);
 * - deletion (finalizer `hornbill.io/engine`) → the same, then the finalizer goes.
 *
 * status: currentState, ip, port, endpoint, currentSize, instanceManagerName,
 * currentReplicaAddressMap and replicaModeMap (by replica name), rebuildStatus (by the
 * rebuilding replica's address), isExpanding.
 */
import type { GrpcMessage } from '../dataplane/instance-manager/grpc-client.ts';
import {
  type Engine,
  type EngineStatus,
  parseByteQuantity,
  type RebuildStatus,
  type ReplicaMode,
} from '../resources/index.ts';
import { type ControllerContext, ENGINE_FINALIZER, getOrUndefined, names, sameJson } from './context.ts';
import { handleSnapshotRequests } from './engine-snapshot-requests.ts';
import { nodeReadiness } from './node-controller.ts';
import type { ReconcileResult } from './work-queue.ts';

const COMPONENT = 'hornbill-engine-controller';
const RUNNING_POLL_MS = 2000;
const MIB = 1024 * 1024;
/** An engine that failed is started again after 250 ms, doubling per failure up to 30 s. */
const FIRST_RESTART_DELAY_MS = 250;
const MAXIMUM_RESTART_DELAY_MS = 30_000;
/** Engine name → failures in a row and when the next start may happen. */
const restarts = new Map<string, { failures: number; notBeforeMs: number }>();

export async function reconcileEngine(context: ControllerContext, name: string): Promise<ReconcileResult> {
  let engine = await getOrUndefined(context.store, 'Engine', context.namespace, name);
  if (engine === undefined) return {};
  const deleting = engine.metadata.deletionTimestamp !== undefined;
  if (!deleting && !(engine.metadata.finalizers ?? []).includes(ENGINE_FINALIZER)) {
    await context.store.update({
      ...engine,
      metadata: { ...engine.metadata, finalizers: [...(engine.metadata.finalizers ?? []), ENGINE_FINALIZER] },
    });
    return { requeueAfterMs: 0 };
  }
  const wanted = !deleting && engine.spec.desireState === 'running' && engine.spec.nodeID !== '';
  // Engines of this name anywhere else (an old node, or a stopped volume) go.
  const settings = await context.settings();
  let waitingForNode = false;
  for (const monitor of context.monitors.all()) {
    const here = monitor.endpoint.nodeID === engine.spec.nodeID && wanted;
    const instance = monitor.instance(name);
    if (here) {
      if (instance !== undefined && (instance.state === 'error' || instance.state === 'stopped')) {
        await monitor.client.call('DeleteEngine', { name });
        monitor.refresh();
        await context.event(
          engine,
          'Warning',
          'EngineFailed',
          `engine on node ${monitor.endpoint.nodeID} was ${instance.state} (${instance.error_message || 'no message'}); starting it again`,
          COMPONENT,
        );
        const failures = (restarts.get(name)?.failures ?? 0) + 1;
        const delayMs = Math.min(MAXIMUM_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (failures - 1));
        restarts.set(name, { failures, notBeforeMs: Date.now() + delayMs });
        return { requeueAfterMs: delayMs };
      }
      continue;
    }
    if (!monitor.reachable || !monitor.instancesKnown) {
      // Not listed now: wait where the engine was last seen, or where nothing was ever
      // listed since this manager started — unless the node is down.
      const neverListed = monitor.lastContactMs === 0;
      if ((instance !== undefined || neverListed) && nodeReadiness(monitor, settings) !== 'down')
        waitingForNode = true;
      continue;
    }
    if (instance === undefined) continue;
    await monitor.client.call('DeleteEngine', { name });
    monitor.refresh();
    await context.event(
      engine,
      'Normal',
      'Stopped',
      `engine stopped on node ${monitor.endpoint.nodeID}`,
      COMPONENT,
    );
  }
  if (deleting) {
    if (waitingForNode) return { requeueAfterMs: 1000 };
    await context.store.update({
      ...engine,
      metadata: {
        ...engine.metadata,
        finalizers: (engine.metadata.finalizers ?? []).filter((finalizer) => finalizer !== ENGINE_FINALIZER),
      },
    });
    return {};
  }
  if (!wanted) {
    if (waitingForNode) {
      await writeStatus(context, engine, { ...engine.status, currentState: 'stopping' });
      return { requeueAfterMs: 500 };
    }
    await writeStatus(context, engine, { currentState: 'stopped' });
    return {};
  }
  const monitor = context.monitors.get(engine.spec.nodeID);
  if (monitor === undefined || !monitor.reachable || !monitor.instancesKnown) {
    // Not yet reached since this manager started: nothing is known to have changed.
    if (monitor !== undefined && monitor.lastContactMs === 0) return { requeueAfterMs: 500 };
    await writeStatus(context, engine, { ...engine.status, currentState: 'unknown' });
    return { requeueAfterMs: 1000 };
  }
  let instance = monitor.instance(name);
  let requeueAfterMs = RUNNING_POLL_MS;
  if (instance === undefined) {
    const waitMs = (restarts.get(name)?.notBeforeMs ?? 0) - Date.now();
    if (waitMs > 0) return { requeueAfterMs: waitMs };
    const volume = await getOrUndefined(context.store, 'Volume', context.namespace, engine.spec.volumeName);
    instance = await monitor.client.call('CreateEngine', {
      name,
      volume_name: engine.spec.volumeName,
      size_bytes: parseByteQuantity(engine.spec.volumeSize) ?? 0,
      replica_addresses: Object.values(engine.spec.replicaAddressMap).sort(),
      frontend: engine.spec.disableFrontend ? 'none' : engine.spec.frontend,
      replica_timeout_ms: settings['engine-replica-timeout'] * 1000,
      prefer_local_replica: volume !== undefined && volume.spec.dataLocality !== 'disabled',
      // strict-local: the one replica is on this node; the engine runs in its thread and
      // reaches it in memory (Longhorn uses a Unix socket there for the same reason).
      in_local_replica_thread: volume !== undefined && volume.spec.dataLocality === 'strict-local',
    });
    monitor.refresh();
    await context.event(
      engine,
      'Normal',
      'Started',
      `engine started on node ${engine.spec.nodeID} with ${Object.keys(engine.spec.replicaAddressMap).length} replica(s)`,
      COMPONENT,
    );
  } else if (instance.state === 'running') {
    restarts.delete(name);
    await syncReplicas(
      context,
      engine,
      monitor.client,
      instance,
      settings['replica-rebuilding-bandwidth-limit'],
    );
    await expandIfNeeded(context, engine, monitor.client, instance);
    const requests = await handleSnapshotRequests(context, engine, monitor.client);
    engine = requests.engine;
    requeueAfterMs = Math.min(requeueAfterMs, requests.requeueAfterMs ?? requeueAfterMs);
  }
  const status = await runningStatus(
    engine,
    monitor.client,
    instance,
    names.instanceManager(engine.spec.nodeID),
  );
  await writeStatus(context, engine, status);
  return { requeueAfterMs };
}

/** Adds what the map has and the engine lacks (one rebuild at a time); removes what it no longer has. */
async function syncReplicas(
  context: ControllerContext,
  engine: Engine,
  client: { call(method: string, request: GrpcMessage): Promise<GrpcMessage> },
  instance: GrpcMessage,
  bandwidthSettingMiB: number,
): Promise<void> {
  const modes = (instance.engine?.replica_mode_map ?? {}) as Record<string, string>;
  const wanted = new Set(Object.values(engine.spec.replicaAddressMap));
  for (const address of Object.keys(modes)) {
    if (wanted.has(address)) continue;
    await client.call('RemoveReplica', { name: engine.metadata.name, address });
    await context.event(
      engine,
      'Normal',
      'ReplicaRemoved',
      `replica ${address} taken out of the engine`,
      COMPONENT,
    );
  }
  if (instance.engine?.is_rebuilding) return;
  const volume = await getOrUndefined(context.store, 'Volume', context.namespace, engine.spec.volumeName);
  const limitMiB = volume?.spec.replicaRebuildingBandwidthLimit || bandwidthSettingMiB;
  for (const [replicaName, address] of Object.entries(engine.spec.replicaAddressMap).sort()) {
    if (modes[address] !== undefined) continue;
    await client.call('AddReplica', {
      name: engine.metadata.name,
      address,
      bandwidth_bytes_per_second: limitMiB * MIB,
      wait_for_rebuild: false,
    });
    await context.event(
      engine,
      'Normal',
      'RebuildStarted',
      `replica ${replicaName} (${address}) added; rebuilding`,
      COMPONENT,
    );
    return; // one rebuild at a time
  }
}

async function expandIfNeeded(
  context: ControllerContext,
  engine: Engine,
  client: { call(method: string, request: GrpcMessage): Promise<GrpcMessage> },
  instance: GrpcMessage,
): Promise<void> {
  const wantedBytes = parseByteQuantity(engine.spec.volumeSize) ?? 0;
  if (wantedBytes <= Number(instance.size_bytes) || instance.engine?.is_rebuilding) return;
  await client.call('ExpandEngine', { name: engine.metadata.name, size_bytes: wantedBytes });
  await context.event(engine, 'Normal', 'Expanded', `volume expanded to ${wantedBytes} bytes`, COMPONENT);
}

async function runningStatus(
  engine: Engine,
  client: { call(method: string, request: GrpcMessage): Promise<GrpcMessage> },
  instance: GrpcMessage,
  instanceManagerName: string,
): Promise<EngineStatus> {
  const byAddress = new Map<string, string>();
  for (const [replicaName, address] of Object.entries(engine.spec.replicaAddressMap))
    byAddress.set(address, replicaName);
  const modes = (instance.engine?.replica_mode_map ?? {}) as Record<string, string>;
  const replicaModeMap: Record<string, ReplicaMode> = {};
  const currentReplicaAddressMap: Record<string, string> = {};
  for (const [address, mode] of Object.entries(modes)) {
    const replicaName = byAddress.get(address);
    if (replicaName === undefined) continue;
    replicaModeMap[replicaName] = mode as ReplicaMode;
    currentReplicaAddressMap[replicaName] = address;
  }
  const status: EngineStatus = {
    ...engine.status,
    currentState: instance.state,
    instanceManagerName,
    ip: instance.address,
    port: instance.port,
    endpoint: instance.endpoint,
    currentSize: String(instance.size_bytes),
    replicaModeMap,
    currentReplicaAddressMap,
  };
  if (instance.state === 'running') {
    const live = await client.call('GetEngineStatus', { name: engine.metadata.name }).catch(() => undefined);
    if (live?.rebuild) {
      const rebuild = live.rebuild as GrpcMessage;
      const entry: RebuildStatus = {
        isRebuilding: Boolean(rebuild.is_rebuilding),
        progress: Number(rebuild.progress),
        state: String(rebuild.state),
      };
      if (rebuild.error) entry.error = String(rebuild.error);
      if (rebuild.sources?.[0]) entry.fromReplicaAddress = String(rebuild.sources[0]);
      status.rebuildStatus = { [String(rebuild.target)]: entry };
    }
    if (live !== undefined) {
      status.isExpanding = Boolean(live.is_expanding);
      if (live.last_expansion_error) status.lastExpansionError = String(live.last_expansion_error);
    }
  }
  return status;
}

async function writeStatus(context: ControllerContext, engine: Engine, next: EngineStatus): Promise<void> {
  const status: EngineStatus = { ...next, observedGeneration: engine.metadata.generation };
  // The volume controller's record of a salvage survives the engine's own status writes.
  if (engine.status?.salvageExecuted !== undefined) status.salvageExecuted = engine.status.salvageExecuted;
  if (status.currentState !== 'running') {
    delete status.endpoint;
    delete status.ip;
    delete status.port;
    if (status.currentState === 'stopped') {
      delete status.replicaModeMap;
      delete status.currentReplicaAddressMap;
      delete status.rebuildStatus;
    }
  }
  if (sameJson(status, engine.status)) return;
  await context.store.updateStatus({ ...engine, status });
  const previous = engine.status?.currentState;
  if (previous !== status.currentState && status.currentState === 'running') {
    await context.event(
      engine,
      'Normal',
      'Running',
      `engine running on node ${engine.spec.nodeID}: ${status.endpoint || 'no frontend'}`,
      COMPONENT,
    );
  }
}
