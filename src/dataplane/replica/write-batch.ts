import type { ReplicaStore, WriteRequest } from '../../storage/replica-store.ts';

/** Writes gathered from one socket read, or from one run of an in-thread engine, and applied together. */
export const MAX_BATCH_WRITES = 256;

/** One write of a batch: what the store needs, and whether the sender asked for FUA. */
export interface BatchedWrite extends WriteRequest {
  fua: boolean;
}

/**
 * Applies writes gathered together — one journal append when every one is whole blocks —
 * and sets `outcomes[i]` to the error of write i, or undefined when it is done. The store
 * checks a batch before it writes any of it; if it refused the batch, each write is applied
 * on its own, so that only the bad ones fail. When any write asked for FUA, the store is
 * flushed once after them all, and a failed flush fails those writes.
 */
export function applyWriteBatch(
  store: ReplicaStore,
  writes: readonly BatchedWrite[],
  anyFua: boolean,
  outcomes: unknown[],
): void {
  outcomes.length = writes.length;
  outcomes.fill(undefined);
  if (writes.length === 0) return;
  try {
    if (writes.length === 1) store.write(writes[0].offsetBytes, writes[0].data, writes[0]);
    else store.writeBatch(writes);
  } catch (batchError) {
    if (writes.length === 1) {
      outcomes[0] = batchError;
    } else {
      for (let index = 0; index < writes.length; index++) {
        const write = writes[index];
        try {
          store.write(write.offsetBytes, write.data, write);
        } catch (error) {
          outcomes[index] = error;
        }
      }
    }
  }
  if (!anyFua) return;
  try {
    store.flush();
  } catch (error) {
    for (let index = 0; index < writes.length; index++)
      if (writes[index].fua && outcomes[index] === undefined) outcomes[index] = error;
  }
}
