import { HornbillError } from '../../errors.ts';
import { type Logger, type LogLevel, silentLogger } from '../../logging.ts';
import type { IoStats } from '../../metrics/io-stats.ts';
import type { LayerInfo } from '../../storage/replica-store.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import { type DiskStat, diskStat } from './disk-stats.ts';
import {
  type EngineControlStatus,
  EngineInstance,
  type Frontends,
  type PurgeState,
} from './engine-instance.ts';
import * as engineRequests from './engine-requests.ts';
import type { Instance, InstanceHost } from './instance.ts';
import { prepareDisks, startFrontends } from './instance-manager-startup.ts';
import {
  API_VERSION,
  type DeleteResult,
  type EngineStatusView,
  type InstanceManagerInfo,
  type InstanceManagerOptions,
} from './instance-manager-types.ts';
import { InstanceRegistry } from './instance-registry.ts';
import { instanceExists, sameEngineSpec, sameReplicaSpec } from './instance-specs.ts';
import { DEFAULT_LOG_HISTORY_RECORDS, LogHistory } from './log-history.ts';
import { PortAllocator } from './port-allocator.ts';
import { checkFailpoint, ReplicaWriteFailpoint } from './replica-failpoint.ts';
import { ReplicaFolders } from './replica-folders.ts';
import { ReplicaInstance } from './replica-instance.ts';
import { ShareManagerHost } from './share-manager-host.ts';
import type { InstanceEvent, InstanceKind, InstanceView, LogSource } from './types.ts';
import {
  dataDirectoryName,
  diskPath,
  type EngineSpecInput,
  engineSpec,
  instanceName,
  type ReplicaSpecInput,
  replicaDirectory,
  replicaSpec,
} from './validation.ts';

export type { DeleteResult, EngineStatusView, InstanceManagerInfo, InstanceManagerOptions };
export { API_VERSION };

/**
 * The instance manager of one node (DESIGN.md §1): runs the node's replicas (each in its
 * own worker thread) and engines (each a ChannelBlockDevice, its engine in a worker thread
 * by default), offers the engines on one iSCSI portal and one NBD server, and reports
 * state, logs and disk usage. The gRPC service (grpc-service.ts) is a thin layer over it.
 *
 * ```ts
 * const manager = await InstanceManager.start({ nodeName: 'node-1', address: '127.0.0.11', disks: ['/data'] });
 * await manager.createReplica({ name: 'pvc-1-r-1', volumeName: 'pvc-1', sizeBytes: 1 << 30,
 *   diskPath: '/data', dataDirectoryName: 'pvc-1-3f2a' });
 * await manager.close();
 * ```
 *
 * Every method validates its input (validation.ts) and changes nothing when it throws.
 * Create is idempotent (same spec → the existing instance), and so are start, stop and
 * delete.
 */
export class InstanceManager {
  readonly nodeName: string;
  readonly address: string;
  readonly disks: readonly string[];
  readonly counters = {
    replicasCreated: 0,
    enginesCreated: 0,
    instancesDeleted: 0,
    replicaThreadFailures: 0,
    engineFailures: 0,
    instanceStartFailures: 0,
    replicaFoldersRemoved: 0,
  };
  private readonly options: InstanceManagerOptions;
  private readonly log: Logger;
  private readonly instances: InstanceRegistry;
  private readonly diskIds: Map<string, string>;
  private readonly ports: PortAllocator;
  private readonly frontends: Frontends;
  private readonly host: InstanceHost;
  private readonly startedAt = new Date().toISOString();
  private readonly failpoint: ReplicaWriteFailpoint;
  private readonly folders = new ReplicaFolders((directory) => {
    this.counters.replicaFoldersRemoved++;
    this.log('info', 'replica folder removed', { directory });
  });
  private closing = false;
  /** The node's share managers (RWX NFS servers): listed apart from engines and replicas. */
  readonly shareManagers: ShareManagerHost;

  private constructor(options: InstanceManagerOptions, diskIds: Map<string, string>, frontends: Frontends) {
    this.options = options;
    this.nodeName = options.nodeName;
    this.address = options.address;
    this.disks = [...diskIds.keys()];
    this.diskIds = diskIds;
    this.frontends = frontends;
    this.log = options.log ?? silentLogger;
    this.ports = new PortAllocator({ host: options.address, range: options.replicaPorts });
    this.instances = new InstanceRegistry(this.log, this.counters);
    this.failpoint = new ReplicaWriteFailpoint(options.failpoint);
    this.host = {
      nodeName: options.nodeName,
      address: options.address,
      changed: (instance) => this.instances.changed(instance),
      failed: (instance) => {
        if (instance.kind === 'replica') this.counters.replicaThreadFailures++;
        else this.counters.engineFailures++;
      },
      log: (instance, level, message, details, source) =>
        this.record(instance, level, message, details, source),
    };
    this.shareManagers = new ShareManagerHost({
      nodeName: options.nodeName,
      disks: this.disks,
      log: this.log,
      deviceHost: options.shareManagerDeviceHost,
      command: options.shareManagerCommand,
    });
  }

