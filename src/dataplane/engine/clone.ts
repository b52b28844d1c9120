import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { BLOCK_SIZE } from '../../storage/constants.ts';
import type { LayerExtent, LayerInfo } from '../../storage/replica-store.ts';
import type { ReplicaAddress } from '../protocol/replica-client.ts';
import { ReplicaClient } from '../protocol/replica-client.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import { BandwidthLimiter } from '../sync/bandwidth-limiter.ts';
import { readPackedRuns, STATE_DATA } from '../sync/packed-reads.ts';
import type { Engine, EngineReplica } from './engine.ts';

/** Blocks resolved per round of extents requests (64 MiB of volume). */
const RANGE_BLOCKS = 16384;
/** Blocks per data transfer (1 MiB). */
const TRANSFER_BLOCKS = 256;
const STATE_ABSENT = 0;

const STATE_ZERO = 2;

export interface CloneRequest {
  /** Replicas of the source volume, tried in order until one answers. */
  sources: ReplicaAddress[];
  /** The source volume's snapshot whose content the clone takes. */
  snapshot: string;
  /** What the clone came from, for status and labels (`snap://vol/snap`). */
  origin: string;
  /** Data bytes per second the clone may copy (0 or absent: no limit). */
  bandwidthBytesPerSecond?: number;
}

export interface CloneProgress {
  origin: string;
  snapshot: string;
  /** The layer of this volume that holds the cloned data (the source snapshot's name). */
  layer: string;
  state: 'preparing' | 'copying' | 'done' | 'failed';
  /** Bytes of volume examined in all (the smaller of the source and this volume). */
  totalBytes: number;
  doneBytes: number;
  /** Data bytes copied (holes and zeros are not sent). */
  transferredBytes: number;
  source: string;
  startedAt: string;
  finishedAt?: string;
  error?: string;
}

/**
 * Fills a new, empty volume with the content of another volume's snapshot (CSI volume
 * sources: `snap://<volume>/<snapshot>`, and `vol://<volume>` through a snapshot taken for it):
 *
 * 1. Every RW replica of this volume must hold nothing but an empty head (or the layer an
 *    earlier, interrupted clone of the same snapshot left: it is written again).
 * 2. A layer named after the snapshot is created on each replica, as the base of the chain.
 * 3. Range by range, the snapshot's content is resolved through the source's chain (the
 *    snapshot and its ancestors: the nearest layer that holds a block decides it), and the
 *    data blocks are read from the source replica and written into that layer of every RW
 *    replica of this volume, with their checksums, which each replica checks on arrival.
 *    Holes and zeroed blocks stay holes: only data crosses the network.
 * 4. The head's parent becomes that layer: the volume reads as the snapshot did.
 *
 * The engine runs no rebuild, snapshot or revert while a clone copies (ENGINE_CLONE_BUSY).
 * A replica that fails a write goes ERR and the clone goes on with the others; with none
 * left it fails, and may be started again.
 */
export class Clone {
  readonly progress: CloneProgress;
  private readonly engine: Engine;
  private readonly request: CloneRequest;
  private readonly log: Logger;
  private readonly limiter: BandwidthLimiter;
  private readonly timeoutMs: number;
  private source: ReplicaClient | undefined;
  /** One transfer's data blocks, reused for every transfer of the clone. */
  private readonly buffer = Buffer.alloc(TRANSFER_BLOCKS * BLOCK_SIZE);

  constructor(engine: Engine, request: CloneRequest, options: { log: Logger; timeoutMs: number }) {
    this.engine = engine;
    this.request = request;
    this.log = options.log;
    this.timeoutMs = options.timeoutMs;
    this.limiter = new BandwidthLimiter(request.bandwidthBytesPerSecond ?? 0);
    this.progress = {
      origin: request.origin,
      snapshot: request.snapshot,
      layer: request.snapshot,
      state: 'preparing',
      totalBytes: 0,
      doneBytes: 0,
      transferredBytes: 0,
      source: '',
      startedAt: new Date().toISOString(),
    };
  }

