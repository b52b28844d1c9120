import { assert } from '../../assert.ts';
import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { BLOCK_SIZE, MAX_IO_BYTES } from '../../storage/constants.ts';
import { validateIoRange } from '../../storage/io-range.ts';
import type { LayerInfo, MappingRun } from '../../storage/replica-store.ts';
import type { BlockDevice } from '../block-device.ts';
import { FrameFlag } from '../protocol/frame.ts';
import { checksumSectionBytes, isBlockAligned, writeChecksumSection } from '../protocol/payloads.ts';
import { type ReplicaAddress, ReplicaClient } from '../protocol/replica-client.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import type { CloneProgress, CloneRequest } from './clone.ts';
import { EngineJobs } from './engine-jobs.ts';
import type { EngineOptions, EngineReplica, ReplicaMode, ReplicaStatus } from './engine-types.ts';
import { IoGate } from './io-gate.ts';
import { RangeLock } from './range-lock.ts';
import { repairBlocks } from './read-repair.ts';
import type { RebuildOptions, RebuildProgress } from './rebuild.ts';

export type { EngineOptions, EngineReplica, ReplicaMode, ReplicaStatus } from './engine-types.ts';

/** Largest unmap sent in one frame (the frame length field is 32 bits). */
const UNMAP_PIECE_BYTES = 1024 * 1024 * 1024;

/**
 * The storage controller of one volume (DESIGN.md §3). Writes go to every RW and WO replica
 * and are acknowledged when all of them have acknowledged; a replica that errors or times
 * out goes ERR and leaves the set, and I/O goes on while one RW replica remains. Reads go to
 * one RW replica, rotating (or the local one); a block that fails its checksum is read from
 * another replica, returned good, and repaired on the bad one. With no RW replica left
 * every I/O fails with DEVICE_NOT_READY, never with wrong data.
 */
export class Engine implements BlockDevice {
  readonly name: string;
  readonly sectorSize = 512;
  readonly physicalBlockSize = 4096;
  readonly replicas: EngineReplica[];
  private readonly options: EngineOptions;
  private readonly gate = new IoGate();
  private volumeSizeBytes = 0;
  private nextRead = 0;
  private readonly modeListeners: ((replica: EngineReplica) => void)[] = [];
  private closed = false;
  private readonly blockLock = new RangeLock();
  private readonly jobs = new EngineJobs(this);

  private constructor(options: EngineOptions) {
    this.options = options;
    this.name = options.name;
    this.replicas = options.replicas.map((replica) => ({
      address: replica.address,
      local: replica.local ?? false,
      mode: 'ERR' as ReplicaMode,
      client: undefined,
      error: undefined,
    }));
  }

  /**
   * Connects to the replicas and decides which are up to date: among those that answer and
   * are not in the middle of a rebuild, the ones with the highest revision counter become
   * RW; the others are ERR (they will be rebuilt). An engine with no RW replica starts
   * faulted: it answers every I/O with DEVICE_NOT_READY.
   */
  static async start(options: EngineOptions): Promise<Engine> {
    const engine = new Engine(options);
    const infos = await Promise.all(engine.replicas.map((replica) => engine.connectReplica(replica)));
    const candidates = infos.filter((info): info is ReplicaInfo => info !== undefined && !info.rebuilding);
    const best = Math.max(-1, ...candidates.map((info) => info.revisionCounter));
    const sizes = new Set(
      candidates.filter((info) => info.revisionCounter === best).map((info) => info.sizeBytes),
    );
    engine.volumeSizeBytes = Math.max(0, ...sizes);
    for (const [index, replica] of engine.replicas.entries()) {
      const info = infos[index];
      if (info === undefined) continue;
      if (info.rebuilding) engine.markError(replica, 'an interrupted rebuild left this replica incomplete');
      else if (info.revisionCounter < best)
        engine.markError(replica, `revision ${info.revisionCounter} is behind ${best}`);
      else if (info.sizeBytes !== engine.volumeSizeBytes)
        engine.markError(replica, `size ${info.sizeBytes} differs`);
      else engine.setMode(replica, 'RW');
    }
    options.log('info', 'engine started', { volume: options.name, replicas: engine.status() });
    return engine;
  }