  /** Prepares the disks and starts the iSCSI portal and the NBD server on the node address. */
  static async start(options: InstanceManagerOptions): Promise<InstanceManager> {
    const log = options.log ?? silentLogger;
    if (options.disks.length === 0)
      throw new HornbillError('INVALID_ARGUMENT', 'an instance manager needs a disk');
    checkFailpoint(options.failpoint);
    const diskIds = prepareDisks(options.disks);
    const frontends = await startFrontends(options, log);
    const manager = new InstanceManager(options, diskIds, frontends);
    if (manager.failpoint.isArmed) log('warn', 'test failpoint armed', { failpoint: options.failpoint });
    return manager;
  }

  info(): InstanceManagerInfo {
    return {
      nodeName: this.nodeName,
      address: this.address,
      iscsi: { host: this.address, port: this.frontends.iscsiPort },
      nbd: { host: this.address, port: this.frontends.nbdPort },
      diskPaths: [...this.disks],
      replicaPorts: this.ports.range,
      apiVersion: API_VERSION,
      startedAt: this.startedAt,
      counters: {
        ...this.counters,
        instances: this.instances.size,
        watchers: this.instances.watcherCount,
        reservedReplicaPorts: this.ports.reservedPorts.length,
        iscsiConnections: this.frontends.iscsi.connectionCount,
        nbdConnections: this.frontends.nbd.stats().connectionsOpen,
        ...this.shareManagers.counters,
        shareManagers: this.shareManagers.size,
        shareManagerDeviceAttach: this.shareManagers.canAttachDevices ? 1 : 0,
      },
    };
  }

  // ── replicas ─────────────────────────────────────────────────────────────────────────

  async createReplica(input: ReplicaSpecInput): Promise<InstanceView> {
    this.checkOpen();
    const spec = replicaSpec(input, this.disks);
    const existing = this.instances.get(spec.name);
    if (existing !== undefined) {
      if (!(existing instanceof ReplicaInstance) || !sameReplicaSpec(existing.spec, spec))
        throw instanceExists(existing, spec);
      await existing.queue.idle();
      return existing.view();
    }
    this.instances.checkFolderFree(spec);
    this.checkCapacity();
    const directory = replicaDirectory(spec.diskPath, spec.dataDirectoryName);
    this.folders.checkNotRemoving(directory, spec.name);
    const instance = new ReplicaInstance(
      {
        spec,
        directory,
        ports: this.ports,
        heapLimitMb: this.options.replicaHeapLimitMb ?? 1024,
        startTimeoutMs: this.options.replicaStartTimeoutMs ?? 120_000,
        stopTimeoutMs: this.options.stopTimeoutMs ?? 30_000,
        heartbeatTimeoutMs: this.options.replicaHeartbeatTimeoutMs ?? 60_000,
        takeFailpoint: () => this.failpoint.take(spec.name),
      },
      this.host,
      this.newLogs(spec.name),
    );
    this.instances.set(spec.name, instance);
    this.counters.replicasCreated++;
    await this.startInstance(instance);
    return instance.view();
  }

  async startReplica(name: unknown): Promise<InstanceView> {
    this.checkOpen();
    const instance = this.instances.find(name, 'replica');
    await this.startInstance(instance);
    return instance.view();
  }

  async stopReplica(name: unknown): Promise<InstanceView> {
    const instance = this.instances.find(name, 'replica');
    await instance.queue.run(() => instance.stop());
    return instance.view();
  }

  /**
   * Stops and forgets a replica; with `removeData`, deletes its folder. A name this process
   * does not know succeeds with found false; with removeData, diskPath and
   * dataDirectoryName, the folder is deleted anyway (clean-up after a restart).
   */
  async deleteReplica(request: {
    name: unknown;
    removeData?: boolean;
    diskPath?: unknown;
    dataDirectoryName?: unknown;
  }): Promise<DeleteResult> {
    const name = instanceName(request.name);
    const disk = (request.diskPath ?? '') === '' ? undefined : diskPath(request.diskPath, this.disks);
    const folder =
      (request.dataDirectoryName ?? '') === '' ? undefined : dataDirectoryName(request.dataDirectoryName);
    const instance = this.instances.get(name);
    if (instance !== undefined && !(instance instanceof ReplicaInstance))
      throw new HornbillError('INVALID_ARGUMENT', `${name} is an engine, not a replica`, {
        field: 'name',
        name,
      });
    if (instance === undefined) {
      if (request.removeData !== true || disk === undefined || folder === undefined)
        return { found: false, dataRemoved: false };
      return { found: false, dataRemoved: await this.removeLeftOverFolder(disk, folder) };
    }
    return instance.queue.run(async () => {
      if (this.instances.get(name) !== instance) return { found: false, dataRemoved: false };
      await instance.stop();
      this.instances.forget(instance);
      this.ports.release(instance.port);
      let dataRemoved = false;
      if (request.removeData === true) {
        await this.folders.remove(instance.directory);
        dataRemoved = true;
      }
      return { found: true, dataRemoved };
    });
  }