  async run(): Promise<void> {
    try {
      const source = await this.connectSource();
      const chain = await source.control<LayerInfo[]>('listChain');
      const ancestry = snapshotAncestry(chain, this.request.snapshot);
      const info = await source.control<ReplicaInfo>('info');
      const blocks = Math.min(info.sizeBytes, this.engine.sizeBytes) / BLOCK_SIZE;
      this.progress.totalBytes = blocks * BLOCK_SIZE;
      await this.prepareTargets(ancestry[0]);
      this.progress.state = 'copying';
      for (let startBlock = 0; startBlock < blocks; startBlock += RANGE_BLOCKS)
        await this.copyRange(source, ancestry, startBlock, Math.min(RANGE_BLOCKS, blocks - startBlock));
      await this.engine.controlAll('setHeadParent', { parent: this.progress.layer });
      this.progress.state = 'done';
      this.progress.finishedAt = new Date().toISOString();
      this.log('info', 'clone done', { volume: this.engine.name, ...this.progress });
    } catch (error) {
      this.progress.state = 'failed';
      this.progress.error = (error as Error).message;
      this.progress.finishedAt = new Date().toISOString();
      this.log('warn', 'clone failed', {
        volume: this.engine.name,
        origin: this.progress.origin,
        error: this.progress.error,
      });
      throw error;
    } finally {
      this.source?.close();
    }
  }

  private async connectSource(): Promise<ReplicaClient> {
    const problems: string[] = [];
    for (const address of this.request.sources) {
      const client = new ReplicaClient({ address, log: this.log, timeoutMs: this.timeoutMs });
      try {
        await client.connect();
        this.source = client;
        this.progress.source = client.label;
        return client;
      } catch (error) {
        client.close();
        problems.push(`${client.label}: ${(error as Error).message}`);
      }
    }
    throw new HornbillError(
      'REPLICA_UNREACHABLE',
      `no replica of the clone source ${this.request.origin} answered (${problems.join('; ') || 'none given'})`,
    );
  }

  /** RW replicas of this volume (they change as replicas fail). */
  private targets(): EngineReplica[] {
    const targets = this.engine.replicas.filter(
      (replica) => replica.mode === 'RW' && replica.client !== undefined,
    );
    if (targets.length === 0)
      throw new HornbillError(
        'DEVICE_NOT_READY',
        `volume ${this.engine.name} has no healthy replica to clone into`,
      );
    return targets;
  }

  /** Checks each target holds nothing yet and gives it the clone's layer. */
  private async prepareTargets(snapshot: LayerInfo): Promise<void> {
    const layer = this.progress.layer;
    for (const target of this.targets()) {
      const chain = await target.client!.control<LayerInfo[]>('listChain');
      const head = chain.find((entry) => entry.isHead);
      const others = chain.filter((entry) => !entry.isHead);
      const resumable = others.length === 1 && others[0].name === layer && others[0].parent === null;
      if ((head?.dataBytes ?? 0) > 0 || (others.length > 0 && !resumable)) {
        throw new HornbillError(
          'ENGINE_CLONE_NOT_EMPTY',
          `volume ${this.engine.name} already holds data (replica ${target.client!.label}); a clone fills only a new volume`,
          { layers: others.map((entry) => entry.name), headBytes: head?.dataBytes ?? 0 },
        );
      }
      if (others.length === 0) {
        await target.client!.control('createLayer', {
          name: layer,
          parent: null,
          createdAt: snapshot.createdAt,
          userCreated: false,
          removed: false,
          labels: { 'hornbill.io/cloned-from': this.request.origin },
        });
      }
    }
  }

