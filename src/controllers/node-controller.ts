/**
 * The node controller (key: node name). For each configured instance manager it keeps
 *
 * - one Node resource with one default disk per disk path (`default-disk-<hash of path>`,
 *   storageReserved = storage-reserved-percentage-for-default-disk of the disk's size),
 *   whose status says what the instance manager reports: conditions Ready and Schedulable,
 *   and per disk storageMaximum / storageAvailable (statfs), storageScheduled and
 *   scheduledReplica (the Replica resources placed there), diskUUID;
 * - one InstanceManager resource (`instance-manager-<node>`) with currentState, ip, port,
 *   apiVersion and the engine and replica processes it runs.
 *
 * Ready: True (InstanceManagerRunning) while the instance manager answers; Unknown
 * (InstanceManagerUnreachable) when it stops answering; False (InstanceManagerUnreachable)
 * once it has not answered for the node-down-timeout setting — the node is down, and the
 * volume controller fails its replicas and detaches volumes attached there.
 */
import {
  type DiskSpecInput,
  type DiskStatus,
  type InstanceManager,
  type InstanceProcessStatus,
  type Node,
  type NodeStatus,
  parseByteQuantity,
  type Replica,
  type SettingValues,
} from '../resources/index.ts';
import { type ControllerContext, getOrUndefined, names, sameJson, withCondition } from './context.ts';
import type { InstanceManagerEndpoint, InstanceManagerMonitor } from './instance-manager-monitor.ts';
import { removeOrphanFolders, removeOrphanInstances } from './orphan-cleanup.ts';
import type { ReconcileResult } from './work-queue.ts';

const COMPONENT = 'hornbill-node-controller';
/** Set once the default disks got their storage-reserved-percentage-for-default-disk. */
export const DEFAULT_DISKS_RESERVED_ANNOTATION = 'hornbill.io/default-disks-reserved';

/** Node readiness as the controllers use it. */
export type NodeReadiness = 'ready' | 'unreachable' | 'down';

/** Whether the node is up, briefly unreachable, or down (unreachable past the node-down timeout). */
export function nodeReadiness(
  monitor: InstanceManagerMonitor | undefined,
  settings: SettingValues,
  nowMs: number = Date.now(),
): NodeReadiness {
  if (monitor === undefined) return 'down';
  if (monitor.reachable) return 'ready';
  return nowMs - monitor.unreachableSinceMs >= settings['node-down-timeout'] * 1000 ? 'down' : 'unreachable';
}

/** Whether a Node resource says its node is down (Ready False). */
export function isNodeMarkedDown(node: Node | undefined): boolean {
  const ready = node?.status?.conditions?.find((condition) => condition.type === 'Ready');
  return node === undefined || ready?.status === 'False';
}

export function isNodeMarkedReady(node: Node | undefined): boolean {
  const ready = node?.status?.conditions?.find((condition) => condition.type === 'Ready');
  return ready?.status === 'True';
}

export async function reconcileNode(
  context: ControllerContext,
  endpoint: InstanceManagerEndpoint,
): Promise<ReconcileResult> {
  const monitor = context.monitors.get(endpoint.nodeID);
  const settings = await context.settings();
  const node = await ensureNode(context, endpoint, monitor, settings);
  await ensureInstanceManager(context, endpoint, monitor);
  const readiness = nodeReadiness(monitor, settings);
  await writeNodeStatus(context, node, monitor, readiness);
  if (readiness === 'ready' && monitor !== undefined) {
    await removeOrphanInstances(context, node, monitor);
    await removeOrphanFolders(context, node, monitor);
  }
  // While unreachable, look again when the node-down timeout would expire.
  if (readiness === 'unreachable' && monitor !== undefined) {
    const dueMs = monitor.unreachableSinceMs + settings['node-down-timeout'] * 1000 - Date.now();
    return { requeueAfterMs: Math.max(100, dueMs + 50) };
  }
  return { requeueAfterMs: 5000 };
}

async function ensureNode(
  context: ControllerContext,
  endpoint: InstanceManagerEndpoint,
  monitor: InstanceManagerMonitor | undefined,
  settings: SettingValues,
): Promise<Node> {
  let node = await getOrUndefined(context.store, 'Node', context.namespace, endpoint.nodeID);
  if (node === undefined) {
    const disks: Record<string, DiskSpecInput> = {};
    for (const path of endpoint.disks)
      disks[names.disk(path)] = { path, allowScheduling: true, storageReserved: '0' };
    node = await context.store.create({
      kind: 'Node',
      metadata: { name: endpoint.nodeID, namespace: context.namespace },
      spec: { disks },
    });
    await context.event(
      node,
      'Normal',
      'Created',
      `node ${endpoint.nodeID} registered with ${endpoint.disks.length} disk(s)`,
      COMPONENT,
    );
  }
  return reserveDefaultDisks(context, node, monitor, settings);
}