  private async connectReplica(replica: EngineReplica): Promise<ReplicaInfo | undefined> {
    const client = new ReplicaClient({
      address: replica.address,
      log: this.options.log,
      timeoutMs: this.options.replicaTimeoutMs ?? 8000,
    });
    try {
      await client.connect();
      const info = await client.control<ReplicaInfo>('info');
      replica.client = client;
      client.onFailure((error) => {
        if (replica.client === client) this.markError(replica, error.message);
      });
      return info;
    } catch (error) {
      client.close();
      this.markError(replica, (error as Error).message);
      return undefined;
    }
  }

  get sizeBytes(): number {
    return this.volumeSizeBytes;
  }

  get robustness(): 'healthy' | 'degraded' | 'faulted' {
    const readWrite = this.replicas.filter((replica) => replica.mode === 'RW').length;
    if (readWrite === 0) return 'faulted';
    return readWrite === this.replicas.length ? 'healthy' : 'degraded';
  }

  status(): ReplicaStatus[] {
    return this.replicas.map((replica) => ({
      address: `${replica.address.host}:${replica.address.port}`,
      mode: replica.mode,
      local: replica.local,
      ...(replica.client?.inThread === true ? { inThread: true as const } : {}),
      ...(replica.error === undefined ? {} : { error: replica.error }),
    }));
  }

  onReplicaModeChange(listener: (replica: EngineReplica) => void): void {
    this.modeListeners.push(listener);
  }

  setMode(replica: EngineReplica, mode: ReplicaMode, error?: string): void {
    if (replica.mode === mode && replica.error === error) return;
    replica.mode = mode;
    replica.error = error;
    for (const listener of this.modeListeners) listener(replica);
  }

  /** Takes a replica out of the set; its connection is closed. */
  markError(replica: EngineReplica, reason: string): void {
    if (replica.mode !== 'ERR') {
      this.options.log('warn', 'replica failed; taking it out of the volume', {
        volume: this.name,
        replica: `${replica.address.host}:${replica.address.port}`,
        reason,
      });
    }
    this.setMode(replica, 'ERR', reason);
    const client = replica.client;
    replica.client = undefined;
    client?.close();
  }

  private writers(): EngineReplica[] {
    return this.replicas.filter((replica) => replica.mode === 'RW' || replica.mode === 'WO');
  }

  private readers(): EngineReplica[] {
    return this.replicas.filter((replica) => replica.mode === 'RW');
  }

  private checkRange(offsetBytes: number, lengthBytes: number): void {
    if (this.closed)
      throw new HornbillError('DEVICE_NOT_READY', `volume ${this.name}: the engine is stopped`);
    validateIoRange(offsetBytes, lengthBytes, {
      sizeBytes: this.volumeSizeBytes,
      sectorSize: this.sectorSize,
      maxLength: Number.MAX_SAFE_INTEGER,
    });
  }

  private notReady(): HornbillError {
    return new HornbillError('DEVICE_NOT_READY', `volume ${this.name} has no healthy replica`, {
      replicas: this.status(),
    });
  }

