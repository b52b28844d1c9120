import { BLOCK_SIZE } from '../../storage/constants.ts';
import type { ReplicaClient } from '../protocol/replica-client.ts';

/** Block state on the layer-write wire: 1 = data (protocol/payloads.ts LayerWrite). */
export const STATE_DATA = 1;

/**
 * Reads the data blocks `states[from..to)` (state STATE_DATA) of a range starting at volume
 * block `startBlock` from one replica into `buffer`, packed one after another in block order
 * — the form a layer write carries them in. Each run of consecutive data blocks that
 * `layerOf` puts in the same layer is one read; the reads are pipelined on the connection,
 * and every one settles before this returns (the buffer may be reused at once, also after
 * an error, which is thrown). Returns the number of data blocks read.
 *
 * A clone resolves each block through a snapshot's ancestry (`layerOf` by the block's
 * origin layer), so its runs may come from several layers. A rebuild reads one layer and
 * asks for a span's data blocks in one packed READ_LAYER instead (replica/range-pull.ts).
 */
export async function readPackedRuns(
  source: ReplicaClient,
  startBlock: number,
  states: Uint8Array,
  from: number,
  to: number,
  layerOf: (index: number) => string,
  buffer: Buffer,
): Promise<number> {
  const reads: Promise<void>[] = [];
  let packed = 0;
  for (let run = from; run < to; ) {
    if (states[run] !== STATE_DATA) {
      run++;
      continue;
    }
    const layer = layerOf(run);
    let runEnd = run + 1;
    while (runEnd < to && states[runEnd] === STATE_DATA && layerOf(runEnd) === layer) runEnd++;
    const target = buffer.subarray(packed * BLOCK_SIZE, (packed + runEnd - run) * BLOCK_SIZE);
    reads.push(source.readLayer(layer, startBlock + run, target));
    packed += runEnd - run;
    run = runEnd;
  }
  for (const outcome of await Promise.allSettled(reads))
    if (outcome.status === 'rejected') throw outcome.reason;
  return packed;
}