  /** Resolves one range through the snapshot's ancestry and copies its data blocks. */
  private async copyRange(
    source: ReplicaClient,
    ancestry: LayerInfo[],
    startBlock: number,
    blockCount: number,
  ): Promise<void> {
    const states = new Uint8Array(blockCount);
    const checksums = new Uint32Array(blockCount);
    const origins = new Int32Array(blockCount).fill(-1);
    const extentLists = await Promise.all(
      ancestry.map((layer) => {
        const layerBlocks = layer.sizeBytes / BLOCK_SIZE;
        const count = Math.min(blockCount, layerBlocks - startBlock);
        return count > 0 ? source.layerExtents(layer.name, startBlock, count) : Promise.resolve([]);
      }),
    );
    // The snapshot comes first: the nearest layer that holds a block decides it.
    for (const [index, extents] of extentLists.entries())
      resolve(extents, index, startBlock, states, checksums, origins);
    const buffer = this.buffer;
    for (let window = 0; window < blockCount; window += TRANSFER_BLOCKS) {
      const end = Math.min(blockCount, window + TRANSFER_BLOCKS);
      let dataBlocks = 0;
      for (let block = window; block < end; block++) {
        if (states[block] === STATE_DATA) dataBlocks++;
        else states[block] = STATE_ABSENT; // zeros of the source are holes of the clone
      }
      if (dataBlocks > 0) {
        await this.limiter.take(dataBlocks * BLOCK_SIZE);
        await readPackedRuns(
          source,
          startBlock,
          states,
          window,
          end,
          (index) => ancestry[origins[index]].name,
          buffer,
        );
        await this.writeTargets(startBlock + window, {
          layer: this.progress.layer,
          states: states.subarray(window, end),
          checksums: checksums.subarray(window, end),
          data: buffer.subarray(0, dataBlocks * BLOCK_SIZE),
        });
        this.progress.transferredBytes += dataBlocks * BLOCK_SIZE;
      }
      this.progress.doneBytes += (end - window) * BLOCK_SIZE;
    }
  }

  private async writeTargets(
    startBlock: number,
    write: Parameters<ReplicaClient['writeLayer']>[1],
  ): Promise<void> {
    const targets = this.targets();
    const outcomes = await Promise.allSettled(
      targets.map((target) => target.client!.writeLayer(startBlock, write)),
    );
    for (const [index, outcome] of outcomes.entries()) {
      if (outcome.status === 'rejected')
        this.engine.markError(targets[index], `clone write failed: ${(outcome.reason as Error).message}`);
    }
    this.targets();
  }
}

/** The snapshot and its ancestors, nearest first; a missing or removed snapshot is refused. */
export function snapshotAncestry(chain: LayerInfo[], snapshot: string): LayerInfo[] {
  const byName = new Map(chain.filter((layer) => !layer.isHead).map((layer) => [layer.name, layer]));
  const first = byName.get(snapshot);
  if (first === undefined)
    throw new HornbillError('STORE_SNAPSHOT_NOT_FOUND', `the clone source has no snapshot ${snapshot}`);
  if (first.removed)
    throw new HornbillError('STORE_SNAPSHOT_REMOVED', `snapshot ${snapshot} of the clone source is removed`);
  const ancestry: LayerInfo[] = [];
  for (let layer: LayerInfo | undefined = first; layer !== undefined; ) {
    if (ancestry.includes(layer))
      throw new HornbillError('INTERNAL', `the clone source's chain loops at ${layer.name}`);
    ancestry.push(layer);
    layer = layer.parent === null ? undefined : byName.get(layer.parent);
  }
  return ancestry;
}

function resolve(
  extents: LayerExtent[],
  layerIndex: number,
  rangeStart: number,
  states: Uint8Array,
  checksums: Uint32Array,
  origins: Int32Array,
): void {
  for (const extent of extents) {
    for (let block = 0; block < extent.blockCount; block++) {
      const index = extent.startBlock - rangeStart + block;
      if (origins[index] !== -1) continue;
      origins[index] = layerIndex;
      if (extent.state === 'data') {
        states[index] = STATE_DATA;
        checksums[index] = extent.checksums?.[block] ?? 0;
      } else states[index] = STATE_ZERO;
    }
  }
}
