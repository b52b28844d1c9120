/**
 * ShareManager: serves one RWX volume over NFSv4 with nfs-ganesha, for as long as it holds
 * the volume's lease.
 *
 * Start: take the lease (wait while another live holder has it, up to
 * `leaseAcquireTimeoutMs`: SHARE_MANAGER_LEASE_HELD) → check the NFS port is free → kill a
 * ganesha left over on this state folder → mount the device (or take the directory) →
 * write the ganesha configuration → start ganesha under the supervisor and wait until the
 * export answers → serve /healthz. While serving: the supervisor restarts a ganesha that
 * dies; a liveness probe (the NFS NULL call every `livenessIntervalMs`) kills a ganesha that
 * stops answering three times in a row, so the supervisor restarts it; the lease is renewed
 * only while the NFS server is up. Stop (SIGTERM): ganesha stopped, device unmounted, lease
 * released — in that order, so the next holder never mounts a volume still mounted here.
 *
 * Fatal while serving — the supervisor gives up (SHARE_MANAGER_NFS_FAILED) or the lease is
 * lost (SHARE_MANAGER_LEASE_LOST, fencing: the export stops at once) — cleans up the same
 * way and rejects `finished`.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { type LeaderElectionTiming, LeaderElector, systemClock } from '../resources/leader-election.ts';
import {
  checkGaneshaSettings,
  type GaneshaSettings,
  ganeshaPaths,
  renderGaneshaConfig,
  shareEndpoint,
} from './config.ts';
import { mountVolume, type ShareHostOperations, unmountVolume, type VolumeMountRequest } from './device.ts';
import { launchGanesha } from './ganesha-launch.ts';
import { reapStaleGanesha } from './ganesha-process.ts';
import { type HealthDocument, type HealthServer, startHealthServer } from './health.ts';
import { healthGatedLease, type LeaseClient } from './lease.ts';
import { probeNfsNull } from './nfs-probe.ts';
import { NfsSupervisor, type RestartPolicy } from './supervisor.ts';

export type ShareSource =
  | { kind: 'directory'; path: string }
  | ({ kind: 'device'; host: ShareHostOperations } & VolumeMountRequest);

export interface ShareManagerOptions {
  /** Volume, address, port, state folder and NFS options; `exportPath` is taken from `source`. */
  settings: Omit<GaneshaSettings, 'exportPath'>;
  source: ShareSource;
  lease: LeaseClient;
  leaseIdentity: string;
  leaseTiming?: Partial<LeaderElectionTiming>;
  /** How long to wait for another holder's lease to expire (default 60 s). */
  leaseAcquireTimeoutMs?: number;
  /** Port of /healthz on the share manager's address (0: any free port); undefined: none. */
  healthPort?: number;
  /** How long ganesha gets to answer after a start (default 30 s). */
  startTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL when ganesha is stopped (default 10 s). */
  stopTimeoutMs?: number;
  livenessIntervalMs?: number;
  restartPolicy?: RestartPolicy;
  log: Logger;
}

/** What the share manager announces when it is ready. */
export interface ShareManagerInfo {
  volume: string;
  endpoint: string;
  exportPath: string;
  nfsPid: number | undefined;
  startToReadyMs: number | undefined;
  leaseIdentity: string;
  health: string | undefined;
}

const LIVENESS_FAILURES_MAX = 3;

/** SHARE_MANAGER_PORT_IN_USE when something already listens on the NFS address and port. */
async function checkPortFree(host: string, port: number): Promise<void> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      const inUse = error.code === 'EADDRINUSE';
      reject(
        new HornbillError(
          inUse ? 'SHARE_MANAGER_PORT_IN_USE' : 'SHARE_MANAGER_CONFIG_INVALID',
          `cannot serve NFS on ${host}:${port}: ${error.message}`,
          { host, port, field: 'address' },
        ),
      );
    });
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve()));
  });
}

export class ShareManager {
  private readonly options: ShareManagerOptions;
  private readonly settings: GaneshaSettings;
  private readonly supervisor: NfsSupervisor;
  private readonly elector: LeaderElector;
  private readonly liveness = new AbortController();
  private health: HealthServer | undefined;
  private mounted = false;
  /** Set once cleaning up has begun (stop, fatal error, or a failed start). */
  private closing = false;
  private stopping: Promise<void> | undefined;
  private fatal: HornbillError | undefined;
  private leading: (() => void) | undefined;
  private settle!: { resolve(): void; reject(error: unknown): void };
  /** Resolves after stop(); rejects with the coded error after a fatal failure (cleaned up). */
  readonly finished: Promise<void>;

