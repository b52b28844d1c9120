import fs from 'node:fs';
import path from 'node:path';
import { assert } from '../assert.ts';
import { HornbillError } from '../errors.ts';
import { crc32cBlocks, crc32cRange } from '../native.ts';
import { isZeroBlock, ZERO_BLOCK_CHECKSUM } from './checksum.ts';
import {
  BLOCK_SHIFT,
  BLOCK_SIZE,
  BlockState,
  type BlockStateValue,
  CHUNK_BLOCKS,
  CHUNK_SHIFT,
  MAX_IO_BLOCKS,
} from './constants.ts';
import { failpoint } from './failpoints.ts';
import type { IndexBatch, IndexDb, VolumeRecord } from './index-db.ts';
import { Journal } from './journal.ts';
import type { Layer } from './layer.ts';
import { type LayerFile, layerFileName, OpenFileCache } from './layer-file.ts';
import { ResolutionMap } from './resolution-map.ts';

/** Blocks whose stored checksum did not match their data during one read. */
export interface ChecksumMismatch {
  layerId: number;
  layerName: string;
  block: number;
  expected: number;
  actual: number;
}

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
 * The replica store's state and its primitives. Internal to src/storage: the public face
 * is ReplicaStore; the operation modules (chain, purge, integrity, sync, export, recovery)
 * work on this object. Everything is synchronous and owned by one thread, so every
 * operation is atomic with respect to every other.
 */
export class StoreCore {
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

  /** Per-I/O scratch, allocated once: states and checksums of the blocks being applied. */
  readonly stagedStates = new Uint8Array(MAX_IO_BLOCKS);
  readonly stagedChecksums = new Uint32Array(MAX_IO_BLOCKS);
  /** Checksums computed while verifying a read (one native call per run of up to 256 blocks). */
  readonly verifyChecksums = new Uint32Array(256);
  /** Blocks for read-modify-write of the partial first and last block of a write. */
  readonly scratchBlock = Buffer.alloc(BLOCK_SIZE);
  readonly scratchTailBlock = Buffer.alloc(BLOCK_SIZE);

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

  // ---- reads ---------------------------------------------------------------------------

  /**
   * Reads whole blocks of the live volume into `target`. Consecutive blocks served by the
   * same layer are read with one pread; every data block is checked against its checksum.
   */
  readResolved(
    firstBlock: number,
    blockCount: number,
    target: Uint8Array,
    targetOffset: number,
    checksums?: Uint32Array,
  ): void {
    let mismatches: ChecksumMismatch[] | undefined;
    let index = 0;
    while (index < blockCount) {
      const block = firstBlock + index;
      const slot = this.resolution.get(block);
      const layer = slot === 0 ? undefined : this.slots[slot];
      const state = layer === undefined ? BlockState.ABSENT : layer.table.state(block);
      let end = index + 1;
      if (layer === undefined || state !== BlockState.DATA) {
        assert(
          layer === undefined || state === BlockState.ZERO,
          'resolution points at a layer without the block',
        );
        while (end < blockCount && this.isZeroInView(firstBlock + end)) end++;
        target.fill(0, targetOffset + (index << BLOCK_SHIFT), targetOffset + (end << BLOCK_SHIFT));
        if (checksums !== undefined) checksums.fill(ZERO_BLOCK_CHECKSUM, index, end);
      } else {
        while (
          end < blockCount &&
          this.resolution.get(firstBlock + end) === slot &&
          layer.table.state(firstBlock + end) === BlockState.DATA
        ) {
          end++;
        }
        mismatches = this.readLayerRun(
          layer,
          block,
          end - index,
          target,
          targetOffset + (index << BLOCK_SHIFT),
          mismatches,
        );
        if (checksums !== undefined) {
          for (let at = index; at < end; at++) checksums[at] = layer.table.checksum(firstBlock + at);
        }
      }
      index = end;
    }
    if (mismatches !== undefined) throw checksumError(mismatches, this.directory);
  }

