import type { Worker } from 'node:worker_threads';
import { HornbillError, isHornbillError } from '../../errors.ts';
import { silentLogger } from '../../logging.ts';
import { IoStats } from '../../metrics/io-stats.ts';
import type { LayerInfo } from '../../storage/replica-store.ts';
import { ChannelBlockDevice } from '../engine/channel-block-device.ts';
import type { CloneProgress } from '../engine/clone.ts';
import type { RebuildProgress } from '../engine/rebuild.ts';
import type { IscsiTarget } from '../iscsi/target.ts';
import { IQN_PREFIX } from '../iscsi/target.ts';
import type { NbdServer } from '../nbd/server.ts';
import { ReplicaClient } from '../protocol/replica-client.ts';
import { hostedIn } from '../workers/lane-thread.ts';
import { Instance, type InstanceHost } from './instance.ts';
import { SerialQueue } from './instance-state.ts';
import type { LogHistory } from './log-history.ts';
import type { EngineSpec, InstanceView, ReplicaModeName, Robustness } from './types.ts';
import { parseReplicaAddress } from './validation.ts';

/** What the engine's control server answers to `status` (engine-control-server.ts). */
export interface EngineControlStatus {
  name: string;
  sizeBytes: number;
  robustness: Robustness;
  replicas: { address: string; mode: ReplicaModeName; local: boolean; error?: string }[];
  rebuild: RebuildProgress | null;
  clone: CloneProgress | null;
}

export interface PurgeState {
  isPurging: boolean;
  state: '' | 'purging' | 'done' | 'failed';
  error: string;
  purgedLayers: number;
  copiedBytes: number;
}

/** The frontends of the instance manager, shared by its engines. */
export interface Frontends {
  iscsi: IscsiTarget;
  iscsiPort: number;
  nbd: NbdServer;
  nbdPort: number;
}

export interface EngineInstanceOptions {
  spec: EngineSpec;
  frontends: Frontends;
  /** How often the engine's status is read to report mode and rebuild changes. */
  statusIntervalMs: number;
  /** The running replica instance of this node at one of `addresses` ("host:port"), and its thread. */
  localReplicaThread?: (addresses: string[]) => { name: string; thread: Worker } | undefined;
}

/** The longest a control call may wait for the engine (a rebuild of a large volume). */
const LONG_CONTROL_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
/** The longest a short control call (status, snapshot at an I/O boundary, chain) may take. */
const CONTROL_TIMEOUT_MS = 120_000;
/** No idle pings: a ping is a request, and the engine control server wants one at a time. */
const NO_PINGS = Number.MAX_SAFE_INTEGER;

/**
 * One engine: a ChannelBlockDevice (the engine in a worker thread behind the rings, or
 * inline with workers 0) offered on the instance manager's iSCSI portal or NBD server
 * under the volume's name. Its status is read every second so that replica mode,
 * robustness and rebuild changes reach watchers. When the engine's thread dies (its control
 * server stops answering: the connection breaks and a new one is refused), the instance
 * goes to `error`, its volume leaves the frontend and the device is closed; other
 * instances are not touched.
 *
 * Control calls go over connections of this instance's own, one request in flight per
 * connection: the engine's control server answers each request with the sequence number
 * of the last frame it parsed, so two requests in flight on one connection can get each
 * other's answers (reported; see docs/instance-manager.md).
 */
export class EngineInstance extends Instance {
  readonly kind = 'engine' as const;
  readonly spec: EngineSpec;
  private readonly options: EngineInstanceOptions;
  private device: ChannelBlockDevice | undefined;
  /** The frontend's I/O of this engine, kept across restarts of the engine (metrics). */
  readonly ioStats = new IoStats();
  /** The short-call control connection, and the queue that keeps one call at a time on it. */
  private controlClient: ReplicaClient | undefined;
  private readonly controlQueue = new SerialQueue();
  /**
   * The replicas the engine has now: the spec's, plus those added, minus those removed. A
   * restart (StartEngine) starts over these, not over the spec's first list.
   */
  private replicaAddresses: string[];
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private lastStatus: EngineControlStatus | undefined;