  private constructor(options: ShareManagerOptions) {
    this.options = options;
    const exportPath =
      options.source.kind === 'directory' ? options.source.path : options.source.mountDirectory;
    this.settings = checkGaneshaSettings({ ...options.settings, exportPath });
    this.finished = new Promise((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    this.finished.catch(() => {}); // the caller may only look at it later
    const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.supervisor = new NfsSupervisor({
      launch: (signal) =>
        launchGanesha({
          settings: this.settings,
          startTimeoutMs: options.startTimeoutMs ?? 30_000,
          stopTimeoutMs,
          log: options.log,
          signal,
        }),
      log: options.log,
      clock: systemClock,
      policy: options.restartPolicy,
      stopTimeoutMs,
      onFailed: (error) => this.fail(error),
    });
    const state = this.supervisor;
    this.elector = new LeaderElector({
      lease: healthGatedLease(options.lease, () => state.state !== 'restarting' && state.state !== 'failed'),
      identity: options.leaseIdentity,
      timing: options.leaseTiming,
      logger: options.log,
      onStartedLeading: () => this.leading?.(),
      onStoppedLeading: () => {
        if (!this.closing)
          this.fail(
            new HornbillError('SHARE_MANAGER_LEASE_LOST', 'the share manager lost its lease; export stopped'),
          );
      },
    });
  }

  /** Starts serving; resolves once the export answers (the ready line can be printed). */
  static async start(options: ShareManagerOptions): Promise<ShareManager> {
    const manager = new ShareManager(options);
    try {
      await manager.startServing();
    } catch (error) {
      await manager.cleanUp();
      throw error;
    }
    return manager;
  }

  info(): ShareManagerInfo {
    const { volume, address, port } = this.settings;
    return {
      volume,
      endpoint: shareEndpoint(address, port, volume),
      exportPath: this.settings.exportPath,
      nfsPid: this.supervisor.pid,
      startToReadyMs: this.supervisor.lastStartToReadyMs,
      leaseIdentity: this.options.leaseIdentity,
      health: this.health === undefined ? undefined : `http://${address}:${this.health.port}/healthz`,
    };
  }

  /** The /healthz document: state in the ShareManager resource's vocabulary. */
  status(): HealthDocument {
    const nfs = this.supervisor.state;
    const holding = this.elector.isLeader;
    const state =
      this.fatal !== undefined || nfs === 'failed'
        ? 'error'
        : this.stopping !== undefined
          ? 'stopping'
          : nfs === 'running' && holding && !this.closing
            ? 'running'
            : 'starting';
    return {
      healthy: state === 'running',
      state,
      ...this.info(),
      nfs: { state: nfs, restarts: this.supervisor.restarts },
      lease: { identity: this.options.leaseIdentity, holding },
      error: this.fatal?.toWire(),
    };
  }

  /** Stops ganesha, unmounts, releases the lease; resolves `finished`. */
  async stop(): Promise<void> {
    if (this.stopping === undefined) {
      this.stopping = this.cleanUp().then(() => this.settle.resolve());
    }
    await this.stopping;
  }

  private fail(error: HornbillError): void {
    if (this.closing) return;
    this.fatal = error;
    this.options.log('error', 'the share manager stops on a fatal error', {
      code: error.code,
      error: error.message,
    });
    this.stopping = this.cleanUp().then(() => this.settle.reject(error));
  }

  private async startServing(): Promise<void> {
    const { log } = this.options;
    const paths = ganeshaPaths(this.settings.stateDirectory);
    await fs.mkdir(paths.recoveryRoot, { recursive: true });
    await fs.mkdir(paths.credentialCache, { recursive: true });
    await this.acquireLease();
    await reapStaleGanesha(paths, log);
    await checkPortFree(this.settings.address, this.settings.port);
    const source = this.options.source;
    if (source.kind === 'device') {
      this.mounted = await mountVolume(source.host, source, log);
    } else if (!(await fs.stat(source.path).catch(() => undefined))?.isDirectory()) {
      throw new HornbillError('SHARE_MANAGER_CONFIG_INVALID', `${source.path} is not a directory`, {
        field: 'export-dir',
      });
    }
    const temporary = `${paths.config}.tmp`;
    await fs.writeFile(temporary, renderGaneshaConfig(this.settings), { mode: 0o600 });
    await fs.rename(temporary, paths.config);
    await this.supervisor.start();
    if (this.options.healthPort !== undefined)
      this.health = await startHealthServer(this.settings.address, this.options.healthPort, () =>
        this.status(),
      );
    void this.watchLiveness();
    log('info', 'share manager serving', { ...this.info() });
  }

  private async acquireLease(): Promise<void> {
    const timeoutMs = this.options.leaseAcquireTimeoutMs ?? 60_000;
    const acquired = new Promise<boolean>((resolve) => {
      this.leading = () => resolve(true);
      setTimeout(() => resolve(false), timeoutMs).unref();
    });
    this.elector.start();
    if (await acquired) return;
    const holder = (await this.options.lease.get().catch(() => undefined))?.holderIdentity ?? 'unknown';
    throw new HornbillError(
      'SHARE_MANAGER_LEASE_HELD',
      `volume ${this.settings.volume}: the lease is held by ${holder} and did not expire within ${timeoutMs} ms`,
      { holder },
    );
  }

  /** Kills a ganesha that is alive but stopped answering, so that the supervisor restarts it. */
  private async watchLiveness(): Promise<void> {
    const intervalMs = this.options.livenessIntervalMs ?? 5_000;
    let failures = 0;
    while (!this.liveness.signal.aborted) {
      await sleep(intervalMs, undefined, { signal: this.liveness.signal }).catch(() => {});
      const pid = this.supervisor.pid;
      if (this.liveness.signal.aborted || this.supervisor.state !== 'running' || pid === undefined) continue;
      const problem = await probeNfsNull(this.settings.address, this.settings.port, 2_000);
      failures = problem === undefined ? 0 : failures + 1;
      if (problem !== undefined) this.options.log('warn', 'nfs liveness probe failed', { problem, failures });
      if (failures >= LIVENESS_FAILURES_MAX && this.supervisor.pid === pid) {
        this.options.log('error', 'ganesha stopped answering; killing it for a restart', { pid });
        failures = 0;
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // it died meanwhile; the supervisor has seen it
        }
      }
    }
  }

  private async cleanUp(): Promise<void> {
    const { log } = this.options;
    this.closing = true;
    this.liveness.abort();
    await this.supervisor.stop();
    if (this.mounted && this.options.source.kind === 'device') {
      try {
        await unmountVolume(this.options.source.host, this.options.source.mountDirectory, log);
        this.mounted = false;
      } catch (error) {
        log('error', 'cannot unmount the volume', { error: String(error) });
      }
    }
    await this.elector.stop();
    await this.health?.close();
  }
}