  async write(offsetBytes: number, source: Uint8Array, options?: { fua?: boolean }): Promise<void> {
    this.checkRange(offsetBytes, source.length);
    if (source.length > MAX_IO_BYTES) {
      throw new HornbillError('INVALID_ARGUMENT', `a single write is limited to ${MAX_IO_BYTES} bytes`);
    }
    if (source.length === 0) return;
    if (!this.gate.tryEnter()) await this.gate.enter();
    try {
      const flags = options?.fua === true ? FrameFlag.FUA : 0;
      if (!this.needsWholeBlocks()) return await this.writeThrough(offsetBytes, source, flags);
      const release = await this.blockLock.acquire(
        Math.floor(offsetBytes / BLOCK_SIZE),
        Math.ceil((offsetBytes + source.length) / BLOCK_SIZE),
      );
      try {
        if (isBlockAligned(offsetBytes, source.length))
          return await this.writeThrough(offsetBytes, source, flags);
        // A rebuilding replica's chain is incomplete: it must not merge a partial block with what it holds.
        const start = Math.floor(offsetBytes / BLOCK_SIZE) * BLOCK_SIZE;
        const whole = Buffer.alloc(
          Math.ceil((offsetBytes + source.length) / BLOCK_SIZE) * BLOCK_SIZE - start,
        );
        await this.readFromReplicas(start, whole);
        whole.set(source, offsetBytes - start);
        await this.writeThrough(start, whole, flags);
      } finally {
        release();
      }
    } finally {
      this.gate.leave();
    }
  }

  private async writeThrough(offsetBytes: number, source: Uint8Array, flags: number): Promise<void> {
    const checksums = Buffer.allocUnsafe(checksumSectionBytes(offsetBytes, source.length));
    writeChecksumSection(checksums, offsetBytes, source);
    await this.fanOut((client) => client.write(offsetBytes, source, checksums, flags));
  }

  /**
   * While a replica rebuilds (WO), writes and unmaps that do not cover whole 4 KiB blocks
   * are widened here to whole blocks read from an RW replica (Longhorn issue 4354: the WO
   * replica would merge with an incomplete chain). Writes then take a block lock, so that a
   * widened read-merge-write never interleaves with another write to the same blocks.
   */
  private needsWholeBlocks(): boolean {
    return this.blockLock.busy || this.replicas.some((replica) => replica.mode === 'WO');
  }

  async unmap(offsetBytes: number, lengthBytes: number): Promise<void> {
    this.checkRange(offsetBytes, lengthBytes);
    if (!this.gate.tryEnter()) await this.gate.enter();
    try {
      if (!this.needsWholeBlocks() || isBlockAligned(offsetBytes, lengthBytes)) {
        return await this.unmapThrough(offsetBytes, lengthBytes);
      }
      const end = offsetBytes + lengthBytes;
      const release = await this.blockLock.acquire(
        Math.floor(offsetBytes / BLOCK_SIZE),
        Math.ceil(end / BLOCK_SIZE),
      );
      try {
        // Partial blocks at either end become whole-block writes of zeros merged here.
        const alignedStart = Math.ceil(offsetBytes / BLOCK_SIZE) * BLOCK_SIZE;
        const alignedEnd = Math.max(alignedStart, Math.floor(end / BLOCK_SIZE) * BLOCK_SIZE);
        for (const [from, to] of [
          [offsetBytes, Math.min(end, alignedStart)],
          [Math.max(alignedEnd, alignedStart), end],
        ]) {
          if (from >= to) continue;
          const blockStart = Math.floor(from / BLOCK_SIZE) * BLOCK_SIZE;
          const block = Buffer.alloc(BLOCK_SIZE);
          await this.readFromReplicas(blockStart, block);
          block.fill(0, from - blockStart, to - blockStart);
          await this.writeThrough(blockStart, block, 0);
        }
        if (alignedEnd > alignedStart) await this.unmapThrough(alignedStart, alignedEnd - alignedStart);
      } finally {
        release();
      }
    } finally {
      this.gate.leave();
    }
  }

  private async unmapThrough(offsetBytes: number, lengthBytes: number): Promise<void> {
    for (let at = offsetBytes; at < offsetBytes + lengthBytes; at += UNMAP_PIECE_BYTES) {
      const length = Math.min(UNMAP_PIECE_BYTES, offsetBytes + lengthBytes - at);
      await this.fanOut((client) => client.unmap(at, length));
    }
  }

  async flush(): Promise<void> {
    if (this.closed)
      throw new HornbillError('DEVICE_NOT_READY', `volume ${this.name}: the engine is stopped`);
    if (!this.gate.tryEnter()) await this.gate.enter();
    try {
      await this.fanOut((client) => client.flush());
    } finally {
      this.gate.leave();
    }
  }

