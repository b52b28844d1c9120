/**
 * The replica store's in-memory state (layers, slots, the live chain, the resolution map,
 * the below-head coverage) and the primitives that keep it consistent. StoreCore builds the
 * reads, writes and durability on top of it.
 */
import path from 'node:path';
import { assert } from '../assert.ts';
import { HornbillError } from '../errors.ts';
import { BLOCK_SIZE, BlockState, type BlockStateValue, CHUNK_BLOCKS, CHUNK_SHIFT } from './constants.ts';
import type { IndexDb, VolumeRecord } from './index-db.ts';
import type { Journal } from './journal.ts';
import type { Layer } from './layer.ts';
import { type LayerFile, OpenFileCache } from './layer-file.ts';
import { ResolutionMap } from './resolution-map.ts';

export interface StoreCoreOptions {
  directory: string;
  index: IndexDb;
  volume: VolumeRecord;
  journal: Journal;
  lockFd: number;
  maxOpenLayerFiles: number;
  checkpointJournalBytes: number;
}

/**
 * The state part of StoreCore: layers and their slots, the live chain, the resolution map and
 * the below-head coverage, with the operations that change them together. Internal to
 * src/storage; only ever instantiated as a StoreCore.
 */
export class StoreState {
  readonly directory: string;
  readonly layersDirectory: string;
  readonly journalDirectory: string;
  readonly index: IndexDb;
  readonly files: OpenFileCache;
  readonly layers = new Map<number, Layer>();
  readonly layersByName = new Map<string, Layer>();
  /** slot → layer; slot 0 is never used. */
  readonly slots: (Layer | undefined)[] = [undefined];
  private readonly freeSlots: number[] = [];
  volume: VolumeRecord;
  journal: Journal;
  head!: Layer;
  /** The live chain, root first, head last. */
  chain: Layer[] = [];
  resolution: ResolutionMap;
  /** Per chunk: how many live-chain layers below the head hold any block of it. */
  lowerHeld: Uint32Array;
  readonly dirtyFiles = new Set<LayerFile>();
  revisionCounter: number;
  closed = false;
  readonly lockFd: number;
  readonly checkpointJournalBytes: number;

  constructor(options: StoreCoreOptions) {
    this.directory = options.directory;
    this.layersDirectory = path.join(options.directory, 'layers');
    this.journalDirectory = path.join(options.directory, 'journal');
    this.index = options.index;
    this.volume = options.volume;
    this.journal = options.journal;
    this.lockFd = options.lockFd;
    this.files = new OpenFileCache(options.maxOpenLayerFiles);
    this.checkpointJournalBytes = options.checkpointJournalBytes;
    this.revisionCounter = options.volume.revisionCounter;
    this.resolution = new ResolutionMap(this.blockCount);
    this.lowerHeld = new Uint32Array(Math.ceil(this.blockCount / CHUNK_BLOCKS));
  }

  get blockCount(): number {
    return this.volume.sizeBytes / BLOCK_SIZE;
  }

  checkOpen(): void {
    if (this.closed) throw new HornbillError('STORE_CLOSED', `replica store ${this.directory} is closed`);
  }

  // ---- layers --------------------------------------------------------------------------

  addLayer(layer: Layer): void {
    assert(!this.layers.has(layer.id), 'layer added twice');
    layer.slot = this.freeSlots.pop() ?? this.slots.length;
    this.slots[layer.slot] = layer;
    this.layers.set(layer.id, layer);
    if (layer.record.name !== null) this.layersByName.set(layer.record.name, layer);
  }

  /** Forgets a layer in memory (its records and file are the caller's business). */
  dropLayer(layer: Layer): void {
    assert(this.layers.get(layer.id) === layer, 'dropping an unknown layer');
    this.layers.delete(layer.id);
    if (layer.record.name !== null) this.layersByName.delete(layer.record.name);
    this.slots[layer.slot] = undefined;
    this.freeSlots.push(layer.slot);
    if (layer.record.parentId !== null) this.layers.get(layer.record.parentId)?.childIds.delete(layer.id);
    this.files.forget(layer.file);
    this.dirtyFiles.delete(layer.file);
  }

  renameLayer(layer: Layer, name: string | null): void {
    if (layer.record.name !== null) this.layersByName.delete(layer.record.name);
    layer.record.name = name;
    if (name !== null) this.layersByName.set(name, layer);
  }

  setParent(layer: Layer, parentId: number | null): void {
    if (layer.record.parentId !== null) this.layers.get(layer.record.parentId)?.childIds.delete(layer.id);
    layer.record.parentId = parentId;
    if (parentId !== null) this.layers.get(parentId)!.childIds.add(layer.id);
  }

  /** Recomputes the live chain, depths, the below-head coverage and the whole resolution map. */
  rebuildChain(): void {
    for (const layer of this.chain) layer.depth = -1;
    const chain: Layer[] = [];
    for (let layer: Layer | undefined = this.head; layer !== undefined; ) {
      assert(layer.depth === -1 && chain.length <= this.layers.size, 'cycle in the layer chain');
      layer.depth = 0;
      chain.push(layer);
      layer = layer.record.parentId === null ? undefined : this.layers.get(layer.record.parentId);
    }
    chain.reverse();
    chain.forEach((layer, depth) => {
      layer.depth = depth;
    });
    this.chain = chain;
    this.recountLowerHeld();
    this.resolution.clear();
    for (const layer of chain) {
      for (const [chunkIndex, chunk] of layer.table.chunks) {
        const base = chunkIndex * CHUNK_BLOCKS;
        for (let index = 0; index < CHUNK_BLOCKS; index++) {
          if (chunk.states[index] !== BlockState.ABSENT) this.resolution.set(base + index, layer.slot);
        }
      }
    }
  }