  /**
   * The common read, one aligned 4 KiB block of data, without the general path's loops:
   * one table lookup, one pread, one checksum. Returns false (having done nothing) for
   * anything else — out of range, unaligned, a zero block — which the general path handles.
   */
  readOneBlock(offsetBytes: number, target: Uint8Array): boolean {
    if (
      !(
        offsetBytes >= 0 &&
        offsetBytes % BLOCK_SIZE === 0 &&
        offsetBytes + BLOCK_SIZE <= this.volume.sizeBytes
      )
    )
      return false;
    const block = offsetBytes / BLOCK_SIZE;
    const slot = this.resolution.get(block);
    if (slot === 0) return false;
    const layer = this.slots[slot]!;
    const chunk = layer.table.chunks.get(block >>> CHUNK_SHIFT);
    const index = block & (CHUNK_BLOCKS - 1);
    if (chunk === undefined || chunk.states[index] !== BlockState.DATA) return false;
    this.files.use(layer.file).readBlocks(block, 1, target, 0);
    const actual = crc32cRange(target, 0, BLOCK_SIZE);
    const expected = chunk.checksums[index];
    if (actual !== expected) {
      throw checksumError(
        [{ layerId: layer.id, layerName: layer.displayName, block, expected, actual }],
        this.directory,
      );
    }
    return true;
  }

  private isZeroInView(block: number): boolean {
    const slot = this.resolution.get(block);
    return slot === 0 || this.slots[slot]!.table.state(block) === BlockState.ZERO;
  }

  /** Reads DATA blocks of one layer and checks them; returns the (possibly new) list of mismatches. */
  readLayerRun(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    target: Uint8Array,
    targetOffset: number,
    mismatches: ChecksumMismatch[] | undefined,
  ): ChecksumMismatch[] | undefined {
    this.files.use(layer.file).readBlocks(firstBlock, blockCount, target, targetOffset);
    const actual = this.verifyChecksums;
    for (let done = 0; done < blockCount; done += actual.length) {
      const count = Math.min(actual.length, blockCount - done);
      crc32cBlocks(target, targetOffset + (done << BLOCK_SHIFT), BLOCK_SIZE, count, actual, 0);
      for (let index = 0; index < count; index++) {
        const block = firstBlock + done + index;
        const expected = layer.table.checksum(block);
        if (actual[index] !== expected) {
          mismatches ??= [];
          mismatches.push({
            layerId: layer.id,
            layerName: layer.displayName,
            block,
            expected,
            actual: actual[index],
          });
        }
      }
    }
    return mismatches;
  }

  // ---- writes --------------------------------------------------------------------------

  /** Stages states and checksums for client data: zero blocks become ZERO (or ABSENT in the head). */
  stageData(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    source: Uint8Array,
    sourceOffset: number,
    stageOffset = 0,
  ): void {
    crc32cBlocks(source, sourceOffset, BLOCK_SIZE, blockCount, this.stagedChecksums, stageOffset);
    for (let index = 0; index < blockCount; index++) {
      const staged = stageOffset + index;
      if (
        this.stagedChecksums[staged] === ZERO_BLOCK_CHECKSUM &&
        isZeroBlock(source, sourceOffset + (index << BLOCK_SHIFT))
      ) {
        this.stagedStates[staged] =
          layer === this.head ? this.zeroStateFor(firstBlock + index) : BlockState.ZERO;
        this.stagedChecksums[staged] = 0;
      } else {
        this.stagedStates[staged] = BlockState.DATA;
      }
    }
  }

  /**
   * Makes whole blocks of the live volume read as zeros, touching only blocks whose
   * visible content changes: a block nobody holds needs nothing; a head data block becomes
   * ABSENT (or ZERO when a lower layer could show through); a block served by a lower
   * layer gets a ZERO in the head. A whole-device discard of a fresh volume (mkfs does
   * one) therefore costs no I/O at all.
   */
  unmapBlocks(firstBlock: number, blockCount: number): void {
    const head = this.head;
    const rebuilding = this.volume.rebuilding;
    const end = firstBlock + blockCount;
    let block = firstBlock;
    while (block < end) {
      const chunkIndex = block >>> CHUNK_SHIFT;
      const chunkEnd = Math.min(end, (chunkIndex + 1) * CHUNK_BLOCKS);
      if (!rebuilding && this.lowerHeld[chunkIndex] === 0 && !head.table.chunks.has(chunkIndex)) {
        block = chunkEnd;
        continue;
      }
      let runStart = -1;
      for (; block <= chunkEnd; block++) {
        const target = block < chunkEnd ? this.unmapTarget(block, rebuilding) : -1;
        if (target >= 0 && runStart >= 0 && block - runStart < MAX_IO_BLOCKS) {
          this.stagedStates[block - runStart] = target;
          this.stagedChecksums[block - runStart] = 0;
          continue;
        }
        if (runStart >= 0) this.applyStaged(head, runStart, block - runStart, null, 0);
        runStart = -1;
        if (target >= 0) {
          runStart = block;
          this.stagedStates[0] = target;
          this.stagedChecksums[0] = 0;
        }
      }
      block = chunkEnd;
    }
  }

