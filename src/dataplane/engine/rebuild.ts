import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { BLOCK_SIZE, HEAD_DISPLAY_NAME } from '../../storage/constants.ts';
import type { LayerInfo } from '../../storage/replica-store.ts';
import type { ReplicaClient } from '../protocol/replica-client.ts';
import type { PullResult } from '../replica/range-pull.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import type { Engine, EngineReplica } from './engine.ts';

/**
 * Blocks one pullRange request covers at most (16 MiB of volume): the target answers within
 * the replica timeout even on a slow disk, and progress moves in steps of this size.
 */
const PULL_BLOCKS = 4096;
/** With a bandwidth limit, a pull covers about this much time's worth of data at its rate. */
const PULL_SECONDS = 2;

export interface RebuildProgress {
  target: string;
  state: 'preparing' | 'syncing' | 'finishing' | 'done' | 'failed';
  /** Data bytes of the source's snapshots: what is examined. */
  totalBytes: number;
  /** Data bytes examined so far (sent, or skipped because the target already held them). */
  doneBytes: number;
  /** Data bytes actually sent. */
  transferredBytes: number;
  sources: string[];
  snapshot: string;
  startedAt: string;
  finishedAt?: string;
  error?: string;
}

export interface RebuildOptions {
  log: Logger;
  /** Data bytes per second the rebuild may send (0 or absent: no limit). */
  bandwidthBytesPerSecond?: number;
}

interface Work {
  layer: string;
  startBlock: number;
  blockCount: number;
}

/**
 * Brings a new or returning replica up to date while the volume stays in use (DESIGN.md §3):
 *
 * 1. At an I/O boundary: a system snapshot `rebuild-<id>` is taken on every RW replica and on
 *    the target (a returning replica's stale head becomes that snapshot there, something to
 *    compare against), the target is marked rebuilding and joins the volume in WO mode:
 *    from now on it gets every write, in its new, empty head.
 * 2. The target's chain is made the source's: missing layers created, parents and metadata
 *    set, surplus layers deleted.
 * 3. Each layer is compared range by range — extents and checksums from a source and from the
 *    target — and only blocks that differ are copied (holes stay holes; a returning replica
 *    that was away for a minute receives what changed in that minute). The engine hands the
 *    ranges to the target (`pullRange`), which copies them straight from the source named
 *    (replica/range-pull.ts): the data crosses the network once. Ranges are spread over
 *    every RW replica, read in parallel; a source that fails hands its range to another.
 *    Every block is checked against its checksum when the target stores it.
 * 4. At an I/O boundary: the target takes the source's revision counter, stops being
 *    rebuilding, and turns RW.
 */
export class Rebuild {
  readonly progress: RebuildProgress;
  private readonly engine: Engine;
  private readonly target: EngineReplica;
  private readonly client: ReplicaClient;
  private readonly options: RebuildOptions;

  constructor(engine: Engine, target: EngineReplica, client: ReplicaClient, options: RebuildOptions) {
    this.engine = engine;
    this.target = target;
    this.client = client;
    this.options = options;
    this.progress = {
      target: client.label,
      state: 'preparing',
      totalBytes: 0,
      doneBytes: 0,
      transferredBytes: 0,
      sources: [],
      snapshot: `rebuild-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`,
      startedAt: new Date().toISOString(),
    };
  }

  async run(): Promise<void> {
    const log = this.options.log;
    try {
      await this.join();
      this.progress.state = 'syncing';
      const sourceChain = await this.sources()[0].client!.control<LayerInfo[]>('listChain');
      const layers = sourceChain.filter((layer) => !layer.isHead);
      this.progress.totalBytes = layers.reduce((sum, layer) => sum + layer.dataBytes, 0);
      await this.matchChain(layers);
      await this.syncLayers(layers);
      this.progress.state = 'finishing';
      await this.finish();
      this.progress.state = 'done';
      this.progress.finishedAt = new Date().toISOString();
      log('info', 'rebuild done', { volume: this.engine.name, ...this.progress });
    } catch (error) {
      this.progress.state = 'failed';
      this.progress.error = (error as Error).message;
      this.progress.finishedAt = new Date().toISOString();
      log('warn', 'rebuild failed', {
        volume: this.engine.name,
        target: this.progress.target,
        error: this.progress.error,
      });
      this.engine.markError(this.target, `rebuild failed: ${this.progress.error}`);
      throw error;
    }
  }

  /** RW replicas to copy from (they change as replicas fail). */
  private sources(): EngineReplica[] {
    const sources = this.engine.replicas.filter(
      (replica) => replica.mode === 'RW' && replica.client !== undefined,
    );
    if (sources.length === 0) {
      throw new HornbillError(
        'DEVICE_NOT_READY',
        `volume ${this.engine.name} has no healthy replica to rebuild from`,
      );
    }
    return sources;
  }

  private async join(): Promise<void> {
    const name = this.progress.snapshot;
    const labels = { 'hornbill.io/rebuild': this.progress.target };
    await this.engine.atIoBoundary(async () => {
      await this.engine.controlAll('snapshot', { name, userCreated: false, labels });
      await this.client.control('setRebuilding', { rebuilding: true });
      await this.client.control('snapshot', { name, userCreated: false, labels });
      this.engine.attach(this.target, this.client, 'WO');
    });
    this.progress.sources = this.sources().map((replica) => replica.client!.label);
  }

