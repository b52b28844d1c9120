import { BLOCK_SIZE } from '../../storage/constants.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import type { LayerWrite } from '../protocol/payloads.ts';
import { STATE_DATA } from '../sync/packed-reads.ts';

/**
 * Calls `visit` for each run of one state of a layer write, in order: the run's first
 * block, its states and checksums, and for a data run its bytes from the packed data
 * (null otherwise).
 */
function forEachRun(
  write: LayerWrite,
  visit: (index: number, states: Uint8Array, checksums: Uint32Array, data: Uint8Array | null) => void,
): void {
  let index = 0;
  let dataAt = 0;
  while (index < write.states.length) {
    const state = write.states[index];
    let end = index + 1;
    while (end < write.states.length && write.states[end] === state) end++;
    const dataBytes = state === STATE_DATA ? (end - index) * BLOCK_SIZE : 0;
    visit(
      index,
      write.states.subarray(index, end),
      write.checksums.subarray(index, end),
      dataBytes > 0 ? write.data.subarray(dataAt, dataAt + dataBytes) : null,
    );
    dataAt += dataBytes;
    index = end;
  }
}

/**
 * Stores a layer write (a rebuild transfer: states, checksums, and the data of its data
 * blocks packed) into `store` at `startBlock`: one store call per run of one state, data
 * runs taking their bytes from the packed data in order. The store checks every data block
 * against its checksum (STORE_CHECKSUM_MISMATCH).
 */
export function applyLayerWrite(store: ReplicaStore, startBlock: number, write: LayerWrite): void {
  forEachRun(write, (index, states, checksums, data) =>
    store.writeLayerBlocks(write.layer, startBlock + index, states, checksums, data),
  );
}

/**
 * applyLayerWrite for a rebuild's transfer, with its data runs written past the page cache
 * on the thread pool where the store can (ReplicaStore.writeLayerBlocksPastCache; the rest
 * as applyLayerWrite does). Settles when every run is stored; `write.data` must not change
 * until then. A failed run rejects it, after the other runs have settled.
 */
export async function applyLayerWritePastCache(
  store: ReplicaStore,
  startBlock: number,
  write: LayerWrite,
): Promise<void> {
  const pending: Promise<void>[] = [];
  let failure: { error: unknown } | undefined;
  try {
    forEachRun(write, (index, states, checksums, data) => {
      const written =
        data === null
          ? undefined
          : store.writeLayerBlocksPastCache(write.layer, startBlock + index, states, checksums, data);
      if (written === undefined)
        store.writeLayerBlocks(write.layer, startBlock + index, states, checksums, data);
      else pending.push(written);
    });
  } catch (error) {
    failure = { error };
  }
  // Runs already on the thread pool read write.data until they end: wait for them, even
  // when a later run failed, before the caller may reuse it.
  const outcomes = await Promise.allSettled(pending);
  if (failure !== undefined) throw failure.error;
  for (const outcome of outcomes) if (outcome.status === 'rejected') throw outcome.reason;
}