  /**
   * Runs one request on every RW and WO replica. Replicas that fail go ERR. It succeeds
   * when at least one RW replica did it; if every replica refused it with STORE_NO_SPACE,
   * that error is returned and nobody leaves the set (the volume is full, not broken).
   */
  private async fanOut(request: (client: ReplicaClient) => Promise<void>): Promise<void> {
    const targets = this.writers();
    if (!targets.some((replica) => replica.mode === 'RW')) throw this.notReady();
    const requests = targets.map((replica) => request(replica.client!));
    try {
      // Every target did it (the usual case): an RW one among them, checked above.
      await Promise.all(requests);
      return;
    } catch {
      // Some target failed: wait for all of them and sort the outcomes out below.
    }
    const outcomes = await Promise.allSettled(requests);
    const failures = outcomes.filter((outcome) => outcome.status === 'rejected') as PromiseRejectedResult[];
    if (
      failures.length === targets.length &&
      failures.every((failure) => isHornbillError(failure.reason, 'STORE_NO_SPACE'))
    ) {
      throw failures[0].reason;
    }
    let succeededOnReadWrite = false;
    for (const [index, outcome] of outcomes.entries()) {
      const replica = targets[index];
      if (outcome.status === 'rejected')
        this.markError(replica, (outcome.reason as Error)?.message ?? String(outcome.reason));
      else if (replica.mode === 'RW') succeededOnReadWrite = true;
    }
    if (!succeededOnReadWrite) throw this.notReady();
  }

  async read(offsetBytes: number, target: Uint8Array): Promise<void> {
    this.checkRange(offsetBytes, target.length);
    if (target.length > MAX_IO_BYTES) {
      throw new HornbillError('INVALID_ARGUMENT', `a single read is limited to ${MAX_IO_BYTES} bytes`);
    }
    if (target.length === 0) return;
    if (!this.gate.tryEnter()) await this.gate.enter();
    try {
      await this.readFromReplicas(offsetBytes, target);
    } finally {
      this.gate.leave();
    }
  }

  /** Tries RW replicas in turn; a bad block is read elsewhere and repaired where it was bad. */
  private async readFromReplicas(offsetBytes: number, target: Uint8Array): Promise<void> {
    const tried = new Set<EngineReplica>();
    let lastError: unknown;
    const damaged: { replica: EngineReplica; error: HornbillError }[] = [];
    for (;;) {
      const replica = this.pickReader(tried);
      if (replica === undefined) break;
      tried.add(replica);
      try {
        await replica.client!.read(offsetBytes, target);
        for (const bad of damaged) void this.repair(bad.replica, replica, bad.error);
        return;
      } catch (error) {
        lastError = error;
        if (isHornbillError(error, 'STORE_CHECKSUM_MISMATCH')) {
          this.options.log('warn', 'bad block read from a replica; reading another copy', {
            volume: this.name,
            replica: `${replica.address.host}:${replica.address.port}`,
            details: error.details,
          });
          damaged.push({ replica, error });
        } else if (ReplicaClient.isConnectionFailure(error) || replica.mode === 'ERR') {
          this.markError(replica, (error as Error).message);
        } else {
          throw error;
        }
      }
    }
    if (lastError !== undefined && isHornbillError(lastError, 'STORE_CHECKSUM_MISMATCH')) throw lastError;
    throw this.notReady();
  }

  private pickReader(tried: Set<EngineReplica>): EngineReplica | undefined {
    const readers = this.readers().filter((replica) => !tried.has(replica));
    if (readers.length === 0) return undefined;
    if (this.options.preferLocalReplica) {
      const local = readers.find((replica) => replica.local);
      if (local !== undefined) return local;
    }
    this.nextRead = (this.nextRead + 1) % readers.length;
    return readers[this.nextRead];
  }

