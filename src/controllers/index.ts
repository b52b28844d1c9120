/**
 * The controllers of the manager: one work queue per controller (work-queue.ts), fed by
 * informers on the resources and by the instance manager monitors; each reconcile is
 * level-triggered and idempotent (docs/controllers.md).
 *
 * ```ts
 * const controllers = await startControllers({ store, namespace: 'hornbill-system',
 *   instanceManagers: [{ nodeID: 'node-1', grpcAddress: '127.0.0.11:8500', address: '127.0.0.11', disks: ['/data/node-1'] }],
 *   log: (record) => console.error(JSON.stringify(record)) });
 * await controllers.idle();
 * await controllers.stop();
 * ```
 */
import os from 'node:os';
import path from 'node:path';
import { isHornbillError } from '../errors.ts';
import type { LogLevel } from '../logging.ts';
import { Informer, type Kind, type ResourceOf, type ResourceStore } from '../resources/index.ts';
import type { ShareManagerLeases } from '../share-manager/index.ts';
import { type ControllerContext, createContext, type QueueName } from './context.ts';
import { reconcileEngine } from './engine-controller.ts';
import {
  type InstanceManagerEndpoint,
  InstanceManagerMonitors,
  type MonitorChange,
} from './instance-manager-monitor.ts';
import { reconcileNode } from './node-controller.ts';
import { reconcileReplica } from './replica-controller.ts';
import { reconcileSetting, settingKeys } from './setting-controller.ts';
import type { ShareManagerHosting } from './share-manager/hosting.ts';
import { startShareManagerController } from './share-manager/index.ts';
import type { ShareManagerServices } from './share-manager/services.ts';
import { reconcileSnapshot } from './snapshot-controller.ts';
import { reconcileVolume } from './volume-controller.ts';
import { type ReconcileResult, WorkQueue } from './work-queue.ts';

export interface ControllerOptions {
  store: ResourceStore;
  /** 'hornbill-system'. */
  namespace: string;
  /** The instance managers, one per node (a static list in embedded mode). */
  instanceManagers: ReadonlyArray<{
    nodeID: string;
    grpcAddress: string;
    address: string;
    disks: readonly string[];
  }>;
  /** One JSON log record. */
  log: (record: Record<string, unknown>) => void;
  /**
   * Folder for the RWX share managers' lease files, seen by the manager and every node
   * (embedded mode: all nodes are on this machine). Default: under the system's temp folder.
   */
  shareManagerLeaseDirectory?: string;
  /** The share managers' leases; Kubernetes mode passes Lease objects (wins over the folder). */
  shareManagerLeases?: ShareManagerLeases;
  /**
   * The share managers' stable address; Kubernetes mode passes a Service and EndpointSlice
   * per volume (`kubernetesShareManagerServices`). Absent: a loopback address per volume.
   */
  shareManagerServices?: ShareManagerServices;
  /**
   * Where the share managers run; Kubernetes mode passes a Pod per volume
   * (`kubernetesPodHosting`). Absent: a child process of the node's instance manager.
   */
  shareManagerHosting?: ShareManagerHosting;
}

/** One controller's work queue, for /metrics. */
export interface ControllerQueueStatistics {
  controller: string;
  succeeded: number;
  failed: number;
  depth: number;
}

export interface RunningControllers {
  stop(): Promise<void>;
  /** Reconciles per controller (successful and failed) and keys waiting. */
  statistics(): ControllerQueueStatistics[];
  /** Resolves when every queue is empty and no reconcile runs (for tests). */
  idle(): Promise<void>;
}

const WORKERS: Record<QueueName, number> = {
  volume: 2,
  engine: 2,
  replica: 2,
  node: 1,
  setting: 1,
  snapshot: 1,
};