  /** Revision counter, size and chain, asked from the replica through its data port. */
  async replicaInfo(name: unknown): Promise<ReplicaInfo> {
    return this.instances.find(name, 'replica').info();
  }

  // ── engines ──────────────────────────────────────────────────────────────────────────

  async createEngine(input: EngineSpecInput): Promise<InstanceView> {
    this.checkOpen();
    const spec = engineSpec(input, this.options.defaultWorkers ?? 1);
    const existing = this.instances.get(spec.name);
    if (existing !== undefined) {
      if (!(existing instanceof EngineInstance) || !sameEngineSpec(existing.spec, spec))
        throw instanceExists(existing, spec);
      await existing.queue.idle();
      return existing.view();
    }
    this.instances.checkVolumeFree(spec);
    this.checkCapacity();
    const instance = new EngineInstance(
      {
        spec,
        frontends: this.frontends,
        statusIntervalMs: this.options.engineStatusIntervalMs ?? 1000,
        localReplicaThread: (addresses) => this.instances.runningReplicaThread(this.address, addresses),
      },
      this.host,
      this.newLogs(spec.name),
    );
    this.instances.set(spec.name, instance);
    this.counters.enginesCreated++;
    await this.startInstance(instance);
    return instance.view();
  }

  async startEngine(name: unknown): Promise<InstanceView> {
    this.checkOpen();
    const instance = this.instances.find(name, 'engine');
    await this.startInstance(instance);
    return instance.view();
  }

  async stopEngine(name: unknown): Promise<InstanceView> {
    const instance = this.instances.find(name, 'engine');
    await instance.queue.run(() => instance.stop());
    return instance.view();
  }

  /** Takes the volume off its frontend, closes the engine and forgets it. */
  async deleteEngine(name: unknown): Promise<DeleteResult> {
    const checked = instanceName(name);
    const instance = this.instances.get(checked);
    if (instance === undefined) return { found: false, dataRemoved: false };
    if (!(instance instanceof EngineInstance))
      throw new HornbillError('INVALID_ARGUMENT', `${checked} is a replica, not an engine`, {
        field: 'name',
      });
    return instance.queue.run(async () => {
      if (this.instances.get(checked) !== instance) return { found: false, dataRemoved: false };
      await instance.stop();
      this.instances.forget(instance);
      return { found: true, dataRemoved: false };
    });
  }

  async engineStatus(name: unknown): Promise<EngineStatusView> {
    return engineRequests.engineStatus(this.instances, name);
  }

  async createSnapshot(name: unknown, snapshot: unknown, labels?: unknown): Promise<LayerInfo> {
    return engineRequests.createSnapshot(this.instances, name, snapshot, labels);
  }

  async deleteSnapshot(name: unknown, snapshot: unknown): Promise<void> {
    return engineRequests.deleteSnapshot(this.instances, name, snapshot);
  }

  async listSnapshots(name: unknown): Promise<LayerInfo[]> {
    return engineRequests.listSnapshots(this.instances, name);
  }

  async hashSnapshot(name: unknown, snapshot: unknown): Promise<string> {
    return engineRequests.hashSnapshot(this.instances, name, snapshot);
  }

  async revertSnapshot(name: unknown, snapshot: unknown): Promise<void> {
    return engineRequests.revertSnapshot(this.instances, name, snapshot);
  }

  async purgeSnapshots(name: unknown): Promise<PurgeState> {
    return engineRequests.purgeSnapshots(this.instances, name);
  }

  async expandEngine(name: unknown, size: unknown): Promise<void> {
    return engineRequests.expandEngine(this.instances, name, size);
  }

  async addReplica(
    name: unknown,
    request: { address: unknown; bandwidthBytesPerSecond?: unknown; wait?: boolean },
  ): Promise<void> {
    return engineRequests.addReplica(this.instances, name, request);
  }

  async cloneSnapshot(
    name: unknown,
    request: { sources: unknown; snapshot: unknown; origin: unknown; bandwidthBytesPerSecond?: unknown },
  ): Promise<void> {
    return engineRequests.cloneSnapshot(this.instances, name, request);
  }