  /** The engine's status as last polled (robustness, modes, rebuild), if any. */
  get polledStatus(): EngineControlStatus | undefined {
    return this.lastStatus ?? undefined;
  }
  private frontendAttached = false;
  /** The replica instance whose thread runs the engine (inLocalReplicaThread); '' otherwise. */
  private laneHostReplica = '';
  private purge: PurgeState = { isPurging: false, state: '', error: '', purgedLayers: 0, copiedBytes: 0 };
  private expanding = false;
  private lastExpansionError = '';

  constructor(options: EngineInstanceOptions, host: InstanceHost, logs: LogHistory) {
    super(options.spec.name, host, logs);
    this.options = options;
    this.spec = options.spec;
    this.replicaAddresses = [...options.spec.replicaAddresses];
  }

  get port(): number {
    if (this.spec.frontend === 'iscsi') return this.options.frontends.iscsiPort;
    if (this.spec.frontend === 'nbd') return this.options.frontends.nbdPort;
    return 0;
  }

  get endpoint(): string {
    const where = `${this.host.address}:${this.port}`;
    if (this.spec.frontend === 'iscsi') return `iscsi://${where}/${IQN_PREFIX}:${this.spec.volumeName}/0`;
    if (this.spec.frontend === 'nbd') return `nbd://${where}/${this.spec.volumeName}`;
    return '';
  }

