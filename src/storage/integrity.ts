import { createHash } from 'node:crypto';
import { findSnapshot } from './chain-operations.ts';
import { BLOCK_SHIFT, BLOCK_SIZE, BlockState, CHUNK_BLOCKS } from './constants.ts';
import type { Layer } from './layer.ts';
import { type ChecksumMismatch, checksumError, type StoreCore } from './store-core.ts';

/** Bad blocks listed in full in a verify report; beyond this only the count grows. */
export const VERIFY_LIST_LIMIT = 10_000;
/** Blocks read per pread while verifying or hashing (1 MiB). */
const BATCH_BLOCKS = 256;

export interface VerifyReport {
  layersChecked: number;
  blocksChecked: number;
  badBlockCount: number;
  /** Up to VERIFY_LIST_LIMIT entries. */
  badBlocks: (ChecksumMismatch & { offsetBytes: number })[];
}

/**
 * Walks every data block of every layer (live chain or not), checks it against its
 * checksum and lists the bad ones. It reads; it never changes anything. The generator
 * yields after each batch so that a caller can interleave I/O and report progress.
 */
export function* verifySteps(core: StoreCore): Generator<{ blocksChecked: number }, VerifyReport> {
  const report: VerifyReport = { layersChecked: 0, blocksChecked: 0, badBlockCount: 0, badBlocks: [] };
  const buffer = Buffer.alloc(BATCH_BLOCKS * BLOCK_SIZE);
  const layerIds = [...core.layers.keys()].sort((a, b) => a - b);
  for (const layerId of layerIds) {
    const layer = core.layers.get(layerId);
    if (layer === undefined) continue;
    for (const run of dataRuns(layer)) {
      for (let start = run.startBlock; start < run.startBlock + run.blockCount; start += BATCH_BLOCKS) {
        core.checkOpen();
        const current = core.layers.get(layerId);
        if (current !== layer) break;
        const count = Math.min(BATCH_BLOCKS, run.startBlock + run.blockCount - start);
        const mismatches = core.readLayerRun(layer, start, count, buffer, 0, undefined);
        report.blocksChecked += count;
        for (const mismatch of mismatches ?? []) {
          report.badBlockCount++;
          if (report.badBlocks.length < VERIFY_LIST_LIMIT) {
            report.badBlocks.push({ ...mismatch, offsetBytes: mismatch.block * BLOCK_SIZE });
          }
        }
        yield { blocksChecked: report.blocksChecked };
      }
    }
    report.layersChecked++;
  }
  return report;
}

export function verify(core: StoreCore): VerifyReport {
  const steps = verifySteps(core);
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

/** Runs of DATA blocks in a layer, in block order, taken from its table when called. */
function dataRuns(layer: Layer): { startBlock: number; blockCount: number }[] {
  return layer.table
    .runs(0, Number.MAX_SAFE_INTEGER)
    .filter((run) => run.state === BlockState.DATA)
    .map((run) => ({ startBlock: run.startBlock, blockCount: run.blockCount }));
}

/**
 * SHA-256 of one snapshot's own content: for every block it holds, in order, the block
 * number (8 bytes little-endian), its state (1 byte) and, for data, the 4 KiB of data.
 * Replicas whose layers hold the same content give the same hash, whatever their layer
 * ids. Every block is checked against its checksum on the way; a bad block fails the hash.
 */
export function hashSnapshot(core: StoreCore, name: string): string {
  const layer = findSnapshot(core, name);
  const value = hashLayer(core, layer);
  const hash = { algorithm: 'sha256' as const, value, computedAt: new Date().toISOString() };
  core.index.commit({ putLayers: [{ ...layer.record, hash }] });
  layer.record.hash = hash;
  return value;
}

export function hashLayer(core: StoreCore, layer: Layer): string {
  const hash = createHash('sha256');
  const header = Buffer.alloc(9);
  const buffer = Buffer.alloc(CHUNK_BLOCKS * BLOCK_SIZE);
  for (const chunkIndex of layer.table.sortedChunkIndexes()) {
    const chunk = layer.table.chunks.get(chunkIndex)!;
    const base = chunkIndex * CHUNK_BLOCKS;
    let mismatches: ChecksumMismatch[] | undefined;
    if (chunk.dataBlocks > 0) {
      // Read the chunk's data runs into their positions in the buffer.
      let index = 0;
      while (index < CHUNK_BLOCKS) {
        if (chunk.states[index] !== BlockState.DATA) {
          index++;
          continue;
        }
        let end = index + 1;
        while (end < CHUNK_BLOCKS && chunk.states[end] === BlockState.DATA) end++;
        mismatches = core.readLayerRun(
          layer,
          base + index,
          end - index,
          buffer,
          index << BLOCK_SHIFT,
          mismatches,
        );
        index = end;
      }
      if (mismatches !== undefined) throw checksumError(mismatches, core.directory);
    }
    for (let index = 0; index < CHUNK_BLOCKS; index++) {
      const state = chunk.states[index];
      if (state === BlockState.ABSENT) continue;
      header.writeBigUInt64LE(BigInt(base + index), 0);
      header[8] = state;
      hash.update(header);
      if (state === BlockState.DATA)
        hash.update(buffer.subarray(index << BLOCK_SHIFT, (index + 1) << BLOCK_SHIFT));
    }
  }
  return hash.digest('hex');
}
