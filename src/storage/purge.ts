import { assert } from '../assert.ts';
import { unlinkLayerFile } from './chain-operations.ts';
import { BLOCK_SHIFT, BlockState, CHUNK_BLOCKS } from './constants.ts';
import { failpoint } from './failpoints.ts';
import type { LayerRecord } from './index-db.ts';
import type { Layer } from './layer.ts';
import { checksumError, type StoreCore } from './store-core.ts';

/**
 * Merges removed snapshots away, in steps of at most one chunk (4 MiB) of copying, so that
 * reads and writes go on between steps (the store is single-threaded; the caller
 * interleaves `step()` with I/O).
 *
 * A removed snapshot S:
 * - with no children is deleted (it is on no path to the head);
 * - with one child C is merged with it. Usually S's blocks that C lacks are copied down
 *   into C ("down"), then S leaves the chain. When C is not the head and holds fewer
 *   blocks than S, C's blocks are copied up into S instead ("up") and S takes C's place,
 *   name and metadata — the cheaper copy, as Longhorn's coalesce does.
 * - with several children stays (its data is shared).
 *
 * Every copy is an ordinary journaled apply into the target layer, so a crash at any
 * point leaves a consistent store: copied blocks are identical to what the reader
 * already saw through the chain, and the final switch is one index transaction. After a
 * crash the merge simply runs again; blocks already copied are skipped.
 */
export class PurgeJob {
  private readonly core: StoreCore;
  private merge: MergeState | undefined;
  private buffer: Buffer | undefined;
  /** Layers merged or deleted so far. */
  purgedLayers = 0;
  /** Bytes of block data copied so far. */
  copiedBytes = 0;

  constructor(core: StoreCore) {
    this.core = core;
  }

  /** Does one bounded piece of work; returns true when nothing is left to purge. */
  step(): boolean {
    this.core.checkOpen();
    if (this.merge !== undefined && !this.mergeStillValid(this.merge)) this.merge = undefined;
    if (this.merge === undefined) {
      const candidate = this.nextCandidate();
      if (candidate === undefined) return true;
      if (candidate.childIds.size === 0) {
        this.deleteLeaf(candidate);
        return false;
      }
      this.merge = this.planMerge(candidate);
    }
    const merge = this.merge;
    if (merge.nextChunk < merge.chunkIndexes.length) {
      this.copyChunk(merge, merge.chunkIndexes[merge.nextChunk]);
      merge.nextChunk++;
      return false;
    }
    this.finishMerge(merge);
    this.merge = undefined;
    return false;
  }

  /** Runs to the end without yielding. */
  run(): void {
    while (!this.step()) {
      // Each step is bounded; the loop ends when no removed layer can be purged.
    }
  }

  private nextCandidate(): Layer | undefined {
    let best: Layer | undefined;
    for (const layer of this.core.layers.values()) {
      if (!layer.record.removed || layer === this.core.head || layer.childIds.size > 1) continue;
      if (best === undefined || layer.id < best.id) best = layer;
    }
    return best;
  }

  private planMerge(source: Layer): MergeState {
    const child = this.core.layers.get([...source.childIds][0])!;
    const direction =
      child !== this.core.head && child.table.heldBlocks < source.table.heldBlocks ? 'up' : 'down';
    const from = direction === 'down' ? source : child;
    return {
      sourceId: source.id,
      childId: child.id,
      direction,
      chunkIndexes: from.table.sortedChunkIndexes(),
      nextChunk: 0,
    };
  }

  private mergeStillValid(merge: MergeState): boolean {
    const source = this.core.layers.get(merge.sourceId);
    const child = this.core.layers.get(merge.childId);
    if (source === undefined || child === undefined || !source.record.removed) return false;
    if (source.childIds.size !== 1 || child.record.parentId !== source.id) return false;
    return merge.direction === 'down' || child !== this.core.head;
  }

  /** Copies the blocks of one chunk from the merge's "from" layer into its "to" layer. */
  private copyChunk(merge: MergeState, chunkIndex: number): void {
    const source = this.core.layers.get(merge.sourceId)!;
    const child = this.core.layers.get(merge.childId)!;
    const [from, to] = merge.direction === 'down' ? [source, child] : [child, source];
    const chunk = from.table.chunks.get(chunkIndex);
    if (chunk === undefined) return;
    this.buffer ??= Buffer.alloc(CHUNK_BLOCKS << BLOCK_SHIFT);
    const base = chunkIndex * CHUNK_BLOCKS;
    let index = 0;
    while (index < CHUNK_BLOCKS) {
      if (!this.needsCopy(merge, from, to, base + index, chunk.states[index])) {
        index++;
        continue;
      }
      let end = index + 1;
      while (
        end < CHUNK_BLOCKS &&
        chunk.states[end] === chunk.states[index] &&
        this.needsCopy(merge, from, to, base + end, chunk.states[end])
      ) {
        end++;
      }
      this.copyRun(from, to, base + index, end - index, chunk.states[index] === BlockState.DATA);
      index = end;
    }
  }