  async removeReplica(name: unknown, address: unknown): Promise<void> {
    return engineRequests.removeReplica(this.instances, name, address);
  }

  // ── both kinds ───────────────────────────────────────────────────────────────────────

  get(name: unknown): InstanceView {
    return this.instances.find(name).view();
  }

  /** Every engine with its frontend I/O counters and last polled status (for /metrics). */
  engineMetrics(): { view: InstanceView; ioStats: IoStats; status: EngineControlStatus | undefined }[] {
    return this.instances.engines().map((engine) => ({
      view: engine.view(),
      ioStats: engine.ioStats,
      status: engine.polledStatus,
    }));
  }

  list(kind?: unknown): InstanceView[] {
    return this.instances.list(kind);
  }

  /** Calls `listener` with every later change; returns the current instances and how to stop. */
  watch(listener: (event: InstanceEvent) => void): { initial: InstanceView[]; unsubscribe: () => void } {
    this.checkOpen();
    return this.instances.watch(listener);
  }

  /** The log history of an instance (StreamLogs). */
  logs(name: unknown): LogHistory {
    return this.instances.find(name).logs;
  }

  /**
   * Files a record the engine wrote itself (a JSON line of its thread's stderr, see
   * engine-log-tap.ts) under the engine instance serving its volume. Returns whether one did.
   */
  ingestEngineRecord(record: Record<string, unknown>): boolean {
    const { volume, level, message, time: _time, component: _component, ...details } = record;
    if (typeof volume !== 'string' || typeof message !== 'string') return false;
    const engine = this.instances.engineServing(volume);
    if (engine === undefined) return false;
    const known = level === 'debug' || level === 'info' || level === 'warn' || level === 'error';
    engine.logs.append(known ? level : 'info', message, details, 'engine');
    return true;
  }

  async diskStats(paths: unknown[] = []): Promise<DiskStat[]> {
    const wanted =
      paths.length === 0
        ? [...this.disks]
        : paths.map((value, index) => diskPath(value, this.disks, `disk_paths[${index}]`));
    const stats: DiskStat[] = [];
    for (const disk of new Set(wanted)) {
      stats.push(await diskStat(disk, this.diskIds.get(disk)!, this.instances.replicaFolders(disk)));
    }
    return stats;
  }

  /** Stops every engine, then every replica (stores closed), then the frontends. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    // Share managers first: one exporting a device uses this node's engine.
    await this.shareManagers.close();
    const all = [...this.instances.values()];
    const stopAll = (kind: InstanceKind) =>
      Promise.all(
        all
          .filter((instance) => instance.kind === kind)
          .map((instance) =>
            instance.queue
              .run(() => instance.stop())
              .catch((error) =>
                this.log('error', 'stopping an instance failed', {
                  instance: instance.name,
                  error: String(error),
                }),
              ),
          ),
      );
    await stopAll('engine');
    await stopAll('replica');
    for (const instance of all) instance.logs.end();
    this.instances.clearWatchers();
    await this.frontends.iscsi.close();
    await this.frontends.nbd.close();
    this.log('info', 'instance manager stopped', { node: this.nodeName, instances: all.length });
  }

  get isClosing(): boolean {
    return this.closing;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────

  private async startInstance(instance: Instance): Promise<void> {
    try {
      await instance.queue.run(() => instance.start());
    } catch (error) {
      this.counters.instanceStartFailures++;
      throw error;
    }
  }

  private checkOpen(): void {
    if (this.closing) throw new HornbillError('INSTANCE_MANAGER_CLOSED', 'the instance manager is stopping');
  }

  private checkCapacity(): void {
    const limit = this.options.maxInstances ?? 512;
    if (this.instances.size >= limit) {
      throw new HornbillError(
        'INSTANCE_LIMIT_REACHED',
        `this instance manager already runs ${limit} instances`,
        {
          limit,
        },
      );
    }
  }

  private newLogs(name: string): LogHistory {
    return new LogHistory(name, this.options.logHistoryRecords ?? DEFAULT_LOG_HISTORY_RECORDS);
  }

  private record(
    instance: Instance,
    level: LogLevel,
    message: string,
    details: Record<string, unknown>,
    source: LogSource,
  ): void {
    const record = instance.logs.append(level, message, details, source);
    this.log(level, message, { instance: instance.name, kind: instance.kind, source, ...record.details });
  }

  private removeLeftOverFolder(disk: string, folder: string): Promise<boolean> {
    const directory = replicaDirectory(disk, folder);
    return this.folders.removeLeftOver(directory, this.instances.replicaUsing(directory));
  }
}