/**
 * Once the disk sizes are known, each default disk reserves
 * storage-reserved-percentage-for-default-disk of its size (once: the annotation records
 * it, and an operator's later change of storageReserved stands).
 */
async function reserveDefaultDisks(
  context: ControllerContext,
  node: Node,
  monitor: InstanceManagerMonitor | undefined,
  settings: SettingValues,
): Promise<Node> {
  if (node.metadata.annotations?.[DEFAULT_DISKS_RESERVED_ANNOTATION] !== undefined) return node;
  const stats = monitor?.diskStats;
  if (stats === undefined) return node;
  const disks = { ...node.spec.disks };
  for (const [name, disk] of Object.entries(disks)) {
    const stat = stats.find((entry) => entry.path === disk.path);
    if (stat === undefined || name !== names.disk(disk.path)) continue;
    const reserved = Math.floor(
      (Number(stat.total_bytes) * settings['storage-reserved-percentage-for-default-disk']) / 100,
    );
    disks[name] = { ...disk, storageReserved: String(reserved) };
  }
  return context.store.update({
    ...node,
    metadata: {
      ...node.metadata,
      annotations: { ...node.metadata.annotations, [DEFAULT_DISKS_RESERVED_ANNOTATION]: 'true' },
    },
    spec: { ...node.spec, disks },
  });
}

async function ensureInstanceManager(
  context: ControllerContext,
  endpoint: InstanceManagerEndpoint,
  monitor: InstanceManagerMonitor | undefined,
): Promise<void> {
  const name = names.instanceManager(endpoint.nodeID);
  let manager = await getOrUndefined(context.store, 'InstanceManager', context.namespace, name);
  if (manager === undefined) {
    manager = await context.store.create({
      kind: 'InstanceManager',
      metadata: { name, namespace: context.namespace, labels: { 'hornbill.io/node': endpoint.nodeID } },
      spec: { nodeID: endpoint.nodeID, type: 'aio' },
    });
  }
  const [host, portText] = splitAddress(endpoint.grpcAddress);
  const engines: Record<string, InstanceProcessStatus> = {};
  const replicas: Record<string, InstanceProcessStatus> = {};
  if (monitor?.reachable) {
    for (const instance of monitor.instances.values()) {
      const entry: InstanceProcessStatus = { state: instance.state };
      if (instance.error_message) entry.errorMessage = String(instance.error_message).slice(0, 4096);
      if (instance.address) entry.ip = instance.address;
      if (instance.port) entry.port = instance.port;
      if (instance.started_at) entry.startedAt = String(instance.started_at).replace(/\.\d+Z$/, 'Z');
      (instance.kind === 'engine' ? engines : replicas)[instance.name] = entry;
    }
  }
  const status: InstanceManager['status'] = {
    ...manager.status,
    currentState: monitor?.reachable ? 'running' : monitor?.lastContactMs ? 'unknown' : 'pending',
    ip: host,
    port: Number(portText),
    apiVersion: Number(monitor?.info?.api_version ?? manager.status?.apiVersion ?? 0),
    instanceEngines: engines,
    instanceReplicas: replicas,
    observedGeneration: manager.metadata.generation,
  };
  if (sameJson(status, manager.status)) return;
  const previousState = manager.status?.currentState;
  await context.store.updateStatus({ ...manager, status });
  if (
    previousState !== status.currentState &&
    (status.currentState === 'running' || previousState === 'running')
  ) {
    await context.event(
      manager,
      status.currentState === 'running' ? 'Normal' : 'Warning',
      status.currentState === 'running' ? 'Running' : 'Unreachable',
      `instance manager of node ${endpoint.nodeID} at ${endpoint.grpcAddress} is ${status.currentState}`,
      COMPONENT,
    );
  }
}

