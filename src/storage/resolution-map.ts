import { CHUNK_BLOCKS, CHUNK_SHIFT } from './constants.ts';

const CHUNK_MASK = CHUNK_BLOCKS - 1;

/**
 * For the live chain (root → … → head), which layer answers a read of each block: the
 * layer nearest the head that holds the block. Entries are layer slots (small integers,
 * 0 = no layer holds the block, read zeros). A read costs one array lookup whatever the
 * chain length; memory is one Uint32Array of 4 KiB per 4 MiB chunk that any chain layer
 * touches.
 *
 * Longhorn keeps one byte per block naming the layer, which caps a chain at 250 layers;
 * a 32-bit slot has no practical cap.
 */
export class ResolutionMap {
  private chunks: (Uint32Array | undefined)[] = [];

  constructor(blockCount: number) {
    this.resize(blockCount);
  }

  resize(blockCount: number): void {
    const chunkCount = Math.ceil(blockCount / CHUNK_BLOCKS);
    if (chunkCount > this.chunks.length) {
      const grown: (Uint32Array | undefined)[] = new Array(chunkCount);
      for (let index = 0; index < this.chunks.length; index++) grown[index] = this.chunks[index];
      this.chunks = grown;
    }
  }

  clear(): void {
    this.chunks = new Array(this.chunks.length);
  }

  /** True when no block of the chunk resolves to any layer. */
  chunkIsEmpty(chunkIndex: number): boolean {
    return this.chunks[chunkIndex] === undefined;
  }

  /** Indexes of the chunks with any non-zero entry, ascending (a chunk whose entries all went back to 0 stays allocated). */
  nonEmptyChunks(): number[] {
    const indexes: number[] = [];
    this.chunks.forEach((chunk, index) => {
      if (chunk?.some((slot) => slot !== 0)) indexes.push(index);
    });
    return indexes;
  }

  get(block: number): number {
    const chunk = this.chunks[block >>> CHUNK_SHIFT];
    return chunk === undefined ? 0 : chunk[block & CHUNK_MASK];
  }

  set(block: number, slot: number): void {
    const chunkIndex = block >>> CHUNK_SHIFT;
    let chunk = this.chunks[chunkIndex];
    if (chunk === undefined) {
      if (slot === 0) return;
      chunk = new Uint32Array(CHUNK_BLOCKS);
      this.chunks[chunkIndex] = chunk;
    }
    chunk[block & CHUNK_MASK] = slot;
  }

  /** Rewrites every entry equal to `from` to `to`, in the given chunk indexes (or all). */
  replaceSlot(from: number, to: number, chunkIndexes?: Iterable<number>): void {
    const indexes = chunkIndexes ?? this.chunks.keys();
    for (const chunkIndex of indexes) {
      const chunk = this.chunks[chunkIndex];
      if (chunk === undefined) continue;
      for (let index = 0; index < CHUNK_BLOCKS; index++) if (chunk[index] === from) chunk[index] = to;
    }
  }
}