  /** Makes the target's layers the source's: same names, parents and metadata; nothing else. */
  private async matchChain(layers: LayerInfo[]): Promise<void> {
    const target = this.client;
    const existing = new Map(
      (await target.control<LayerInfo[]>('listChain')).map((layer) => [layer.name, layer]),
    );
    for (const layer of topologicalOrder(layers)) {
      const metadata = {
        createdAt: layer.createdAt,
        userCreated: layer.userCreated,
        removed: layer.removed,
        labels: layer.labels,
      };
      const current = existing.get(layer.name);
      if (current === undefined) {
        await target.control('createLayer', { name: layer.name, parent: layer.parent, ...metadata });
      } else {
        if (current.parent !== layer.parent)
          await target.control('setLayerParent', { name: layer.name, parent: layer.parent });
        await target.control('setLayerMetadata', { name: layer.name, ...metadata });
      }
    }
    await target.control('setHeadParent', { parent: this.progress.snapshot });
    const wanted = new Set(layers.map((layer) => layer.name));
    // Surplus layers go leaf first (a layer goes once its children have).
    for (;;) {
      const chain = await target.control<LayerInfo[]>('listChain');
      const surplus = chain.find(
        (layer) => !layer.isHead && !wanted.has(layer.name) && layer.children.length === 0,
      );
      if (surplus === undefined) break;
      await target.control('deleteLayerNow', { name: surplus.name });
    }
  }

  private async syncLayers(layers: LayerInfo[]): Promise<void> {
    const sizeBytes = this.engine.sizeBytes;
    // One pipeline per source replica: several healthy replicas are read at once, and the
    // bandwidth limit is shared among them.
    const pipelineCount = this.sources().length;
    const limit = this.options.bandwidthBytesPerSecond ?? 0;
    const pipelineLimit = limit > 0 ? limit / pipelineCount : 0;
    const pullBlocks =
      pipelineLimit > 0
        ? Math.max(16, Math.min(PULL_BLOCKS, Math.floor((pipelineLimit * PULL_SECONDS) / BLOCK_SIZE)))
        : PULL_BLOCKS;
    const work: Work[] = [];
    for (const layer of layers) {
      const layerBlocks = Math.min(layer.sizeBytes, sizeBytes) / BLOCK_SIZE;
      for (let startBlock = 0; startBlock < layerBlocks; startBlock += pullBlocks) {
        work.push({
          layer: layer.name,
          startBlock,
          blockCount: Math.min(pullBlocks, layerBlocks - startBlock),
        });
      }
    }
    const pipelines = Array.from({ length: pipelineCount }, (_, index) =>
      this.pipeline(work, index, pipelineLimit),
    );
    await Promise.all(pipelines);
  }

  /**
   * Hands ranges to the target one at a time: the target compares each with a source's and
   * copies what differs straight from that source (replica/range-pull.ts). A source that
   * fails (REBUILD_SOURCE_FAILED) hands the range to another.
   */
  private async pipeline(work: Work[], preferred: number, bandwidthBytesPerSecond: number): Promise<void> {
    for (let item = work.shift(); item !== undefined; item = work.shift()) {
      for (let attempt = 0; ; attempt++) {
        const sources = this.sources();
        const source = sources[(preferred + attempt) % sources.length];
        try {
          const result = await this.client.control<PullResult>('pullRange', {
            source: source.address,
            layer: item.layer,
            startBlock: item.startBlock,
            blockCount: item.blockCount,
            bandwidthBytesPerSecond,
            timeoutMs: this.engine.replicaTimeoutMs,
          });
          this.progress.doneBytes += result.examinedBytes;
          this.progress.transferredBytes += result.transferredBytes;
          break;
        } catch (error) {
          if (!isHornbillError(error, 'REBUILD_SOURCE_FAILED') || this.client.failed || attempt >= 3)
            throw error;
          // Copied before the source failed; the retry skips these blocks.
          const copied = error.details.transferredBytes;
          if (typeof copied === 'number') this.progress.transferredBytes += copied;
          this.options.log('warn', 'rebuild source failed for a range; trying another replica', {
            volume: this.engine.name,
            source: `${source.address.host}:${source.address.port}`,
            error: (error as Error).message,
          });
        }
      }
    }
  }

  private async finish(): Promise<void> {
    // The copied data made durable first, while I/O goes on: the checkpoint at the boundary
    // then syncs only what the volume wrote since (a 1.5 GiB rebuild, the last 0.5 GiB of
    // it not yet checkpointed, paused I/O for 283 ms at its end without this, 20 ms with it).
    await this.client.flush();
    await this.engine.atIoBoundary(async () => {
      const info = await this.sources()[0].client!.control<ReplicaInfo>('info');
      await this.client.control('setRevisionCounter', { revisionCounter: info.revisionCounter });
      await this.client.control('setRebuilding', { rebuilding: false });
      if (this.client.failed)
        throw new HornbillError('REPLICA_UNREACHABLE', `rebuild target ${this.client.label} failed`);
      this.engine.setMode(this.target, 'RW');
    });
  }
}

/** Parents before children. */
function topologicalOrder(layers: LayerInfo[]): LayerInfo[] {
  const byName = new Map(layers.map((layer) => [layer.name, layer]));
  const ordered: LayerInfo[] = [];
  const placed = new Set<string>();
  const place = (layer: LayerInfo, depth: number) => {
    if (placed.has(layer.name)) return;
    if (depth > layers.length) throw new HornbillError('INTERNAL', 'cycle in a source replica chain');
    const parent =
      layer.parent === null || layer.parent === HEAD_DISPLAY_NAME ? undefined : byName.get(layer.parent);
    if (parent !== undefined) place(parent, depth + 1);
    placed.add(layer.name);
    ordered.push(layer);
  };
  for (const layer of layers) place(layer, 0);
  return ordered;
}