  private needsCopy(merge: MergeState, from: Layer, to: Layer, block: number, state: number): boolean {
    if (state === BlockState.ABSENT) return false;
    if (merge.direction === 'down') return to.table.state(block) === BlockState.ABSENT;
    // Up: the child's content replaces the parent's; skip blocks already equal.
    if (to.table.state(block) !== state) return true;
    return state === BlockState.DATA && to.table.checksum(block) !== from.table.checksum(block);
  }

  private copyRun(from: Layer, to: Layer, firstBlock: number, blockCount: number, isData: boolean): void {
    const core = this.core;
    if (isData) {
      const mismatches = core.readLayerRun(from, firstBlock, blockCount, this.buffer!, 0, undefined);
      if (mismatches !== undefined) throw checksumError(mismatches, core.directory);
      for (let index = 0; index < blockCount; index++) {
        core.stagedStates[index] = BlockState.DATA;
        core.stagedChecksums[index] = from.table.checksum(firstBlock + index);
      }
      core.applyStaged(to, firstBlock, blockCount, this.buffer!, 0);
      this.copiedBytes += blockCount << BLOCK_SHIFT;
    } else {
      for (let index = 0; index < blockCount; index++) {
        core.stagedStates[index] = BlockState.ZERO;
        core.stagedChecksums[index] = 0;
      }
      core.applyStaged(to, firstBlock, blockCount, null, 0);
    }
    core.maybeCheckpoint();
  }

  private finishMerge(merge: MergeState): void {
    const core = this.core;
    const source = core.layers.get(merge.sourceId)!;
    const child = core.layers.get(merge.childId)!;
    if (merge.direction === 'down') {
      assertCovers(child, source);
      const childRecord: LayerRecord = { ...child.record, parentId: source.record.parentId, hash: null };
      this.commitRemoval(source, [childRecord], child);
      core.setParent(child, source.record.parentId);
      child.record.hash = null;
    } else {
      // The parent takes the child's place: the child's identity, the child's children.
      assertCovers(source, child);
      const sourceRecord: LayerRecord = {
        ...child.record,
        id: source.id,
        parentId: source.record.parentId,
        hash: null,
      };
      const grandchildren = [...child.childIds].map((id) => core.layers.get(id)!);
      const grandchildRecords = grandchildren.map((layer) => ({ ...layer.record, parentId: source.id }));
      this.commitRemoval(child, [sourceRecord, ...grandchildRecords], source);
      core.renameLayer(source, sourceRecord.name);
      Object.assign(source.record, sourceRecord);
      for (const layer of grandchildren) core.setParent(layer, source.id);
    }
    core.collectGarbage();
    this.purgedLayers++;
  }

  private deleteLeaf(layer: Layer): void {
    this.commitRemoval(layer, [], undefined);
    this.core.collectGarbage();
    this.purgedLayers++;
  }

  /**
   * One durable transaction: the layer's records go, its id joins the garbage list,
   * `records` are written. In memory the layer leaves the live chain (if it was on it),
   * `survivor` — which now holds every block it held — taking over its place in reads.
   */
  private commitRemoval(layer: Layer, records: LayerRecord[], survivor: Layer | undefined): void {
    const core = this.core;
    core.checkpoint({
      putLayers: records,
      deleteLayers: [layer.id],
      volume: { ...core.volume, garbageLayerIds: [...core.volume.garbageLayerIds, layer.id] },
    });
    failpoint('layer-removal-committed');
    if (layer.depth >= 0) core.removeFromChain(layer, survivor!);
    core.dropLayer(layer);
    unlinkLayerFile(core, layer.id);
  }
}

interface MergeState {
  sourceId: number;
  childId: number;
  direction: 'down' | 'up';
  /** Chunk indexes of the layer being copied from, fixed when the merge was planned. */
  chunkIndexes: number[];
  nextChunk: number;
}

/** Every block `from` holds, `into` holds too (the copy is complete). */
function assertCovers(into: Layer, from: Layer): void {
  for (const [chunkIndex, chunk] of from.table.chunks) {
    const base = chunkIndex * CHUNK_BLOCKS;
    for (let index = 0; index < CHUNK_BLOCKS; index++) {
      if (chunk.states[index] !== BlockState.ABSENT) {
        assert(into.table.state(base + index) !== BlockState.ABSENT, 'merge left a block uncopied');
      }
    }
  }
}
