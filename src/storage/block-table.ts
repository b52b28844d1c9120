import { assert } from '../assert.ts';
import { BlockState, type BlockStateValue, CHUNK_BLOCKS, CHUNK_SHIFT } from './constants.ts';

const CHUNK_MASK = CHUNK_BLOCKS - 1;
const DENSE = 0;
const SPARSE = 1;
/** Dense record: format byte, one state byte per block, one little-endian CRC32C per block. */
const DENSE_RECORD_BYTES = 1 + CHUNK_BLOCKS + CHUNK_BLOCKS * 4;
/** Sparse record: format byte, u16 count, then per held block u16 index, u8 state, u32 checksum. */
const SPARSE_ENTRY_BYTES = 7;

/**
 * The blocks one layer holds in one 4 MiB range of the volume: a state and a checksum
 * per block. In the index a chunk is stored dense (5 KiB) or, when it holds few blocks,
 * sparse (7 bytes per held block) — a snapshot that changed one block costs 10 bytes,
 * not an LMDB overflow page.
 */
export class Chunk {
  readonly states = new Uint8Array(CHUNK_BLOCKS);
  readonly checksums = new Uint32Array(CHUNK_BLOCKS);
  /** Blocks whose state is not ABSENT. */
  held = 0;
  /** Blocks whose state is DATA (they take space in the layer file). */
  dataBlocks = 0;

  /** Decodes an index record; undefined when it is not a valid chunk record. */
  static decode(record: Uint8Array): Chunk | undefined {
    const chunk = new Chunk();
    const view = new DataView(record.buffer, record.byteOffset, record.byteLength);
    if (record.length === DENSE_RECORD_BYTES && record[0] === DENSE) {
      for (let index = 0; index < CHUNK_BLOCKS; index++) {
        const state = record[1 + index];
        const checksum = view.getUint32(1 + CHUNK_BLOCKS + index * 4, true);
        if (!chunk.load(index, state, checksum)) return undefined;
      }
    } else if (record.length >= 3 && record[0] === SPARSE) {
      const count = view.getUint16(1, true);
      if (record.length !== 3 + count * SPARSE_ENTRY_BYTES || count > CHUNK_BLOCKS) return undefined;
      let previous = -1;
      for (let entry = 0; entry < count; entry++) {
        const offset = 3 + entry * SPARSE_ENTRY_BYTES;
        const index = view.getUint16(offset, true);
        if (index <= previous || index >= CHUNK_BLOCKS) return undefined;
        if (!chunk.load(index, record[offset + 2], view.getUint32(offset + 3, true))) return undefined;
        previous = index;
      }
    } else {
      return undefined;
    }
    return chunk.held > 0 ? chunk : undefined;
  }

  /** Sets one entry while decoding; false when the entry is not valid. */
  private load(index: number, state: number, checksum: number): boolean {
    if (state > BlockState.ZERO || (state !== BlockState.DATA && checksum !== 0)) return false;
    this.states[index] = state;
    this.checksums[index] = checksum;
    if (state !== BlockState.ABSENT) this.held++;
    if (state === BlockState.DATA) this.dataBlocks++;
    return true;
  }

  /** The smaller of the two encodings. */
  serialize(): Buffer {
    if (3 + this.held * SPARSE_ENTRY_BYTES < DENSE_RECORD_BYTES) {
      const record = Buffer.allocUnsafe(3 + this.held * SPARSE_ENTRY_BYTES);
      record[0] = SPARSE;
      record.writeUInt16LE(this.held, 1);
      let offset = 3;
      for (let index = 0; index < CHUNK_BLOCKS; index++) {
        if (this.states[index] === BlockState.ABSENT) continue;
        record.writeUInt16LE(index, offset);
        record[offset + 2] = this.states[index];
        record.writeUInt32LE(this.checksums[index], offset + 3);
        offset += SPARSE_ENTRY_BYTES;
      }
      return record;
    }
    const record = Buffer.allocUnsafe(DENSE_RECORD_BYTES);
    record[0] = DENSE;
    record.set(this.states, 1);
    for (let index = 0; index < CHUNK_BLOCKS; index++)
      record.writeUInt32LE(this.checksums[index], 1 + CHUNK_BLOCKS + index * 4);
    return record;
  }
}

/** A run of consecutive blocks with the same state in one layer. */
export interface BlockRun {
  startBlock: number;
  blockCount: number;
  state: BlockStateValue;
}

