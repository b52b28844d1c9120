import { assert } from '../assert.ts';
import { BlockState, type BlockStateValue, CHUNK_BLOCKS, CHUNK_SHIFT } from './constants.ts';

const CHUNK_MASK = CHUNK_BLOCKS - 1;
/** Serialized chunk: one state byte per block, then one little-endian CRC32C per block. */
export const CHUNK_RECORD_BYTES = CHUNK_BLOCKS + CHUNK_BLOCKS * 4;

/**
 * The blocks one layer holds in one 4 MiB range of the volume: a state and a checksum
 * per block, in one ArrayBuffer so that it serializes with a single copy.
 */
export class Chunk {
  readonly memory: ArrayBuffer;
  readonly states: Uint8Array;
  readonly checksums: Uint32Array;
  /** Blocks whose state is not ABSENT. */
  held = 0;
  /** Blocks whose state is DATA (they take space in the layer file). */
  dataBlocks = 0;

  constructor(record?: Uint8Array) {
    this.memory = new ArrayBuffer(CHUNK_RECORD_BYTES);
    this.states = new Uint8Array(this.memory, 0, CHUNK_BLOCKS);
    this.checksums = new Uint32Array(this.memory, CHUNK_BLOCKS, CHUNK_BLOCKS);
    if (record !== undefined) {
      assert(record.length === CHUNK_RECORD_BYTES, 'chunk record length');
      new Uint8Array(this.memory).set(record);
      for (let index = 0; index < CHUNK_BLOCKS; index++) {
        const state = this.states[index];
        if (state !== BlockState.ABSENT) this.held++;
        if (state === BlockState.DATA) this.dataBlocks++;
      }
    }
  }

  /** True when every state byte is one of the known states (used to validate records read from disk). */
  statesAreValid(): boolean {
    for (let index = 0; index < CHUNK_BLOCKS; index++) {
      if (this.states[index] > BlockState.ZERO) return false;
    }
    return true;
  }

  serialize(): Buffer {
    return Buffer.from(this.memory.slice(0));
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
    for (const chunkIndex of this.sortedChunkIndexes()) {
      const chunkStart = chunkIndex << CHUNK_SHIFT;
      if (chunkStart + CHUNK_BLOCKS <= startBlock) continue;
      if (chunkStart >= endBlock) break;
      const chunk = this.chunks.get(chunkIndex)!;
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