  async start(): Promise<void> {
    if (this.state === 'running' || this.state === 'starting') return;
    this.setState('starting');
    try {
      const host =
        this.spec.inLocalReplicaThread && this.spec.workers === 1
          ? this.options.localReplicaThread?.(this.replicaAddresses)
          : undefined;
      this.laneHostReplica = host?.name ?? '';
      const device = await ChannelBlockDevice.open({
        ...(host === undefined ? {} : { laneThread: hostedIn(host.thread) }),
        workers: this.spec.workers,
        name: this.spec.volumeName,
        replicas: this.replicaAddresses.map((text) => {
          const address = parseReplicaAddress(text, 'replicaAddresses');
          return { address, local: address.host === this.host.address };
        }),
        replicaTimeoutMs: this.spec.replicaTimeoutMs,
        preferLocalReplica: this.spec.preferLocalReplica,
        control: { host: '127.0.0.1', port: 0 },
        stats: this.ioStats,
      });
      this.device = device;
      const status = await this.controlCall<EngineControlStatus>('status');
      this.lastStatus = status;
      if (status.robustness === 'faulted') {
        throw new HornbillError('DEVICE_NOT_READY', `volume ${this.spec.volumeName}: no replica is usable`, {
          replicas: status.replicas,
        });
      }
      if (device.sizeBytes < this.spec.sizeBytes) {
        throw new HornbillError(
          'INVALID_ARGUMENT',
          `the replicas hold ${device.sizeBytes} bytes, less than the ${this.spec.sizeBytes} asked for`,
          { heldBytes: device.sizeBytes, sizeBytes: this.spec.sizeBytes },
        );
      }
      this.attachFrontend(device);
    } catch (error) {
      await this.release();
      this.setState('error', error);
      throw error;
    }
    this.poller = setInterval(() => void this.poll(), this.options.statusIntervalMs);
    this.poller.unref();
    this.log('info', 'engine serving', {
      frontend: this.spec.frontend,
      endpoint: this.endpoint,
      robustness: this.lastStatus?.robustness,
      replicas: this.lastStatus?.replicas,
      ...(this.laneHostReplica === '' ? {} : { inThreadOfReplica: this.laneHostReplica }),
    });
    this.setState('running');
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.state === 'error') {
      this.setState('stopped');
      return;
    }
    this.setState('stopping');
    await this.release();
    this.setState('stopped');
  }

  /** Calls a method of the engine's control server (engine-control-server.ts). */
  async control<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    this.requireRunning();
    return this.controlCall<T>(method, params);
  }

  /** One call at a time on the short-call connection, opened (again) when needed. */
  private controlCall<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const device = this.device;
    if (device === undefined)
      return Promise.reject(
        new HornbillError('INSTANCE_NOT_RUNNING', `engine ${this.name} is ${this.state}`),
      );
    return this.controlQueue.run(async () => {
      if (this.controlClient === undefined || this.controlClient.failed) {
        this.controlClient?.close();
        this.controlClient = undefined;
        this.controlClient = await connectControl(device.controlPort, CONTROL_TIMEOUT_MS);
      }
      return this.controlClient.control<T>(method, params);
    });
  }

  async status(): Promise<EngineControlStatus> {
    const status = await this.control<EngineControlStatus>('status');
    this.observe(status);
    return status;
  }

  async snapshot(name: string, labels: Record<string, string> = {}): Promise<LayerInfo> {
    const info = await this.control<LayerInfo>('snapshot', { name, labels });
    this.log('info', 'snapshot taken', { snapshot: name });
    return info;
  }

  /**
   * Calls a long-running method (rebuild, purge, hash, expand) on a connection of its own,
   * with a timeout of days: on the short-call connection it would hold back the status
   * reads for as long, and outlive that connection's timeout.
   */
  async longControl<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    this.requireRunning();
    const client = await connectControl(this.device!.controlPort, LONG_CONTROL_TIMEOUT_MS);
    try {
      return await client.control<T>(method, params);
    } finally {
      client.close();
    }
  }

  async purgeSnapshots(): Promise<PurgeState> {
    this.requireRunning();
    if (this.purge.isPurging) return { ...this.purge };
    this.purge = { ...this.purge, isPurging: true, state: 'purging', error: '' };
    this.host.changed(this);
    try {
      const result = await this.longControl<{ purgedLayers?: number; copiedBytes?: number } | null>('purge');
      this.purge = {
        isPurging: false,
        state: 'done',
        error: '',
        purgedLayers: result?.purgedLayers ?? 0,
        copiedBytes: result?.copiedBytes ?? 0,
      };
    } catch (error) {
      this.purge = { ...this.purge, isPurging: false, state: 'failed', error: (error as Error).message };
      throw error;
    } finally {
      this.host.changed(this);
    }
    return { ...this.purge };
  }

  /**
   * Reverts the volume to a snapshot on every replica (engine.ts `revert`). Only an engine
   * started with frontend `none` may: under a connected initiator the data would change
   * beneath its cache. Runs on a connection of its own, as a purge does.
   */
  async revertSnapshot(snapshot: string): Promise<void> {
    this.requireRunning();
    if (this.spec.frontend !== 'none') {
      throw new HornbillError(
        'ENGINE_FRONTEND_ACTIVE',
        `engine ${this.name} serves volume ${this.spec.volumeName} over ${this.spec.frontend}; a revert needs the engine started with frontend none`,
        { frontend: this.spec.frontend },
      );
    }
    await this.longControl('revert', { name: snapshot });
    this.log('info', 'volume reverted to a snapshot', { snapshot });
    await this.poll();
  }

  get purgeState(): PurgeState {
    return { ...this.purge };
  }

  get expansion(): { isExpanding: boolean; lastError: string } {
    return { isExpanding: this.expanding, lastError: this.lastExpansionError };
  }

  async expand(sizeBytes: number): Promise<void> {
    this.requireRunning();
    if (this.expanding)
      throw new HornbillError('INSTANCE_CONFLICT', `engine ${this.name} is already expanding`);
    this.expanding = true;
    this.host.changed(this);
    try {
      await this.longControl('expand', { sizeBytes });
      await this.device?.refreshSize();
      this.lastExpansionError = '';
      this.log('info', 'volume expanded', { sizeBytes });
    } catch (error) {
      this.lastExpansionError = (error as Error).message;
      throw error;
    } finally {
      this.expanding = false;
      this.host.changed(this);
    }
  }

  /**
   * Adds a replica and rebuilds it. With `wait`, resolves when the rebuild is done;
   * otherwise as soon as the engine reports this rebuild (or the request failed).
   * The rebuild runs on its own control connection: it may take hours.
   */
  async addReplica(
    address: string,
    options: { bandwidthBytesPerSecond: number; wait: boolean },
  ): Promise<void> {
    this.requireRunning();
    const target = parseReplicaAddress(address, 'address');
    const startedAt = new Date().toISOString();
    this.log('info', 'adding a replica', {
      address,
      bandwidthBytesPerSecond: options.bandwidthBytesPerSecond,
    });
    if (!this.replicaAddresses.includes(address)) this.replicaAddresses.push(address);
    const done = this.longControl<RebuildProgress>('addReplica', {
      host: target.host,
      port: target.port,
      local: target.host === this.host.address,
      ...(options.bandwidthBytesPerSecond > 0
        ? { bandwidthBytesPerSecond: options.bandwidthBytesPerSecond }
        : {}),
    });
    done.then(
      (progress) => {
        this.log('info', 'replica rebuilt', { address, ...progress });
        void this.poll();
      },
      (error) => {
        this.log('warn', 'adding a replica failed', { address, error: (error as Error).message });
        void this.poll();
      },
    );
    if (options.wait) {
      await done;
      return;
    }
    await this.untilReported(done, (status) => {
      const rebuild = status.rebuild;
      return rebuild !== null && rebuild.target === address && rebuild.startedAt >= startedAt;
    });
  }

  /**
   * Resolves once the engine's status shows what a long call started (`reported`), or the
   * call settled (its error is thrown): a long operation answers when it has begun.
   */
  private async untilReported(
    done: Promise<unknown>,
    reported: (status: EngineControlStatus) => boolean,
  ): Promise<void> {
    const settled = done.then(
      () => true,
      () => true,
    );
    for (;;) {
      const outcome = await Promise.race([
        settled,
        new Promise<false>((resolve) => setTimeout(resolve, 50, false)),
      ]);
      if (outcome) {
        await done;
        return;
      }
      const status = await this.status().catch(() => undefined);
      if (status !== undefined && reported(status)) return;
    }
  }

  /**
   * Fills this (new, empty) volume from a snapshot of another volume whose replicas are at
   * `sources` (clone.ts). Answers as soon as the engine reports the clone (or it failed);
   * follow it in the engine status. The copy runs on a control connection of its own.
   */
  async cloneSnapshot(request: {
    sources: string[];
    snapshot: string;
    origin: string;
    bandwidthBytesPerSecond: number;
  }): Promise<void> {
    this.requireRunning();
    const startedAt = new Date().toISOString();
    this.log('info', 'cloning', {
      origin: request.origin,
      snapshot: request.snapshot,
      sources: request.sources,
    });
    const done = this.longControl<CloneProgress>('clone', {
      sources: request.sources.map((source) => parseReplicaAddress(source, 'source_replica_addresses')),
      snapshot: request.snapshot,
      origin: request.origin,
      ...(request.bandwidthBytesPerSecond > 0
        ? { bandwidthBytesPerSecond: request.bandwidthBytesPerSecond }
        : {}),
    });
    done.then(
      (progress) => this.log('info', 'clone done', { ...progress }),
      (error) =>
        this.log('warn', 'clone failed', { origin: request.origin, error: (error as Error).message }),
    );
    await this.untilReported(done, (status) => {
      const clone = status.clone;
      return (
        clone !== null &&
        clone.origin === request.origin &&
        clone.startedAt >= startedAt &&
        clone.state !== 'preparing'
      );
    });
  }

  async removeReplica(address: string): Promise<void> {
    const target = parseReplicaAddress(address, 'address');
    await this.control('removeReplica', { host: target.host, port: target.port });
    this.replicaAddresses = this.replicaAddresses.filter((entry) => entry !== address);
    this.log('info', 'replica removed from the volume', { address });
    await this.poll();
  }

  view(): InstanceView {
    const status = this.lastStatus;
    const modes: Record<string, ReplicaModeName> = {};
    for (const replica of status?.replicas ?? []) modes[replica.address] = replica.mode;
    return {
      ...this.baseView(),
      volumeName: this.spec.volumeName,
      port: this.port,
      endpoint: this.state === 'running' ? this.endpoint : '',
      sizeBytes: this.device?.sizeBytes ?? this.spec.sizeBytes,
      engine: {
        frontend: this.spec.frontend,
        workers: this.spec.workers,
        replicaTimeoutMs: this.spec.replicaTimeoutMs,
        preferLocalReplica: this.spec.preferLocalReplica,
        inLocalReplicaThread: this.spec.inLocalReplicaThread,
        laneHostReplica: this.state === 'running' ? this.laneHostReplica : '',
        replicaAddresses: [...this.replicaAddresses],
        robustness: this.state === 'running' ? (status?.robustness ?? '') : '',
        replicaModeMap: this.state === 'running' ? modes : {},
        isRebuilding: isRebuilding(status?.rebuild ?? null),
      },
    };
  }

  /**
   * Reads the status; reports a change of robustness, replica modes or rebuild state. A
   * status that cannot be read because the control server is gone (the connection broke
   * and a new one is refused) means the engine's thread died.
   */
  private async poll(): Promise<void> {
    const device = this.device;
    if (this.state !== 'running' || device === undefined || this.polling) return;
    this.polling = true;
    try {
      await this.pollOnce(device);
    } finally {
      this.polling = false;
    }
  }

  private async pollOnce(device: ChannelBlockDevice): Promise<void> {
    try {
      this.observe(await this.controlCall<EngineControlStatus>('status'));
    } catch (error) {
      if (this.state !== 'running' || this.device !== device) return;
      if (!ReplicaClient.isConnectionFailure(error)) {
        this.log('warn', 'reading the engine status failed', { error: (error as Error).message });
        return;
      }
      try {
        await this.controlCall<EngineControlStatus>('status');
      } catch (again) {
        if (ReplicaClient.isConnectionFailure(again)) this.engineFailed(device, again as HornbillError);
      }
    }
  }

  private observe(status: EngineControlStatus): void {
    const previous = this.lastStatus;
    this.lastStatus = status;
    if (previous !== undefined && summary(previous) === summary(status)) return;
    const before = new Map((previous?.replicas ?? []).map((replica) => [replica.address, replica.mode]));
    for (const replica of status.replicas) {
      if (before.get(replica.address) !== replica.mode) {
        this.log(replica.mode === 'ERR' ? 'warn' : 'info', 'replica mode changed', {
          address: replica.address,
          from: before.get(replica.address) ?? null,
          mode: replica.mode,
          ...(replica.error === undefined ? {} : { reason: replica.error }),
        });
      }
    }
    if (previous?.robustness !== status.robustness)
      this.log(status.robustness === 'healthy' ? 'info' : 'warn', `volume ${status.robustness}`, {});
    this.host.changed(this);
  }

  private attachFrontend(device: ChannelBlockDevice): void {
    const { iscsi, nbd } = this.options.frontends;
    if (this.spec.frontend === 'iscsi') iscsi.addVolume(this.spec.volumeName, device);
    else if (this.spec.frontend === 'nbd') nbd.addExport(this.spec.volumeName, device);
    this.frontendAttached = this.spec.frontend !== 'none';
  }

  /** Takes the volume off its frontend (its sessions end) and closes the device. */
  private async release(): Promise<void> {
    if (this.poller !== undefined) clearInterval(this.poller);
    this.poller = undefined;
    const device = this.device;
    this.device = undefined;
    const client = this.controlClient;
    this.controlClient = undefined;
    client?.close();
    if (this.frontendAttached) {
      this.frontendAttached = false;
      const { iscsi, nbd } = this.options.frontends;
      try {
        if (this.spec.frontend === 'iscsi') await iscsi.removeVolume(this.spec.volumeName);
        else await nbd.removeExport(this.spec.volumeName);
      } catch (error) {
        if (
          !isHornbillError(error, 'ISCSI_VOLUME_NOT_FOUND') &&
          !isHornbillError(error, 'NBD_EXPORT_NOT_FOUND')
        )
          this.log('warn', 'removing the volume from its frontend failed', {
            error: (error as Error).message,
          });
      }
    }
    if (device !== undefined) {
      try {
        await device.close();
      } catch (error) {
        this.log('warn', 'closing the engine failed', { error: (error as Error).message });
      }
    }
  }

  /** The control server is gone while running: the engine's thread died. */
  private engineFailed(device: ChannelBlockDevice, error: HornbillError): void {
    if (this.state !== 'running' || this.device !== device) return;
    this.host.failed(this);
    this.log('error', 'engine failed: its control server is gone', { error: error.message });
    this.setState('error', new HornbillError('INSTANCE_FAILED', `engine failed: ${error.message}`));
    void this.queue.run(() => this.release());
  }
}

async function connectControl(port: number, timeoutMs: number): Promise<ReplicaClient> {
  const client = new ReplicaClient({
    address: { host: '127.0.0.1', port },
    log: silentLogger,
    timeoutMs,
    pingIntervalMs: NO_PINGS,
  });
  try {
    await client.connect();
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

function isRebuilding(rebuild: RebuildProgress | null): boolean {
  return rebuild !== null && rebuild.state !== 'done' && rebuild.state !== 'failed';
}

function summary(status: EngineControlStatus): string {
  return JSON.stringify([
    status.robustness,
    status.sizeBytes,
    status.replicas.map((replica) => [replica.address, replica.mode]),
    status.rebuild === null ? null : [status.rebuild.target, status.rebuild.state],
  ]);
}
