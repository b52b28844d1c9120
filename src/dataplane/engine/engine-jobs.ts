import { HornbillError } from '../../errors.ts';
import { type ReplicaAddress, ReplicaClient } from '../protocol/replica-client.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import { Clone, type CloneProgress, type CloneRequest } from './clone.ts';
import type { Engine } from './engine.ts';
import { Rebuild, type RebuildOptions, type RebuildProgress } from './rebuild.ts';

/**
 * The long jobs of one engine and the rules between them: a rebuild (adding a replica, one
 * at a time; rebuild.ts) and a clone (filling a new volume from another's snapshot; clone.ts).
 * No clone while a replica rebuilds; while a clone copies, snapshots, reverts, purges,
 * expansion and new rebuilds are refused with ENGINE_CLONE_BUSY (`refuseWhileCloning`).
 *
 * ```ts
 * const jobs = new EngineJobs(engine);
 * const progress = await jobs.addReplica({ host: '127.0.0.12', port: 10001 }, { log });
 * ```
 */
export class EngineJobs {
  private readonly engine: Engine;
  private currentRebuild: Rebuild | undefined;
  private currentClone: Clone | undefined;

  constructor(engine: Engine) {
    this.engine = engine;
  }

  rebuilding(): boolean {
    return (
      this.engine.replicas.some((replica) => replica.mode === 'WO') ||
      (this.currentRebuild !== undefined && !['done', 'failed'].includes(this.currentRebuild.progress.state))
    );
  }

  /**
   * Adds a replica (new, or one that came back) and rebuilds it while the volume stays in
   * use; one rebuild at a time. Resolves with the finished rebuild's progress; the replica
   * is RW then. A replica at an address the engine already lists reuses that entry.
   */
  async addReplica(
    address: ReplicaAddress,
    options: { local?: boolean } & Partial<RebuildOptions> = {},
  ): Promise<RebuildProgress> {
    if (this.engine.stopped)
      throw new HornbillError('DEVICE_NOT_READY', `volume ${this.engine.name}: the engine is stopped`);
    this.refuseWhileCloning('addReplica');
    if (
      this.currentRebuild !== undefined &&
      !['done', 'failed'].includes(this.currentRebuild.progress.state)
    ) {
      throw new HornbillError(
        'ENGINE_REBUILD_BUSY',
        `volume ${this.engine.name} is already rebuilding a replica`,
        {
          progress: this.currentRebuild.progress,
        },
      );
    }
    let replica = this.engine.replicas.find(
      (entry) => entry.address.host === address.host && entry.address.port === address.port,
    );
    if (replica !== undefined && replica.mode !== 'ERR') {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `replica ${address.host}:${address.port} is already ${replica.mode} in volume ${this.engine.name}`,
      );
    }
    if (replica === undefined) {
      replica = {
        address,
        local: options.local ?? false,
        mode: 'ERR',
        client: undefined,
        error: 'rebuilding',
      };
      this.engine.replicas.push(replica);
    }
    const client = new ReplicaClient({
      address,
      log: this.engine.log,
      timeoutMs: this.engine.replicaTimeoutMs,
    });
    try {
      await client.connect();
      const info = await client.control<ReplicaInfo>('info');
      if (info.sizeBytes !== this.engine.sizeBytes) {
        throw new HornbillError(
          'INVALID_ARGUMENT',
          `replica size ${info.sizeBytes} differs from the volume's ${this.engine.sizeBytes}`,
        );
      }
    } catch (error) {
      client.close();
      this.engine.markError(replica, (error as Error).message);
      throw error;
    }
    const rebuild = new Rebuild(this.engine, replica, client, { log: this.engine.log, ...options });
    this.currentRebuild = rebuild;
    await rebuild.run();
    return rebuild.progress;
  }

  /**
   * Fills this new, empty volume with a snapshot of another volume (clone.ts); one clone at
   * a time, none while a replica rebuilds. Resolves with the finished clone's progress.
   */
  async clone(request: CloneRequest): Promise<CloneProgress> {
    if (this.engine.stopped)
      throw new HornbillError('DEVICE_NOT_READY', `volume ${this.engine.name}: the engine is stopped`);
    this.refuseWhileCloning('clone');
    if (this.rebuilding()) {
      throw new HornbillError(
        'ENGINE_REBUILD_BUSY',
        `volume ${this.engine.name} is rebuilding a replica; a clone waits`,
        {
          progress: this.currentRebuild?.progress,
        },
      );
    }
    const clone = new Clone(this.engine, request, {
      log: this.engine.log,
      timeoutMs: this.engine.replicaTimeoutMs,
    });
    this.currentClone = clone;
    await clone.run();
    return clone.progress;
  }

  /** The running or last clone's progress. */
  cloneStatus(): CloneProgress | undefined {
    return this.currentClone === undefined ? undefined : { ...this.currentClone.progress };
  }

  refuseWhileCloning(operation: string): void {
    const state = this.currentClone?.progress.state;
    if (state === 'preparing' || state === 'copying') {
      throw new HornbillError(
        'ENGINE_CLONE_BUSY',
        `volume ${this.engine.name} is being filled from ${this.currentClone!.progress.origin}; ${operation} waits until the clone is done`,
        { progress: this.currentClone!.progress },
      );
    }
  }

  /** The running or last rebuild's progress. */
  rebuildStatus(): RebuildProgress | undefined {
    return this.currentRebuild === undefined ? undefined : { ...this.currentRebuild.progress };
  }
}