  /** The head state that makes `block` read as zeros, or -1 when it already does. */
  private unmapTarget(block: number, rebuilding: boolean): number {
    const headState = this.head.table.state(block);
    if (rebuilding) return headState === BlockState.ZERO ? -1 : BlockState.ZERO;
    const slot = this.resolution.get(block);
    if (slot === 0) return -1;
    if (slot !== this.head.slot) return BlockState.ZERO;
    if (headState === BlockState.ZERO) return -1;
    return this.zeroStateFor(block);
  }

  /**
   * Applies the staged states to `blockCount` blocks of `layer`: journal records first (one
   * write), then the data of DATA blocks (one write per run), holes punched where data
   * goes away, then the tables and the resolution map. `source` holds the data of DATA
   * blocks at their position in the run.
   */
  applyStaged(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    source: Uint8Array | null,
    sourceOffset: number,
  ): void {
    this.journalStaged(layer, firstBlock, blockCount, 0);
    this.journal.commit();
    failpoint('journal-committed');
    this.writeStaged(layer, firstBlock, blockCount, source, sourceOffset, 0);
  }

  /** Queues the journal records of staged blocks [stageOffset, stageOffset + blockCount). */
  journalStaged(layer: Layer, firstBlock: number, blockCount: number, stageOffset: number): void {
    assert(stageOffset + blockCount <= MAX_IO_BLOCKS, 'apply larger than the staging area');
    for (let index = 0; index < blockCount; index++) {
      const staged = stageOffset + index;
      this.journal.addBlock(
        layer.id,
        firstBlock + index,
        this.stagedStates[staged] as BlockStateValue,
        this.stagedChecksums[staged],
      );
    }
  }

  /** Writes staged blocks whose journal records are committed: data, holes, tables, resolution. */
  writeStaged(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    source: Uint8Array | null,
    sourceOffset: number,
    stageOffset: number,
  ): void {
    const states = this.stagedStates;
    const file = this.files.use(layer.file);
    this.dirtyFiles.add(file);
    let index = 0;
    while (index < blockCount) {
      const isData = states[stageOffset + index] === BlockState.DATA;
      let end = index + 1;
      while (end < blockCount && (states[stageOffset + end] === BlockState.DATA) === isData) end++;
      if (isData) {
        assert(source !== null, 'data blocks without a source');
        file.writeBlocks(firstBlock + index, end - index, source, sourceOffset + (index << BLOCK_SHIFT));
      } else {
        this.punchDataBlocks(layer, firstBlock + index, end - index);
      }
      failpoint('data-written');
      for (let block = index; block < end; block++) {
        const staged = stageOffset + block;
        this.setBlock(
          layer,
          firstBlock + block,
          states[staged] as BlockStateValue,
          this.stagedChecksums[staged],
        );
      }
      index = end;
    }
  }

  private punchDataBlocks(layer: Layer, firstBlock: number, blockCount: number): void {
    let index = 0;
    while (index < blockCount) {
      if (layer.table.state(firstBlock + index) !== BlockState.DATA) {
        index++;
        continue;
      }
      let end = index + 1;
      while (end < blockCount && layer.table.state(firstBlock + end) === BlockState.DATA) end++;
      layer.file.punch(firstBlock + index, end - index);
      index = end;
    }
  }

