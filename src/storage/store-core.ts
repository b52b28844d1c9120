/**
 * StoreCore, the replica store's state and primitives: block reads (checksum-verified) and
 * writes (journal staging, data, holes, tables, resolution). State and chain upkeep live in
 * store-state.ts, flush and checkpoint in store-durability.ts.
 */
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
import type { Layer } from './layer.ts';
import { StoreDurability } from './store-durability.ts';

/**
 * Largest pwrite(2) of blocks new to the head (32 KiB). Writing 1 MiB at once into pages the
 * page cache does not hold makes one 1 MiB folio, and every later 4 KiB write into it costs
 * the kernel a walk over its 256 blocks: on this VM a 4 KiB random write into a file filled
 * by 1 MiB writes took 5–10 µs of kernel time against 2–3 µs when filled by 32 KiB ones, and
 * a 3-replica volume's random writes at QD32 went from ~12k to ~21k per second. The price is
 * paid once per block, when it is first written (bench/RESULTS.md, engine section).
 */
const FIRST_WRITE_PIECE_BLOCKS = 8;

/** Blocks whose stored checksum did not match their data during one read. */
export interface ChecksumMismatch {
  layerId: number;
  layerName: string;
  block: number;
  expected: number;
  actual: number;
}

/**
 * The replica store's state and its primitives. Internal to src/storage: the public face
 * is ReplicaStore; the operation modules (chain, purge, integrity, sync, export, recovery)
 * work on this object. Everything is synchronous and owned by one thread, so every
 * operation is atomic with respect to every other.
 */
export class StoreCore extends StoreDurability {
  /** Per-I/O scratch, allocated once: states and checksums of the blocks being applied. */
  readonly stagedStates = new Uint8Array(MAX_IO_BLOCKS);
  readonly stagedChecksums = new Uint32Array(MAX_IO_BLOCKS);
  /** Checksums computed while verifying a read (one native call per run of up to 256 blocks). */
  readonly verifyChecksums = new Uint32Array(256);
  /** Blocks for read-modify-write of the partial first and last block of a write. */
  readonly scratchBlock = Buffer.alloc(BLOCK_SIZE);
  readonly scratchTailBlock = Buffer.alloc(BLOCK_SIZE);

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

  /**
   * Stages states and checksums for client data: zero blocks become ZERO (or ABSENT in the
   * head). `computedChecksums` are the blocks' CRC32Cs when the caller already has them
   * from this same memory (WriteOptions.computedChecksums); otherwise they are computed.
   */
  stageData(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    source: Uint8Array,
    sourceOffset: number,
    stageOffset = 0,
    computedChecksums?: Uint32Array,
  ): void {
    if (computedChecksums === undefined) {
      crc32cBlocks(source, sourceOffset, BLOCK_SIZE, blockCount, this.stagedChecksums, stageOffset);
    } else {
      assert(computedChecksums.length >= blockCount, 'fewer computed checksums than blocks');
      for (let index = 0; index < blockCount; index++)
        this.stagedChecksums[stageOffset + index] = computedChecksums[index];
    }
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
    this.commitJournal();
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

  /**
   * Writes staged blocks whose journal records are committed: data, holes, tables, resolution.
   * `dataWritten`: the data blocks are in the file already (written past the page cache,
   * layer-sync.ts writeLayerBlocksPastCache); only the tables change.
   */
  writeStaged(
    layer: Layer,
    firstBlock: number,
    blockCount: number,
    source: Uint8Array | null,
    sourceOffset: number,
    stageOffset: number,
    dataWritten = false,
  ): void {
    const states = this.stagedStates;
    const file = this.files.use(layer.file);
    this.dirtyFiles.add(file);
    let index = 0;
    while (index < blockCount) {
      const isData = states[stageOffset + index] === BlockState.DATA;
      let end = index + 1;
      while (end < blockCount && (states[stageOffset + end] === BlockState.DATA) === isData) end++;
      if (isData && !dataWritten) {
        assert(source !== null, 'data blocks without a source');
        const count = end - index;
        // Blocks new to the head go in small pieces (page-cache folios of 32 KiB, not of the
        // write's size: LayerFile.writeBlocks); snapshot layers take no random writes later.
        const pieceBlocks =
          layer === this.head && !this.holdsData(layer, firstBlock + index, count)
            ? FIRST_WRITE_PIECE_BLOCKS
            : count;
        file.writeBlocks(
          firstBlock + index,
          count,
          source,
          sourceOffset + (index << BLOCK_SHIFT),
          pieceBlocks,
        );
      } else if (!isData) {
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

  /** Whether `layer`'s file holds data for every block of the range already. */
  private holdsData(layer: Layer, firstBlock: number, blockCount: number): boolean {
    for (let block = firstBlock; block < firstBlock + blockCount; block++)
      if (layer.table.state(block) !== BlockState.DATA) return false;
    return true;
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
