/**
 * The replica controller (key: replica name). Makes the replica process on its node match
 * the Replica resource, and reports what the instance manager says in status:
 *
 * - `spec.desireState: running` with a node → CreateReplica (which creates the folder
 *   `<diskPath>/replicas/<dataDirectoryName>/`, or opens it when it holds the replica
 *   already) or StartReplica for a stopped or failed process;
 * - `desireState: stopped` → StopReplica (the folder stays);
 * - deletion (finalizer `hornbill.io/replica`) → DeleteReplica with remove_data, then the
 *   finalizer goes. A replica on a node that is down keeps its folder there; the finalizer
 *   goes with a Warning event (DataLeftOnDownNode) so that the volume can be deleted.
 *
 * status: currentState (starting/running/stopping/stopped/error, unknown while the node is
 * unreachable), instanceManagerName, ip, port, and mode (the engine's view: RW/WO/ERR).
 */
import { parseByteQuantity, type Replica, type ReplicaStatus } from '../resources/index.ts';
import { type ControllerContext, getOrUndefined, names, REPLICA_FINALIZER, sameJson } from './context.ts';
import { nodeReadiness } from './node-controller.ts';
import type { ReconcileResult } from './work-queue.ts';

const COMPONENT = 'hornbill-replica-controller';
const RUNNING_POLL_MS = 5000;
/** A replica process in error is started again after 1 s, doubling per failure in a row up to 60 s. */
const FIRST_RESTART_DELAY_MS = 1000;
const MAXIMUM_RESTART_DELAY_MS = 60_000;
/** Replica name → failures in a row and when the next start may happen (forgotten once it runs for a while). */
const restarts = new Map<string, { failures: number; notBeforeMs: number }>();

export async function reconcileReplica(context: ControllerContext, name: string): Promise<ReconcileResult> {
  const replica = await getOrUndefined(context.store, 'Replica', context.namespace, name);
  if (replica === undefined) return {};
  if (replica.metadata.deletionTimestamp !== undefined) return deleteReplicaProcess(context, replica);
  if (!(replica.metadata.finalizers ?? []).includes(REPLICA_FINALIZER)) {
    await context.store.update({
      ...replica,
      metadata: {
        ...replica.metadata,
        finalizers: [...(replica.metadata.finalizers ?? []), REPLICA_FINALIZER],
      },
    });
    return { requeueAfterMs: 0 };
  }
  const nodeID = replica.spec.nodeID;
  if (nodeID === '') return writeStatus(context, replica, { currentState: 'stopped' });
  const monitor = context.monitors.get(nodeID);
  if (monitor === undefined || !monitor.reachable || !monitor.instancesKnown) {
    await writeStatus(context, replica, { currentState: 'unknown' });
    return { requeueAfterMs: 1000 };
  }
  let instance = monitor.instance(name);
  if (replica.spec.desireState === 'running') {
    if (instance === undefined) {
      instance = await monitor.client.call('CreateReplica', {
        name,
        volume_name: replica.spec.volumeName,
        size_bytes: parseByteQuantity(replica.spec.volumeSize) ?? 0,
        disk_path: replica.spec.diskPath,
        data_directory_name: replica.spec.dataDirectoryName,
      });
      monitor.refresh();
      await context.event(
        replica,
        'Normal',
        'Started',
        `replica process started on node ${nodeID}`,
        COMPONENT,
      );
    } else if (instance.state === 'stopped' || instance.state === 'error') {
      // A process that keeps failing is started again less and less often.
      const waitMs = instance.state === 'error' ? (restarts.get(name)?.notBeforeMs ?? 0) - Date.now() : 0;
      if (waitMs > 0) {
        await writeStatus(context, replica, {
          currentState: 'error',
          instanceManagerName: names.instanceManager(nodeID),
        });
        return { requeueAfterMs: waitMs };
      }
      if (instance.state === 'error') {
        const failures = (restarts.get(name)?.failures ?? 0) + 1;
        const delayMs = Math.min(MAXIMUM_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** (failures - 1));
        restarts.set(name, { failures, notBeforeMs: Date.now() + delayMs });
      }
      instance = await monitor.client.call('StartReplica', { name });
      monitor.refresh();
      await context.event(
        replica,
        'Normal',
        'Started',
        `replica process started again on node ${nodeID}`,
        COMPONENT,
      );
    }
  } else if (instance !== undefined && (instance.state === 'running' || instance.state === 'starting')) {
    instance = await monitor.client.call('StopReplica', { name });
    monitor.refresh();
    await context.event(replica, 'Normal', 'Stopped', `replica process stopped on node ${nodeID}`, COMPONENT);
  }
  const status: ReplicaStatus = {
    currentState: instance === undefined ? 'stopped' : instance.state,
    instanceManagerName: names.instanceManager(nodeID),
  };
  if (instance !== undefined && instance.state === 'running') {
    const restart = restarts.get(name);
    if (restart !== undefined && Date.now() - restart.notBeforeMs > MAXIMUM_RESTART_DELAY_MS)
      restarts.delete(name);
    status.ip = instance.address;
    status.port = instance.port;
  }
  const engine = await getOrUndefined(
    context.store,
    'Engine',
    context.namespace,
    names.engine(replica.spec.volumeName),
  );
  const mode = engine?.status?.replicaModeMap?.[name];
  if (mode !== undefined) status.mode = mode;
  await writeStatus(context, replica, status);
  return { requeueAfterMs: RUNNING_POLL_MS };
}

