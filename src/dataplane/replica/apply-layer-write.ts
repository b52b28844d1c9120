import { BLOCK_SIZE } from '../../storage/constants.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import type { LayerWrite } from '../protocol/payloads.ts';
import { STATE_DATA } from '../sync/packed-reads.ts';

/**
 * Stores a layer write (a rebuild transfer: states, checksums, and the data of its data
 * blocks packed) into `store` at `startBlock`: one store call per run of one state, data
 * runs taking their bytes from the packed data in order. The store checks every data block
 * against its checksum (STORE_CHECKSUM_MISMATCH).
 */
export function applyLayerWrite(store: ReplicaStore, startBlock: number, write: LayerWrite): void {
  let index = 0;
  let dataAt = 0;
  while (index < write.states.length) {
    const state = write.states[index];
    let end = index + 1;
    while (end < write.states.length && write.states[end] === state) end++;
    const dataBytes = state === STATE_DATA ? (end - index) * BLOCK_SIZE : 0;
    store.writeLayerBlocks(
      write.layer,
      startBlock + index,
      write.states.subarray(index, end),
      write.checksums.subarray(index, end),
      dataBytes > 0 ? write.data.subarray(dataAt, dataAt + dataBytes) : null,
    );
    dataAt += dataBytes;
    index = end;
  }
}
