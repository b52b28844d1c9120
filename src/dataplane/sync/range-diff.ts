/**
 * Comparing one range of a layer on two replicas and cutting what differs into transfers:
 * the rebuild's diff (DESIGN.md §3). `want` is the source's extents, `have` the target's;
 * a block differs when its state differs, or both hold data with different checksums.
 * Holes stay holes: a run of zero or absent blocks is sent as states only.
 */
import type { LayerExtent } from '../../storage/replica-store.ts';
import { STATE_DATA } from './packed-reads.ts';

/** Blocks a data transfer spans at most (1 MiB of volume). */
export const TRANSFER_BLOCKS = 256;
/**
 * Data blocks one transfer carries at most (1 MiB; also the size of a transfer buffer).
 * The target writes transfers past the page cache on the thread pool, so its thread does
 * not wait for them and the volume's own writes do not wait behind them. Measured
 * 2026-11-26: a 4 GiB rebuild (probe, 2 sources) took 5.2 s with 256 KiB transfers written
 * that way and 3.3–4.1 s with 1 MiB, the target's CPU 4.6–4.9 s against 2.1–2.8 s; 1 GiB
 * (bench/compare/rebuild.ts --size 1G) 0.9–1.0 s, and 1.8–2.2 s under its QD1 workload with
 * a write p99 of 3.7–4.1 ms, against 2.3–3.0 s and 6.0–6.4 ms when 256 KiB transfers were
 * stored synchronously through the page cache. (Then 1 MiB had made a foreground write's
 * p99 12–14 ms against 8–10 ms.)
 */
export const TRANSFER_DATA_BLOCKS = 256;
/** Matching blocks a data span may bridge to take in the next differing block (32 KiB). */
const MERGE_GAP_BLOCKS = 8;

const STATE_ZERO = 2;

/** Per block of a range: state (0 absent, 1 data, 2 zero) and checksum of data blocks. */
export interface BlockMap {
  states: Uint8Array;
  checksums: Uint32Array;
}

export function blockMap(extents: LayerExtent[], startBlock: number, blockCount: number): BlockMap {
  const map: BlockMap = {
    states: new Uint8Array(blockCount),
    checksums: new Uint32Array(blockCount),
  };
  for (const extent of extents) {
    for (let block = 0; block < extent.blockCount; block++) {
      const index = extent.startBlock - startBlock + block;
      if (index < 0 || index >= blockCount) continue;
      map.states[index] = extent.state === 'data' ? STATE_DATA : STATE_ZERO;
      map.checksums[index] = extent.checksums?.[block] ?? 0;
    }
  }
  return map;
}

export function differs(want: BlockMap, have: BlockMap, index: number): boolean {
  if (want.states[index] !== have.states[index]) return true;
  return want.states[index] === STATE_DATA && want.checksums[index] !== have.checksums[index];
}

/**
 * End of the transfer that starts at the differing block `start`: for a data block, further
 * differing blocks join it while the gap of matching blocks before them is at most
 * MERGE_GAP_BLOCKS, up to TRANSFER_BLOCKS blocks in all and TRANSFER_DATA_BLOCKS data blocks
 * (every data block of the span is sent, bridged ones too), ending after its last differing
 * block; for a hole, the run of differing blocks of the same state.
 */
export function transferEnd(want: BlockMap, have: BlockMap, start: number, limit: number): number {
  if (want.states[start] !== STATE_DATA) {
    let end = start + 1;
    while (end < limit && want.states[end] === want.states[start] && differs(want, have, end)) end++;
    return end;
  }
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

/** Data blocks among states[from, end). */
export function countDataBlocks(states: Uint8Array, from: number, end: number): number {
  let count = 0;
  for (let index = from; index < end; index++) if (states[index] === STATE_DATA) count++;
  return count;
}
