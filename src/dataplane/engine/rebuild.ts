import { HornbillError, isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { BLOCK_SIZE, HEAD_DISPLAY_NAME } from '../../storage/constants.ts';
import type { LayerExtent, LayerInfo } from '../../storage/replica-store.ts';
import { ReplicaClient } from '../protocol/replica-client.ts';
import type { ReplicaInfo } from '../replica/replica-control.ts';
import { BandwidthLimiter } from './bandwidth-limiter.ts';
import type { Engine, EngineReplica } from './engine.ts';
import { readPackedRuns, STATE_DATA } from './packed-reads.ts';

/** Blocks compared per extents request (64 MiB of volume). */
const RANGE_BLOCKS = 16384;
/** Blocks a data transfer spans at most (1 MiB of volume; also the transfer buffer's size). */
const TRANSFER_BLOCKS = 256;
/**
 * Data blocks one transfer carries at most (256 KiB). The target writes each transfer as one
 * unit while the volume's own writes to it wait behind: with 1 MiB transfers a foreground
 * QD1 write's p99 during a rebuild was 12–14 ms, with 256 KiB 8–10 ms and the workload got
 * 20–30 % more I/O done, for the same rebuild time (bench/compare/rebuild.ts --size 1G,
 * three runs each, 2026-11-26).
 */
const TRANSFER_DATA_BLOCKS = 64;
/** Matching blocks a data span may bridge to take in the next differing block (32 KiB). */
const MERGE_GAP_BLOCKS = 8;

const STATE_ZERO = 2;

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
 *    target — and only blocks that differ are sent (holes stay holes; a returning replica
 *    that was away for a minute receives what changed in that minute). Ranges are spread
 *    over every RW replica, read in parallel; a source that fails hands its range to another.
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
  private readonly limiter: BandwidthLimiter;

  constructor(engine: Engine, target: EngineReplica, client: ReplicaClient, options: RebuildOptions) {
    this.engine = engine;
    this.target = target;
    this.client = client;
    this.options = options;
    this.limiter = new BandwidthLimiter(options.bandwidthBytesPerSecond ?? 0);
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
    const work: Work[] = [];
    for (const layer of layers) {
      const layerBlocks = Math.min(layer.sizeBytes, sizeBytes) / BLOCK_SIZE;
      for (let startBlock = 0; startBlock < layerBlocks; startBlock += RANGE_BLOCKS) {
        work.push({
          layer: layer.name,
          startBlock,
          blockCount: Math.min(RANGE_BLOCKS, layerBlocks - startBlock),
        });
      }
    }
    // One pipeline per source replica: several healthy replicas are read at once.
    const pipelines = this.sources().map((_, index) => this.pipeline(work, index));
    await Promise.all(pipelines);
  }

  private async pipeline(work: Work[], preferred: number): Promise<void> {
    const buffer = Buffer.alloc(TRANSFER_BLOCKS * BLOCK_SIZE);
    for (let item = work.shift(); item !== undefined; item = work.shift()) {
      for (let attempt = 0; ; attempt++) {
        const sources = this.sources();
        const source = sources[(preferred + attempt) % sources.length];
        try {
          await this.syncRange(source.client!, item, buffer);
          break;
        } catch (error) {
          // A source that broke or holds a bad block: try the range from another one.
          const sourceProblem =
            ReplicaClient.isConnectionFailure(error) || isHornbillError(error, 'STORE_CHECKSUM_MISMATCH');
          if (this.client.failed || !sourceProblem || attempt >= 3) throw error;
          this.options.log('warn', 'rebuild source failed for a range; trying another replica', {
            volume: this.engine.name,
            source: source.client?.label,
            error: (error as Error).message,
          });
        }
      }
    }
  }

  /** Compares one range of one layer and sends what differs. */
  private async syncRange(source: ReplicaClient, item: Work, buffer: Buffer): Promise<void> {
    const [wanted, held] = await Promise.all([
      source.layerExtents(item.layer, item.startBlock, item.blockCount),
      this.client.layerExtents(item.layer, item.startBlock, item.blockCount),
    ]);
    const want = blockMap(wanted, item);
    const have = blockMap(held, item);
    let index = 0;
    while (index < item.blockCount) {
      if (!differs(want, have, index)) {
        if (want.states[index] === STATE_DATA) this.progress.doneBytes += BLOCK_SIZE;
        index++;
        continue;
      }
      const action = want.states[index];
      const end =
        action === STATE_DATA
          ? dataSpanEnd(want, have, index, item.blockCount)
          : holeRunEnd(want, have, index, item.blockCount);
      const count = end - index;
      const startBlock = item.startBlock + index;
      const states = want.states.subarray(index, end);
      const checksums = want.checksums.subarray(index, end);
      if (action === STATE_DATA) {
        // One write for the span, whose data runs are read from the source all at once
        // (pipelined on one connection): a fragmented layer (4 KiB data / 4 KiB hole)
        // costs two round trips per span, not two per run. On the wire a layer write
        // carries the data of its DATA blocks only, packed; blocks of the span that already
        // match are sent again unchanged.
        let dataBlocks = 0;
        for (let block = 0; block < count; block++) if (states[block] === STATE_DATA) dataBlocks++;
        await this.limiter.take(dataBlocks * BLOCK_SIZE);
        // Every read settles before the buffer can be reused (a retry from another source).
        await readPackedRuns(source, startBlock, states, 0, count, () => item.layer, buffer);
        const data = buffer.subarray(0, dataBlocks * BLOCK_SIZE);
        await this.client.writeLayer(startBlock, { layer: item.layer, states, checksums, data });
        this.progress.transferredBytes += dataBlocks * BLOCK_SIZE;
        this.progress.doneBytes += dataBlocks * BLOCK_SIZE;
      } else {
        await this.client.writeLayer(startBlock, {
          layer: item.layer,
          states,
          checksums,
          data: Buffer.alloc(0),
        });
      }
      index = end;
    }
  }

  private async finish(): Promise<void> {
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

interface BlockMap {
  states: Uint8Array;
  checksums: Uint32Array;
}

function blockMap(extents: LayerExtent[], item: Work): BlockMap {
  const map: BlockMap = {
    states: new Uint8Array(item.blockCount),
    checksums: new Uint32Array(item.blockCount),
  };
  for (const extent of extents) {
    for (let block = 0; block < extent.blockCount; block++) {
      const index = extent.startBlock - item.startBlock + block;
      map.states[index] = extent.state === 'data' ? STATE_DATA : STATE_ZERO;
      map.checksums[index] = extent.checksums?.[block] ?? 0;
    }
  }
  return map;
}

/**
 * End of a span that starts at a differing data block: further differing blocks join it
 * while the gap of matching blocks before them is at most MERGE_GAP_BLOCKS, up to
 * TRANSFER_BLOCKS blocks in all and TRANSFER_DATA_BLOCKS data blocks (every data block of
 * the span is sent, bridged ones too). Ends after its last differing block.
 */
function dataSpanEnd(want: BlockMap, have: BlockMap, start: number, limit: number): number {
  let last = start;
  let dataBlocks = 1;
  for (let probe = start + 1; probe < limit && probe - start < TRANSFER_BLOCKS; probe++) {
    if (probe - last - 1 > MERGE_GAP_BLOCKS) break;
    if (want.states[probe] === STATE_DATA) dataBlocks++;
    if (dataBlocks > TRANSFER_DATA_BLOCKS) break;
    if (differs(want, have, probe)) last = probe;
  }
  return last + 1;
}

/** End of a run of differing blocks of the same non-data state (zeros or absent). */
function holeRunEnd(want: BlockMap, have: BlockMap, start: number, limit: number): number {
  let end = start + 1;
  while (end < limit && want.states[end] === want.states[start] && differs(want, have, end)) end++;
  return end;
}

function differs(want: BlockMap, have: BlockMap, index: number): boolean {
  if (want.states[index] !== have.states[index]) return true;
  return want.states[index] === STATE_DATA && want.checksums[index] !== have.checksums[index];
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
