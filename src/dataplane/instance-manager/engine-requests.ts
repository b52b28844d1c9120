/**
 * The instance manager's requests on one existing engine (status, snapshots, expansion,
 * replica membership, clone): each validates its input, finds the engine and passes the
 * request on, and changes nothing when it throws.
 */
import { HornbillError } from '../../errors.ts';
import type { LayerInfo } from '../../storage/replica-store.ts';
import type { PurgeState } from './engine-instance.ts';
import type { EngineStatusView } from './instance-manager-types.ts';
import type { InstanceRegistry } from './instance-registry.ts';
import { bandwidth, replicaAddress, sizeBytes, snapshotLabels, snapshotName } from './validation.ts';

export async function engineStatus(instances: InstanceRegistry, name: unknown): Promise<EngineStatusView> {
  const engine = instances.find(name, 'engine');
  const status = await engine.status();
  const expansion = engine.expansion;
  return {
    ...status,
    instance: engine.name,
    volumeName: engine.spec.volumeName,
    purge: engine.purgeState,
    isExpanding: expansion.isExpanding,
    lastExpansionError: expansion.lastError,
  };
}

export async function createSnapshot(
  instances: InstanceRegistry,
  name: unknown,
  snapshot: unknown,
  labels?: unknown,
): Promise<LayerInfo> {
  const checked = snapshotName(snapshot);
  const checkedLabels = snapshotLabels(labels);
  return instances.find(name, 'engine').snapshot(checked, checkedLabels);
}

export async function deleteSnapshot(
  instances: InstanceRegistry,
  name: unknown,
  snapshot: unknown,
): Promise<void> {
  const checked = snapshotName(snapshot);
  const engine = instances.find(name, 'engine');
  await engine.control('deleteSnapshot', { name: checked });
  engine.logs.append('info', 'snapshot deleted', { snapshot: checked }, 'instance-manager');
}

export async function listSnapshots(instances: InstanceRegistry, name: unknown): Promise<LayerInfo[]> {
  return instances.find(name, 'engine').control<LayerInfo[]>('listChain');
}

export async function hashSnapshot(
  instances: InstanceRegistry,
  name: unknown,
  snapshot: unknown,
): Promise<string> {
  const checked = snapshotName(snapshot);
  const engine = instances.find(name, 'engine');
  const result = await engine.longControl<{ hash: string }>('hashSnapshot', { name: checked });
  return result.hash;
}

export async function revertSnapshot(
  instances: InstanceRegistry,
  name: unknown,
  snapshot: unknown,
): Promise<void> {
  const checked = snapshotName(snapshot);
  await instances.find(name, 'engine').revertSnapshot(checked);
}

export async function purgeSnapshots(instances: InstanceRegistry, name: unknown): Promise<PurgeState> {
  return instances.find(name, 'engine').purgeSnapshots();
}

export async function expandEngine(instances: InstanceRegistry, name: unknown, size: unknown): Promise<void> {
  const checked = sizeBytes(size);
  await instances.find(name, 'engine').expand(checked);
}

export async function addReplica(
  instances: InstanceRegistry,
  name: unknown,
  request: { address: unknown; bandwidthBytesPerSecond?: unknown; wait?: boolean },
): Promise<void> {
  const address = replicaAddress(request.address);
  const bandwidthBytesPerSecond = bandwidth(request.bandwidthBytesPerSecond);
  await instances.find(name, 'engine').addReplica(address, {
    bandwidthBytesPerSecond,
    wait: request.wait === true,
  });
}

export async function cloneSnapshot(
  instances: InstanceRegistry,
  name: unknown,
  request: { sources: unknown; snapshot: unknown; origin: unknown; bandwidthBytesPerSecond?: unknown },
): Promise<void> {
  if (!Array.isArray(request.sources) || request.sources.length === 0 || request.sources.length > 64)
    throw new HornbillError(
      'INVALID_ARGUMENT',
      'source_replica_addresses must list 1 to 64 replica addresses',
    );
  const sources = request.sources.map((source) => replicaAddress(source, 'source_replica_addresses'));
  const snapshot = snapshotName(request.snapshot);
  if (typeof request.origin !== 'string' || request.origin.length > 300)
    throw new HornbillError('INVALID_ARGUMENT', 'origin must be a string of at most 300 characters');
  await instances.find(name, 'engine').cloneSnapshot({
    sources,
    snapshot,
    origin: request.origin === '' ? `replica://${sources[0]}/${snapshot}` : request.origin,
    bandwidthBytesPerSecond: bandwidth(request.bandwidthBytesPerSecond),
  });
}

export async function removeReplica(
  instances: InstanceRegistry,
  name: unknown,
  address: unknown,
): Promise<void> {
  const checked = replicaAddress(address);
  await instances.find(name, 'engine').removeReplica(checked);
}
