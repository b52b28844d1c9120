import { assert } from '../../assert.ts';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import { BLOCK_SIZE, MAX_IO_BLOCKS } from '../../storage/constants.ts';
import type { ReplicaStore } from '../../storage/replica-store.ts';
import { FrameFlag } from '../protocol/frame.ts';
import { readChecksumSection } from '../protocol/payloads.ts';
import { applyWriteBatch, type BatchedWrite, MAX_BATCH_WRITES } from './write-batch.ts';

interface DirectWrite extends BatchedWrite {
  computedChecksums: Uint32Array;
  done: (error: unknown) => void;
}

/**
 * The writes of an engine on this thread to this replica's store, without frames
 * (in-thread-link.ts InThreadStore.write): gathered and applied together with one journal
 * append, as the WRITE frames of one socket read are (replica-connection.ts), in the check
 * phase of the event loop (setImmediate), so that a caller that only ever awaits writes
 * still lets the loop turn (the store's background checkpoint completes there). Frames that
 * arrive through the in-thread link apply the pending writes first (applyPending), so frames
 * and writes still reach the store in the order they were sent. The data is neither copied
 * nor checksummed again: the engine's checksums, computed from the same memory, become the
 * store's.
 *
 * Entries and the checksum area are reused; a batch is applied at once when either is full.
 */
export class DirectWrites {
  private readonly store: ReplicaStore;
  private readonly log: Logger;
  private readonly pending: DirectWrite[] = [];
  private readonly spare: DirectWrite[] = [];
  private readonly outcomes: unknown[] = [];
  /** The checksums of the pending writes, as numbers. */
  private readonly checksums = new Uint32Array(MAX_IO_BLOCKS);
  private checksumsUsed = 0;
  private pendingFua = false;
  private scheduled = false;
  private applying = false;
  private readonly applyScheduled = (): void => {
    this.scheduled = false;
    this.apply();
  };

  constructor(store: ReplicaStore, log: Logger) {
    this.store = store;
    this.log = log;
  }

  /** InThreadStore.write: `data` must be whole 4 KiB blocks at a block-aligned offset. */
  submit(
    offsetBytes: number,
    data: Uint8Array,
    section: Uint8Array,
    flags: number,
    done: (error: unknown) => void,
  ): void {
    assert(!this.applying, 'a direct write submitted from the completion of another');
    const blocks = data.length / BLOCK_SIZE;
    if (
      offsetBytes % BLOCK_SIZE !== 0 ||
      !Number.isInteger(blocks) ||
      blocks > MAX_IO_BLOCKS ||
      section.length !== blocks * 4
    ) {
      done(
        new HornbillError('INVALID_ARGUMENT', 'a direct write covers whole 4 KiB blocks, one checksum each'),
      );
      return;
    }
    if (this.pending.length === MAX_BATCH_WRITES || this.checksumsUsed + blocks > MAX_IO_BLOCKS) this.apply();
    const computed = this.checksums.subarray(this.checksumsUsed, this.checksumsUsed + blocks);
    readChecksumSection(section, computed, blocks);
    this.checksumsUsed += blocks;
    const write = this.spare.pop() ?? ({} as DirectWrite);
    write.offsetBytes = offsetBytes;
    write.data = data;
    write.computedChecksums = computed;
    write.repair = (flags & FrameFlag.REPAIR) !== 0;
    write.fua = (flags & FrameFlag.FUA) !== 0;
    write.done = done;
    this.pending.push(write);
    if (write.fua) this.pendingFua = true;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.applyScheduled);
    }
  }

  /** Applies the writes gathered so far now (before frames that were sent after them). */
  applyPending(): void {
    if (!this.applying) this.apply();
  }

  /** Applies the pending writes and tells each caller its outcome. */
  private apply(): void {
    const writes = this.pending;
    if (writes.length === 0) return;
    this.applying = true;
    try {
      applyWriteBatch(this.store, writes, this.pendingFua, this.outcomes);
      // `done` settles a promise (ReplicaClient), so no caller runs before this loop ends.
      for (let index = 0; index < writes.length; index++) {
        const write = writes[index];
        const outcome = this.outcomes[index];
        const done = write.done;
        write.data = EMPTY;
        write.computedChecksums = EMPTY_CHECKSUMS;
        write.done = noop;
        this.spare.push(write);
        done(outcome === undefined ? undefined : this.asCoded(outcome));
      }
    } finally {
      writes.length = 0;
      this.outcomes.length = 0;
      this.checksumsUsed = 0;
      this.pendingFua = false;
      this.applying = false;
    }
  }

  /** The error a caller gets: a coded error as the store raised it, anything else INTERNAL (and logged). */
  private asCoded(error: unknown): HornbillError {
    if (error instanceof HornbillError) return error;
    this.log('error', 'replica write failed unexpectedly', {
      error: (error as Error)?.stack ?? String(error),
    });
    return new HornbillError('INTERNAL', error instanceof Error ? error.message : String(error));
  }
}

const EMPTY = new Uint8Array(0);
const EMPTY_CHECKSUMS = new Uint32Array(0);
const noop = (): void => {};