export async function startControllers(options: ControllerOptions): Promise<RunningControllers> {
  const { store, namespace, log } = options;
  const endpoints: InstanceManagerEndpoint[] = options.instanceManagers.map((manager) => ({ ...manager }));
  const endpointsByNode = new Map(endpoints.map((endpoint) => [endpoint.nodeID, endpoint]));
  const queues = new Map<QueueName, WorkQueue>();
  const enqueue = (queue: QueueName, name: string) => queues.get(queue)?.add(name);
  const volumeInformer = { current: undefined as Informer<'Volume'> | undefined };
  const enqueueAllVolumes = () => {
    for (const volume of volumeInformer.current?.list() ?? []) enqueue('volume', volume.metadata.name);
  };
  const onMonitorChange = (change: MonitorChange) => {
    enqueue('node', change.nodeID);
    if (change.type === 'node') {
      enqueueAllVolumes();
      return;
    }
    enqueue('engine', change.name);
    enqueue('replica', change.name);
    const instance = monitors.get(change.nodeID)?.instance(change.name);
    if (instance?.volume_name) enqueue('volume', instance.volume_name);
    else enqueueAllVolumes();
  };
  const monitors = new InstanceManagerMonitors(endpoints, onMonitorChange);
  const context = createContext({ store, namespace, monitors, log, enqueue });
  const reconcilers: Record<QueueName, (key: string) => Promise<ReconcileResult>> = {
    volume: (key) => reconcileVolume(context, key),
    engine: (key) => reconcileEngine(context, key),
    replica: (key) => reconcileReplica(context, key),
    node: async (key) => {
      const endpoint = endpointsByNode.get(key);
      return endpoint === undefined ? {} : reconcileNode(context, endpoint);
    },
    setting: (key) => reconcileSetting(context, key),
    snapshot: (key) => reconcileSnapshot(context, key),
  };
  for (const [name, workers] of Object.entries(WORKERS) as [QueueName, number][]) {
    queues.set(
      name,
      new WorkQueue({
        name,
        workers,
        reconcile: (key) => reconcilers[name](key),
        onError: (key, error, retryInMs) => {
          const conflict =
            isHornbillError(error, 'RESOURCE_CONFLICT') || isHornbillError(error, 'RESOURCE_ALREADY_EXISTS');
          log({
            level: conflict ? 'debug' : 'warn',
            component: `hornbill-${name}-controller`,
            message: 'reconcile failed; retrying',
            key,
            retryInMs,
            error: error instanceof Error ? error.message : String(error),
            code: isHornbillError(error) ? error.code : undefined,
          });
        },
      }),
    );
  }
  const logger = (level: LogLevel, message: string, details: Record<string, unknown>) =>
    log({ level, component: 'hornbill-informer', message, ...details });
  const informers: Informer<Kind>[] = [];
  const watch = <K extends Kind>(kind: K, keys: (object: ResourceOf<K>) => [QueueName, string][]) => {
    const informer = new Informer(store, kind, { namespace, logger });
    const handler = (object: ResourceOf<K>) => {
      for (const [queue, key] of keys(object)) enqueue(queue, key);
    };
    informer.addHandler({ added: handler, modified: handler, deleted: handler });
    informers.push(informer as unknown as Informer<Kind>);
    return informer;
  };
  volumeInformer.current = watch('Volume', (volume) => [['volume', volume.metadata.name]]);
  watch('Engine', (engine) => [
    ['engine', engine.metadata.name],
    ['volume', engine.spec.volumeName],
  ]);
  watch('Replica', (replica) => [
    ['replica', replica.metadata.name],
    ['volume', replica.spec.volumeName],
  ]);
  watch('VolumeAttachment', (attachment) => [['volume', attachment.spec.volume]]);
  watch('Snapshot', (snapshot) => [['snapshot', snapshot.metadata.name]]);
  const nodeInformer = watch('Node', (node) => [['node', node.metadata.name]]);
  nodeInformer.addHandler({ modified: enqueueAllVolumes });
  const settingInformer = watch('Setting', (setting) => [['setting', setting.metadata.name]]);
  settingInformer.addHandler({ modified: enqueueAllVolumes });
  watch('InstanceManager', (manager) => [['node', manager.spec.nodeID]]);

  for (const queue of queues.values()) queue.start();
  await Promise.all(informers.map((informer) => informer.start()));
  for (const name of settingKeys()) enqueue('setting', name);
  for (const endpoint of endpoints) enqueue('node', endpoint.nodeID);
  monitors.start();
  const shareManagers = await startShareManagerController({
    store,
    namespace,
    log,
    instanceManagers: options.instanceManagers,
    leases: options.shareManagerLeases,
    services: options.shareManagerServices,
    hosting: options.shareManagerHosting,
    leaseDirectory:
      options.shareManagerLeaseDirectory ??
      path.join(os.tmpdir(), 'hornbill-share-manager-leases', namespace),
    // NFSv4.0 too: userspace clients such as libnfs speak only 4.0 (kernel clients use 4.1).
    nfsOptions: 'min-version=4.0',
  });
  log({
    level: 'info',
    component: 'hornbill-controllers',
    message: 'controllers started',
    nodes: endpoints.map((endpoint) => endpoint.nodeID),
  });

  return {
    statistics: () =>
      [...queues.entries()].map(([controller, queue]) => ({
        controller,
        succeeded: queue.counts.succeeded,
        failed: queue.counts.failed,
        depth: queue.length,
      })),
    async stop() {
      await shareManagers.stop();
      monitors.stop();
      await Promise.all(informers.map((informer) => informer.stop().catch(() => {})));
      await Promise.all([...queues.values()].map((queue) => queue.stop()));
    },
    async idle() {
      for (;;) {
        await Promise.all([...queues.values()].map((queue) => queue.idle()));
        await shareManagers.idle();
        await new Promise((resolve) => setTimeout(resolve, 10));
        if ([...queues.values()].every((queue) => queue.length === 0)) return;
      }
    },
  };
}

export type { ControllerContext };