/**
 * Which blocks one layer holds, with their checksums. Memory is proportional to the
 * chunks the layer touches, never to the volume size (a 1 TiB head with 10 MiB written
 * holds three chunks).
 */
export class BlockTable {
  readonly chunks = new Map<number, Chunk>();
  /** Chunk indexes changed since the last checkpoint (a missing chunk means: delete its record). */
  readonly dirtyChunks = new Set<number>();
  heldBlocks = 0;
  dataBlocks = 0;

  state(block: number): BlockStateValue {
    const chunk = this.chunks.get(block >>> CHUNK_SHIFT);
    return chunk === undefined ? BlockState.ABSENT : (chunk.states[block & CHUNK_MASK] as BlockStateValue);
  }

  checksum(block: number): number {
    const chunk = this.chunks.get(block >>> CHUNK_SHIFT);
    assert(chunk !== undefined, 'checksum of a block the layer does not hold');
    return chunk.checksums[block & CHUNK_MASK];
  }

  set(block: number, state: BlockStateValue, checksum: number): void {
    const chunkIndex = block >>> CHUNK_SHIFT;
    let chunk = this.chunks.get(chunkIndex);
    if (chunk === undefined) {
      if (state === BlockState.ABSENT) return;
      chunk = new Chunk();
      this.chunks.set(chunkIndex, chunk);
    }
    const index = block & CHUNK_MASK;
    const previous = chunk.states[index];
    if (previous !== BlockState.ABSENT) {
      chunk.held--;
      this.heldBlocks--;
    }
    if (previous === BlockState.DATA) {
      chunk.dataBlocks--;
      this.dataBlocks--;
    }
    chunk.states[index] = state;
    chunk.checksums[index] = state === BlockState.DATA ? checksum : 0;
    if (state !== BlockState.ABSENT) {
      chunk.held++;
      this.heldBlocks++;
    }
    if (state === BlockState.DATA) {
      chunk.dataBlocks++;
      this.dataBlocks++;
    }
    if (chunk.held === 0) this.chunks.delete(chunkIndex);
    this.dirtyChunks.add(chunkIndex);
  }

  /** Installs a chunk read from the index at open time. */
  load(chunkIndex: number, chunk: Chunk): void {
    assert(!this.chunks.has(chunkIndex), 'chunk loaded twice');
    if (chunk.held === 0) return;
    this.chunks.set(chunkIndex, chunk);
    this.heldBlocks += chunk.held;
    this.dataBlocks += chunk.dataBlocks;
  }

  /** Chunk indexes in ascending order. */
  sortedChunkIndexes(): number[] {
    return [...this.chunks.keys()].sort((a, b) => a - b);
  }

  /** Runs of held blocks (DATA or ZERO, coalesced by state) within [startBlock, endBlock), in order. */
  runs(startBlock: number, endBlock: number): BlockRun[] {
    const runs: BlockRun[] = [];
    let current: BlockRun | undefined;
    // A range of few chunks (a rebuild's span) looks its chunks up; a range of more chunks
    // than the table holds walks the table's chunks in order instead.
    const firstChunk = Math.floor(startBlock / CHUNK_BLOCKS);
    const chunksInRange = Math.ceil(endBlock / CHUNK_BLOCKS) - firstChunk;
    const chunkIndexes =
      chunksInRange <= this.chunks.size
        ? Array.from({ length: Math.max(0, chunksInRange) }, (_, index) => firstChunk + index)
        : this.sortedChunkIndexes();
    for (const chunkIndex of chunkIndexes) {
      const chunkStart = chunkIndex * CHUNK_BLOCKS;
      if (chunkStart + CHUNK_BLOCKS <= startBlock) continue;
      if (chunkStart >= endBlock) break;
      const chunk = this.chunks.get(chunkIndex);
      if (chunk === undefined) {
        current = undefined;
        continue;
      }
      const from = Math.max(startBlock, chunkStart);
      const to = Math.min(endBlock, chunkStart + CHUNK_BLOCKS);
      for (let block = from; block < to; block++) {
        const state = chunk.states[block - chunkStart] as BlockStateValue;
        if (state === BlockState.ABSENT) {
          current = undefined;
          continue;
        }
        if (
          current !== undefined &&
          current.state === state &&
          current.startBlock + current.blockCount === block
        ) {
          current.blockCount++;
        } else {
          current = { startBlock: block, blockCount: 1, state };
          runs.push(current);
        }
      }
    }
    return runs;
  }
}