async function writeNodeStatus(
  context: ControllerContext,
  node: Node,
  monitor: InstanceManagerMonitor | undefined,
  readiness: NodeReadiness,
): Promise<void> {
  const previous = node.status ?? {};
  const generation = node.metadata.generation;
  const ready =
    readiness === 'ready'
      ? { status: 'True' as const, reason: 'InstanceManagerRunning', message: 'the instance manager answers' }
      : readiness === 'unreachable' && (monitor?.lastContactMs ?? 0) === 0
        ? {
            status: 'Unknown' as const,
            reason: 'InstanceManagerPending',
            message: 'waiting for the first answer of the instance manager',
          }
        : readiness === 'unreachable'
          ? {
              status: 'Unknown' as const,
              reason: 'InstanceManagerUnreachable',
              message:
                'the instance manager does not answer; the node is marked down if it stays away for node-down-timeout',
            }
          : {
              status: 'False' as const,
              reason: 'InstanceManagerUnreachable',
              message: 'the instance manager has not answered for node-down-timeout: the node is down',
            };
  let conditions = withCondition(previous.conditions, {
    type: 'Ready',
    ...ready,
    observedGeneration: generation,
  });
  const readyChanged = conditions.changed;
  const schedulable =
    readiness !== 'ready'
      ? { status: 'False' as const, reason: 'InstanceManagerUnreachable', message: 'the node is not ready' }
      : !node.spec.allowScheduling
        ? { status: 'False' as const, reason: 'SchedulingDisabled', message: 'spec.allowScheduling is false' }
        : { status: 'True' as const, reason: 'Schedulable', message: 'replicas can be placed here' };
  conditions = withCondition(conditions.conditions, {
    type: 'Schedulable',
    ...schedulable,
    observedGeneration: generation,
  });
  const replicas = (await context.store.list('Replica', { namespace: context.namespace })).items.filter(
    (replica) => replica.spec.nodeID === node.metadata.name,
  );
  const diskStatus: Record<string, DiskStatus> = {};
  for (const [diskName, disk] of Object.entries(node.spec.disks)) {
    diskStatus[diskName] = diskStatusOf(
      disk.path,
      disk.allowScheduling,
      previous.diskStatus?.[diskName],
      monitor,
      replicas,
      readiness,
    );
  }
  const status: NodeStatus = {
    ...previous,
    conditions: conditions.conditions,
    diskStatus,
    observedGeneration: generation,
  };
  if (sameJson(status, node.status)) return;
  await context.store.updateStatus({ ...node, status });
  if (readyChanged) {
    await context.event(
      node,
      ready.status === 'True' || ready.reason === 'InstanceManagerPending' ? 'Normal' : 'Warning',
      ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'NodeDown' : ready.reason,
      `node ${node.metadata.name}: ${ready.message}`,
      COMPONENT,
    );
  }
}

function diskStatusOf(
  path: string,
  allowScheduling: boolean,
  previous: DiskStatus | undefined,
  monitor: InstanceManagerMonitor | undefined,
  replicas: Replica[],
  readiness: NodeReadiness,
): DiskStatus {
  const stat = monitor?.diskStats?.find((disk) => disk.path === path);
  const scheduledReplica: Record<string, number> = {};
  let storageScheduled = 0;
  for (const replica of replicas) {
    if (replica.spec.diskPath !== path) continue;
    const size = parseByteQuantity(replica.spec.volumeSize) ?? 0;
    scheduledReplica[replica.metadata.name] = size;
    storageScheduled += size;
  }
  const found = stat !== undefined;
  let conditions = withCondition(previous?.conditions, {
    type: 'Ready',
    status: found && readiness === 'ready' ? 'True' : 'False',
    reason: found ? (readiness === 'ready' ? 'DiskReady' : 'NodeNotReady') : 'DiskNotReported',
    message: found ? `disk ${path}` : `the instance manager does not report disk ${path}`,
  }).conditions;
  conditions = withCondition(conditions, {
    type: 'Schedulable',
    status: found && readiness === 'ready' && allowScheduling ? 'True' : 'False',
    reason: !allowScheduling
      ? 'SchedulingDisabled'
      : found && readiness === 'ready'
        ? 'DiskSchedulable'
        : 'DiskNotReady',
    message: !allowScheduling ? 'allowScheduling is false' : `disk ${path}`,
  }).conditions;
  const status: DiskStatus = {
    conditions,
    storageMaximum: Number(stat?.total_bytes ?? previous?.storageMaximum ?? 0),
    storageAvailable: Number(stat?.available_bytes ?? previous?.storageAvailable ?? 0),
    storageScheduled,
    scheduledReplica,
  };
  const uuid = stat?.disk_uuid ?? previous?.diskUUID;
  if (uuid) status.diskUUID = uuid;
  const filesystem = stat?.filesystem_type ?? previous?.filesystemType;
  if (filesystem) status.filesystemType = filesystem;
  return status;
}

function splitAddress(address: string): [string, string] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), address.slice(colon + 1)];
}