  /**
   * Puts a new, empty head on top of the live chain (a snapshot): the old head keeps its
   * slot and its resolution entries, so only the below-head coverage changes. O(chunks of
   * the old head), independent of the chain length.
   */
  appendHead(head: Layer): void {
    assert(
      head.table.heldBlocks === 0 && head.record.parentId === this.head.id,
      'appended head must be empty',
    );
    const previous = this.head;
    for (const chunkIndex of previous.table.chunks.keys()) this.lowerHeld[chunkIndex]++;
    head.depth = this.chain.length;
    this.chain.push(head);
    this.head = head;
  }

  /**
   * Takes a layer that holds no block the rest of the chain still needs out of the live
   * chain (purge): `replacement` (a chain layer that now holds all its blocks) takes over
   * its resolution entries, the layers above move down one place, and its chunks stop
   * counting as below-head coverage. O(its chunks + chain length).
   */
  removeFromChain(layer: Layer, replacement: Layer): void {
    if (layer.depth < 0) return;
    assert(
      layer !== this.head && replacement.depth >= 0,
      'removing the head or replacing with a layer off the chain',
    );
    this.resolution.replaceSlot(layer.slot, replacement.slot, layer.table.chunks.keys());
    for (const chunkIndex of layer.table.chunks.keys()) this.lowerHeld[chunkIndex]--;
    this.chain.splice(layer.depth, 1);
    for (let depth = layer.depth; depth < this.chain.length; depth++) this.chain[depth].depth = depth;
    layer.depth = -1;
  }

  recountLowerHeld(): void {
    this.lowerHeld = new Uint32Array(Math.ceil(this.blockCount / CHUNK_BLOCKS));
    for (const layer of this.chain) {
      if (layer === this.head) continue;
      for (const chunkIndex of layer.table.chunks.keys()) this.lowerHeld[chunkIndex]++;
    }
  }

  /**
   * Recomputes every derived structure from the layer tables — the live chain and depths,
   * the resolution map, the below-head coverage, the per-table counters — and compares it
   * with what the incremental updates maintained. O(volume blocks + held blocks): for tests
   * and for `hornbill replica inspect`, never on the I/O path.
   */
  selfCheck(): void {
    const chain: Layer[] = [];
    for (let layer: Layer | undefined = this.head; layer !== undefined; ) {
      chain.unshift(layer);
      assert(chain.length <= this.layers.size, 'selfCheck: cycle in the chain');
      layer = layer.record.parentId === null ? undefined : this.layers.get(layer.record.parentId);
    }
    assert(chain.length === this.chain.length, 'selfCheck: chain length');
    for (const [depth, layer] of chain.entries()) {
      assert(this.chain[depth] === layer && layer.depth === depth, 'selfCheck: chain order');
    }
    for (const layer of this.layers.values()) {
      assert(layer.depth >= 0 === chain.includes(layer), 'selfCheck: depth of a layer off the chain');
      let held = 0;
      let data = 0;
      for (const chunk of layer.table.chunks.values()) {
        let chunkHeld = 0;
        let chunkData = 0;
        for (let index = 0; index < CHUNK_BLOCKS; index++) {
          if (chunk.states[index] !== BlockState.ABSENT) chunkHeld++;
          if (chunk.states[index] === BlockState.DATA) chunkData++;
        }
        assert(
          chunkHeld > 0 && chunkHeld === chunk.held && chunkData === chunk.dataBlocks,
          'selfCheck: chunk counters',
        );
        held += chunkHeld;
        data += chunkData;
      }
      assert(held === layer.table.heldBlocks && data === layer.table.dataBlocks, 'selfCheck: table counters');
    }
    const lowerHeld = new Uint32Array(this.lowerHeld.length);
    for (const layer of chain) {
      if (layer === this.head) continue;
      for (const chunkIndex of layer.table.chunks.keys()) lowerHeld[chunkIndex]++;
    }
    assert(
      lowerHeld.every((count, index) => count === this.lowerHeld[index]),
      'selfCheck: below-head coverage',
    );
    // Resolution: only chunks some chain layer holds can have entries (a sparse 16 TiB volume
    // has 4 billion blocks; checking them one by one would take minutes).
    const held = new Set<number>();
    for (const layer of chain) for (const chunkIndex of layer.table.chunks.keys()) held.add(chunkIndex);
    for (const chunkIndex of this.resolution.nonEmptyChunks()) {
      assert(
        held.has(chunkIndex),
        `selfCheck: resolution entries in chunk ${chunkIndex}, which no layer holds`,
      );
    }
    for (const chunkIndex of held) {
      for (let block = chunkIndex * CHUNK_BLOCKS; block < (chunkIndex + 1) * CHUNK_BLOCKS; block++) {
        let expected = 0;
        for (let depth = chain.length - 1; depth >= 0; depth--) {
          if (chain[depth].table.state(block) !== BlockState.ABSENT) {
            expected = chain[depth].slot;
            break;
          }
        }
        assert(this.resolution.get(block) === expected, `selfCheck: resolution of block ${block}`);
      }
    }
  }

  /** The state a head block takes when it becomes zero: ABSENT if nothing below could show through. */
  zeroStateFor(block: number): BlockStateValue {
    if (this.volume.rebuilding) return BlockState.ZERO;
    return this.lowerHeld[block >>> CHUNK_SHIFT] === 0 ? BlockState.ABSENT : BlockState.ZERO;
  }
}