  /** Sets one block of one layer, keeping the resolution map and the below-head coverage right. */
  setBlock(layer: Layer, block: number, state: BlockStateValue, checksum: number): void {
    const chunkIndex = block >>> CHUNK_SHIFT;
    const tracksCoverage = layer.depth >= 0 && layer !== this.head;
    const hadChunk = tracksCoverage && layer.table.chunks.has(chunkIndex);
    layer.table.set(block, state, checksum);
    if (tracksCoverage) {
      const hasChunk = layer.table.chunks.has(chunkIndex);
      if (hasChunk && !hadChunk) this.lowerHeld[chunkIndex]++;
      if (!hasChunk && hadChunk) this.lowerHeld[chunkIndex]--;
    }
    if (layer.depth < 0) return;
    const current = this.resolution.get(block);
    if (state !== BlockState.ABSENT) {
      const currentDepth = current === 0 ? -1 : this.slots[current]!.depth;
      if (currentDepth <= layer.depth) this.resolution.set(block, layer.slot);
    } else if (current === layer.slot) {
      this.resolution.set(block, this.holderBelow(layer.depth, block));
    }
  }

  /** Slot of the nearest live-chain layer strictly below `depth` that holds the block, or 0. */
  private holderBelow(depth: number, block: number): number {
    if (depth === this.head.depth && this.lowerHeld[block >>> CHUNK_SHIFT] === 0) return 0;
    for (let below = depth - 1; below >= 0; below--) {
      const layer = this.chain[below];
      if (layer.table.state(block) !== BlockState.ABSENT) return layer.slot;
    }
    return 0;
  }

  // ---- durability ----------------------------------------------------------------------

  /** Makes every write so far durable: layer data and the journal, fdatasync'ed. */
  flush(): void {
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    this.journal.datasync();
  }

  maybeCheckpoint(): void {
    if (this.journal.sizeBytes >= this.checkpointJournalBytes) this.checkpoint();
  }

  /**
   * Moves everything the journal holds into the index: syncs the layer data, then writes
   * the changed chunk records and `extra` in one durable LMDB transaction that names a
   * fresh journal, then deletes the old journal. `extra.volume`, when given, is the new
   * volume record (journal generation and revision counter are filled in here); the
   * in-memory volume changes only once the transaction has committed.
   */
  checkpoint(extra: IndexBatch = {}): void {
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    const putChunks = [...(extra.putChunks ?? [])];
    const deleteChunks = [...(extra.deleteChunks ?? [])];
    for (const layer of this.layers.values()) {
      for (const chunkIndex of layer.table.dirtyChunks) {
        const chunk = layer.table.chunks.get(chunkIndex);
        if (chunk === undefined) deleteChunks.push({ layerId: layer.id, chunkIndex });
        else putChunks.push({ layerId: layer.id, chunkIndex, record: chunk.serialize() });
      }
    }
    const next = Journal.create(this.journalDirectory, this.journal.generation + 1);
    syncDirectory(this.journalDirectory);
    failpoint('checkpoint-journal-created');
    const volume: VolumeRecord = {
      ...(extra.volume ?? this.volume),
      journalGeneration: next.generation,
      revisionCounter: this.revisionCounter,
    };
    try {
      this.index.commit({ ...extra, putChunks, deleteChunks, volume });
    } catch (error) {
      next.close();
      fs.rmSync(next.path, { force: true });
      throw error;
    }
    failpoint('checkpoint-committed');
    this.volume = volume;
    for (const layer of this.layers.values()) layer.table.dirtyChunks.clear();
    const previous = this.journal;
    this.journal = next;
    previous.close();
    fs.rmSync(previous.path, { force: true });
  }

  /** Unlinks files of deleted layers; their ids leave the garbage list at the next commit. */
  collectGarbage(): void {
    const remaining: number[] = [];
    for (const layerId of this.volume.garbageLayerIds) {
      try {
        fs.rmSync(path.join(this.layersDirectory, layerFileName(layerId)), { force: true });
      } catch {
        remaining.push(layerId);
      }
    }
    this.volume = { ...this.volume, garbageLayerIds: remaining };
  }
}

export function checksumError(mismatches: ChecksumMismatch[], directory: string): HornbillError {
  const first = mismatches[0];
  return new HornbillError(
    'STORE_CHECKSUM_MISMATCH',
    `replica ${directory}: block ${first.block} of layer ${first.layerName} does not match its checksum` +
      (mismatches.length > 1 ? ` (and ${mismatches.length - 1} more)` : ''),
    { blocks: mismatches.map((mismatch) => ({ ...mismatch, offsetBytes: mismatch.block * BLOCK_SIZE })) },
  );
}

/** fsync on a directory makes the creation and removal of its entries durable. */
export function syncDirectory(directory: string): void {
  const fd = fs.openSync(directory, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