  private async repair(bad: EngineReplica, good: EngineReplica, error: HornbillError): Promise<void> {
    if (bad.client === undefined || good.client === undefined) return;
    try {
      const repaired = await repairBlocks(bad.client, good.client, error);
      this.options.log('info', 'repaired bad blocks from another replica', {
        volume: this.name,
        replica: `${bad.address.host}:${bad.address.port}`,
        blocks: repaired,
      });
    } catch (repairError) {
      this.markError(bad, `read-repair failed: ${(repairError as Error).message}`);
    }
  }

  async mappingStatus(offsetBytes: number, lengthBytes: number): Promise<MappingRun[]> {
    this.checkRange(offsetBytes, lengthBytes);
    const replica = this.pickReader(new Set());
    if (replica === undefined) throw this.notReady();
    return replica.client!.control<MappingRun[]>('mappingStatus', { offsetBytes, lengthBytes });
  }

  /**
   * Takes a snapshot on every RW and WO replica at one I/O boundary: new I/O waits, I/O in
   * flight drains, every replica snapshots, I/O resumes. No write is in one replica's
   * snapshot and not in another's. A replica that fails to snapshot goes ERR.
   */
  async snapshot(
    name: string,
    options: { labels?: Record<string, string>; userCreated?: boolean } = {},
  ): Promise<LayerInfo> {
    this.jobs.refuseWhileCloning('snapshot');
    return this.atIoBoundary(async () => {
      const targets = this.writers();
      if (!targets.some((replica) => replica.mode === 'RW')) throw this.notReady();
      const outcomes = await Promise.allSettled(
        targets.map((replica) => replica.client!.control<LayerInfo>('snapshot', { name, ...options })),
      );
      let info: LayerInfo | undefined;
      for (const [index, outcome] of outcomes.entries()) {
        if (outcome.status === 'fulfilled') info ??= outcome.value;
        else if (isHornbillError(outcome.reason) && outcome.reason.code.startsWith('STORE_SNAPSHOT'))
          throw outcome.reason;
        else this.markError(targets[index], `snapshot failed: ${(outcome.reason as Error).message}`);
      }
      if (info === undefined || this.readers().length === 0) throw this.notReady();
      return info;
    });
  }

  /** Runs `operation` with no I/O in flight and new I/O held back until it ends. */
  async atIoBoundary<T>(operation: () => Promise<T>): Promise<T> {
    await this.gate.pause();
    try {
      return await operation();
    } finally {
      this.gate.resume();
    }
  }