async function writeStatus(
  context: ControllerContext,
  replica: Replica,
  next: ReplicaStatus,
): Promise<ReconcileResult> {
  const status: ReplicaStatus = {
    conditions: replica.status?.conditions,
    ...next,
    observedGeneration: replica.metadata.generation,
  };
  if (status.conditions === undefined) delete status.conditions;
  if (sameJson(status, replica.status)) return {};
  await context.store.updateStatus({ ...replica, status });
  if (replica.status?.currentState !== status.currentState && status.currentState === 'error') {
    await context.event(
      replica,
      'Warning',
      'Failed',
      `replica process on node ${replica.spec.nodeID} is in error`,
      COMPONENT,
    );
  }
  return {};
}

async function deleteReplicaProcess(context: ControllerContext, replica: Replica): Promise<ReconcileResult> {
  if (!(replica.metadata.finalizers ?? []).includes(REPLICA_FINALIZER)) return {};
  const nodeID = replica.spec.nodeID;
  const monitor = nodeID === '' ? undefined : context.monitors.get(nodeID);
  if (nodeID !== '' && monitor !== undefined) {
    if (monitor.reachable) {
      await monitor.client.call('DeleteReplica', {
        name: replica.metadata.name,
        remove_data: true,
        disk_path: replica.spec.diskPath,
        data_directory_name: replica.spec.dataDirectoryName,
      });
      monitor.refresh();
      await context.event(
        replica,
        'Normal',
        'Deleted',
        `replica process and folder removed from node ${nodeID}`,
        COMPONENT,
      );
    } else if (nodeReadiness(monitor, await context.settings()) !== 'down') {
      return { requeueAfterMs: 1000 }; // wait for the node to answer, or to be declared down
    } else {
      await context.event(
        replica,
        'Warning',
        'DataLeftOnDownNode',
        `node ${nodeID} is down: the folder ${replica.spec.diskPath}/replicas/${replica.spec.dataDirectoryName} stays there`,
        COMPONENT,
      );
    }
  }
  restarts.delete(replica.metadata.name);
  await context.store.update({
    ...replica,
    metadata: {
      ...replica.metadata,
      finalizers: (replica.metadata.finalizers ?? []).filter((finalizer) => finalizer !== REPLICA_FINALIZER),
    },
  });
  return {};
}
