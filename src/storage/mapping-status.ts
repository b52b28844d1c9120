import { BLOCK_SIZE, BlockState, CHUNK_BLOCKS } from './constants.ts';
import type { StoreCore } from './store-core.ts';

/** A run of bytes that are all mapped (data stored) or all deallocated (reads zeros, nothing stored). */
export interface MappingRun {
  offsetBytes: number;
  lengthBytes: number;
  mapped: boolean;
}

/**
 * Provisioning status from `offsetBytes` (validated by the caller): runs of mapped and
 * deallocated bytes, in 4 KiB granularity clipped to the request. Stops after `maxRuns`
 * runs, so the answer may cover less than `lengthBytes` (never nothing).
 */
export function mappingStatus(
  core: StoreCore,
  offsetBytes: number,
  lengthBytes: number,
  maxRuns: number,
): MappingRun[] {
  const runs: MappingRun[] = [];
  if (lengthBytes === 0) return runs;
  const end = offsetBytes + lengthBytes;
  let block = Math.floor(offsetBytes / BLOCK_SIZE);
  const endBlock = Math.ceil(end / BLOCK_SIZE);
  while (block < endBlock && runs.length <= maxRuns) {
    const chunkIndex = Math.floor(block / CHUNK_BLOCKS);
    const chunkEnd = Math.min(endBlock, (chunkIndex + 1) * CHUNK_BLOCKS);
    if (core.resolution.chunkIsEmpty(chunkIndex)) {
      appendRun(runs, block, chunkEnd - block, false);
      block = chunkEnd;
      continue;
    }
    for (; block < chunkEnd; block++) {
      const slot = core.resolution.get(block);
      const mapped = slot !== 0 && core.slots[slot]!.table.state(block) === BlockState.DATA;
      appendRun(runs, block, 1, mapped);
    }
  }
  if (runs.length > maxRuns) runs.length = maxRuns;
  // Clip to the requested byte range.
  const first = runs[0];
  const shift = offsetBytes - first.offsetBytes;
  first.offsetBytes += shift;
  first.lengthBytes -= shift;
  const last = runs[runs.length - 1];
  if (last.offsetBytes + last.lengthBytes > end) last.lengthBytes = end - last.offsetBytes;
  return runs.filter((run) => run.lengthBytes > 0);
}

function appendRun(runs: MappingRun[], block: number, blockCount: number, mapped: boolean): void {
  const last = runs[runs.length - 1];
  if (last !== undefined && last.mapped === mapped) {
    last.lengthBytes += blockCount * BLOCK_SIZE;
  } else {
    runs.push({ offsetBytes: block * BLOCK_SIZE, lengthBytes: blockCount * BLOCK_SIZE, mapped });
  }
}