  /** Calls a control method on every RW and WO replica; replicas that fail go ERR. Returns one RW replica's result. */
  async controlAll<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const targets = this.writers();
    if (!targets.some((replica) => replica.mode === 'RW')) throw this.notReady();
    const outcomes = await Promise.allSettled(
      targets.map((replica) => replica.client!.control<T>(method, params)),
    );
    let result: { value: T } | undefined;
    for (const [index, outcome] of outcomes.entries()) {
      if (outcome.status === 'fulfilled') {
        if (targets[index].mode === 'RW') result ??= { value: outcome.value };
      } else if (
        isHornbillError(outcome.reason) &&
        !ReplicaClient.isConnectionFailure(outcome.reason) &&
        outcomes.every((o) => o.status === 'rejected')
      ) {
        throw outcome.reason;
      } else {
        this.markError(targets[index], `${method} failed: ${(outcome.reason as Error).message}`);
      }
    }
    if (result === undefined) throw this.notReady();
    return result.value;
  }

  /** Reclaims removed snapshots on every replica; refused while a replica rebuilds (it copies those layers). */
  async purge(): Promise<unknown> {
    this.jobs.refuseWhileCloning('purge');
    if (this.replicas.some((replica) => replica.mode === 'WO')) {
      throw new HornbillError(
        'ENGINE_REBUILD_BUSY',
        `volume ${this.name} is rebuilding a replica; purge waits until it is done`,
      );
    }
    return this.controlAll('purge');
  }

  /**
   * Reverts the volume to snapshot `name` on every RW replica at one I/O boundary: each
   * gets a new empty head whose parent is the snapshot. Refused while a replica rebuilds
   * (the rebuild copies the chain being replaced). A replica that fails to revert goes ERR;
   * an error every replica gives (STORE_SNAPSHOT_NOT_FOUND, STORE_SNAPSHOT_REMOVED) is
   * returned and nothing changed. The caller makes sure no initiator is connected: data
   * changes under whatever it cached.
   */
  async revert(name: string): Promise<ReplicaInfo> {
    this.jobs.refuseWhileCloning('revert');
    return this.atIoBoundary(async () => {
      if (this.jobs.rebuilding()) {
        throw new HornbillError(
          'ENGINE_REBUILD_BUSY',
          `volume ${this.name} is rebuilding a replica; revert waits until it is done`,
          { progress: this.jobs.rebuildStatus() },
        );
      }
      const info = await this.controlAll<ReplicaInfo>('revert', { name });
      this.options.log('info', 'volume reverted to a snapshot', { volume: this.name, snapshot: name });
      return info;
    });
  }

  /** Grows the volume on every replica at an I/O boundary. */
  async expand(sizeBytes: number): Promise<void> {
    this.jobs.refuseWhileCloning('expand');
    await this.atIoBoundary(async () => {
      await this.controlAll('expand', { sizeBytes });
      this.volumeSizeBytes = sizeBytes;
    });
  }

  /**
   * Adds a replica (new, or one that came back) and rebuilds it while the volume stays in
   * use; one rebuild at a time (engine-jobs.ts). Resolves with the finished rebuild's
   * progress; the replica is RW then.
   */
  addReplica(
    address: ReplicaAddress,
    options: { local?: boolean } & Partial<RebuildOptions> = {},
  ): Promise<RebuildProgress> {
    return this.jobs.addReplica(address, options);
  }

  /** Fills this new, empty volume with a snapshot of another volume (engine-jobs.ts, clone.ts). */
  clone(request: CloneRequest): Promise<CloneProgress> {
    return this.jobs.clone(request);
  }

  /** The running or last clone's progress. */
  cloneStatus(): CloneProgress | undefined {
    return this.jobs.cloneStatus();
  }

  /** The running or last rebuild's progress. */
  rebuildStatus(): RebuildProgress | undefined {
    return this.jobs.rebuildStatus();
  }

  /** Whether the engine is stopped (close()). */
  get stopped(): boolean {
    return this.closed;
  }

  /** The engine's logger and replica timeout, for its jobs' own connections. */
  get log(): Logger {
    return this.options.log;
  }

  get replicaTimeoutMs(): number {
    return this.options.replicaTimeoutMs ?? 8000;
  }

  /** Takes a replica out of the volume for good (live change of the replica count). */
  removeReplica(address: ReplicaAddress): void {
    const index = this.replicas.findIndex(
      (entry) => entry.address.host === address.host && entry.address.port === address.port,
    );
    if (index < 0)
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `replica ${address.host}:${address.port} is not in volume ${this.name}`,
      );
    const [replica] = this.replicas.splice(index, 1);
    const client = replica.client;
    replica.client = undefined;
    client?.close();
  }

  /** Stops the engine: in-flight I/O finishes, new I/O is refused, connections close. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.gate.pause();
    this.closed = true;
    this.gate.resume();
    for (const replica of this.replicas) {
      const client = replica.client;
      replica.client = undefined;
      client?.close();
    }
  }

  /** Adds a connected replica client in a mode (rebuild uses this for its WO target). */
  attach(replica: EngineReplica, client: ReplicaClient, mode: ReplicaMode): void {
    assert(this.replicas.includes(replica), 'attaching an unknown replica');
    replica.client = client;
    client.onFailure((error) => {
      if (replica.client === client) this.markError(replica, error.message);
    });
    this.setMode(replica, mode, undefined);
  }

  /** The block size the engine works in (frontends report it as the physical block). */
  static readonly blockSize = BLOCK_SIZE;
}
