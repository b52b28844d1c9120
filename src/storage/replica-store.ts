import fs from 'node:fs';
import { HornbillError } from '../errors.ts';
import {
  createSnapshot,
  deleteSnapshot,
  expandVolume,
  listChain,
  revertToSnapshot,
  type SnapshotOptions,
} from './chain-operations.ts';
import { checksumOf, ZERO_BLOCK, ZERO_BLOCK_CHECKSUM } from './checksum.ts';
import { BLOCK_SHIFT, BLOCK_SIZE, BlockState, MAX_IO_BYTES, SECTOR_SIZE } from './constants.ts';
import { type ExportOptions, type ExportReport, exportImage } from './export.ts';
import { hashSnapshot, type VerifyReport, verify, verifySteps } from './integrity.ts';
import { validateIoRange } from './io-range.ts';
import type { LayerInfo } from './layer.ts';
import {
  createLayer,
  deleteLayerNow,
  type ImportedLayer,
  type LayerExtent,
  type LayerMetadata,
  layerExtents,
  readLayerBlocks,
  setHeadParent,
  setLayerMetadata,
  setLayerParent,
  writeLayerBlocks,
  writeLayerBlocksPastCache,
} from './layer-sync.ts';
import { type MappingRun, mappingStatus } from './mapping-status.ts';
import { createStoreFiles, openStoreCore, type StoreOptions } from './open-store.ts';
import { PurgeJob } from './purge.ts';
import type { StoreCore } from './store-core.ts';

export interface WriteOptions {
  /**
   * The sender's checksums: one CRC32C per 4 KiB block for a block-aligned write, or one
   * CRC32C of the whole data otherwise. Checked before anything is written.
   */
  expected?: Uint32Array | number;
  /** A repair of a block that read bad: not a new revision of the volume. */
  repair?: boolean;
  /**
   * The data's CRC32C per 4 KiB block, already computed from this very memory by this
   * thread (an engine writing to a replica it hosts, in-thread-link.ts): the store takes
   * them as its own instead of checksumming the data again. Nothing can change the data
   * between the two, so they are as good as the store's; a sender across a socket or a
   * thread gives `expected` instead. Used by block-aligned writes only.
   */
  computedChecksums?: Uint32Array;
}

/** One write of a batch. */
export interface WriteRequest extends WriteOptions {
  offsetBytes: number;
  data: Uint8Array;
}

export type {
  ExportOptions,
  ExportReport,
  ImportedLayer,
  LayerExtent,
  LayerInfo,
  MappingRun,
  SnapshotOptions,
  StoreOptions,
  VerifyReport,
};

/**
 * The on-disk store of one replica (DESIGN.md §4, docs/on-disk-format.md).
 *
 * Synchronous and owned by one thread: each call completes before the next starts, so
 * concurrent callers on that thread see every operation as atomic (overlapping sub-block
 * writes included). Offsets and lengths are bytes, multiples of 512.
 *
 * ```ts
 * const store = ReplicaStore.create('/var/lib/hornbill/replicas/pvc-1-r-1a2b', { sizeBytes: 1 << 30 });
 * store.write(0, data);
 * store.flush();                       // durable: survives kill -9 and power loss
 * store.snapshot('before-upgrade');
 * store.close();
 * ```
 */
export class ReplicaStore {
  private readonly core: StoreCore;

  private constructor(core: StoreCore) {
    this.core = core;
  }

  /** Creates a new replica folder (which must be empty or absent) and opens it. */
  static create(directory: string, options: StoreOptions & { sizeBytes: number }): ReplicaStore {
    createStoreFiles(directory, options.sizeBytes);
    // The index was written a moment ago by this process: no need to probe it.
    return ReplicaStore.open(directory, { ...options, probeIndex: false });
  }

  /** Opens an existing replica folder, recovering from a crash if there was one. */
  static open(directory: string, options: StoreOptions = {}): ReplicaStore {
    if (!fs.existsSync(directory)) {
      throw new HornbillError('STORE_INDEX_MISSING', `replica folder ${directory} does not exist`, {
        directory,
      });
    }
    return new ReplicaStore(openStoreCore(directory, options));
  }

  get directory(): string {
    return this.core.directory;
  }

  get sizeBytes(): number {
    return this.core.volume.sizeBytes;
  }

  /** Write and unmap operations applied (persisted with them, at no extra I/O). */
  get revisionCounter(): number {
    return this.core.revisionCounter;
  }

  get isClosed(): boolean {
    return this.core.closed;
  }

  get rebuilding(): boolean {
    return this.core.volume.rebuilding;
  }

  /** Reads `target.length` bytes at `offsetBytes`. Data blocks are checked against their checksums. */
  read(offsetBytes: number, target: Uint8Array): void {
    const core = this.core;
    core.checkOpen();
    if (target.length === BLOCK_SIZE && core.readOneBlock(offsetBytes, target)) return;
    this.validateIo(offsetBytes, target.length);
    const end = offsetBytes + target.length;
    let position = offsetBytes;
    let targetPosition = 0;
    if (position < end && (position % BLOCK_SIZE !== 0 || end - position < BLOCK_SIZE)) {
      const inner = position % BLOCK_SIZE;
      const length = Math.min(BLOCK_SIZE - inner, end - position);
      core.readResolved(Math.floor(position / BLOCK_SIZE), 1, core.scratchBlock, 0);
      target.set(core.scratchBlock.subarray(inner, inner + length), targetPosition);
      position += length;
      targetPosition += length;
    }
    const fullBlocks = Math.floor((end - position) / BLOCK_SIZE);
    if (fullBlocks > 0) {
      core.readResolved(position / BLOCK_SIZE, fullBlocks, target, targetPosition);
      position += fullBlocks << BLOCK_SHIFT;
      targetPosition += fullBlocks << BLOCK_SHIFT;
    }
    if (position < end) {
      core.readResolved(position / BLOCK_SIZE, 1, core.scratchBlock, 0);
      target.set(core.scratchBlock.subarray(0, end - position), targetPosition);
    }
  }

  /**
   * Writes `source` at `offsetBytes`. Partial blocks are read, merged and written whole.
   * The write survives kill -9 once this returns, and power loss once a later flush returns.
   * With `options.expected`, the data is checked against the sender's checksums first (a
   * mismatch is STORE_CHECKSUM_MISMATCH and nothing is written); a `repair` write does not
   * count as a new revision.
   */
  write(offsetBytes: number, source: Uint8Array, options: WriteOptions = {}): void {
    const core = this.core;
    core.checkOpen();
    this.validateIo(offsetBytes, source.length);
    if (source.length === 0) return;
    const aligned = offsetBytes % BLOCK_SIZE === 0 && source.length % BLOCK_SIZE === 0;
    if (aligned) {
      const firstBlock = offsetBytes / BLOCK_SIZE;
      const blockCount = source.length / BLOCK_SIZE;
      core.stageData(core.head, firstBlock, blockCount, source, 0, 0, options.computedChecksums);
      this.checkStaged(firstBlock, blockCount, 0, options.expected);
      this.countOperation(options);
      core.journalStaged(core.head, firstBlock, blockCount, 0);
      core.commitJournal();
      core.writeStaged(core.head, firstBlock, blockCount, source, 0, 0);
      core.maybeCheckpoint();
      return;
    }
    if (options.expected !== undefined) {
      const expected = typeof options.expected === 'number' ? options.expected : -1;
      if (checksumOf(source) !== expected) throw transferError(offsetBytes, 0, expected, checksumOf(source));
    }
    // Read the partial blocks first: if one fails its checksum, nothing has been journaled.
    const end = offsetBytes + source.length;
    const { leadBlock, tailBlock, leadPartial, tailPartial } = this.readPartialEdges(offsetBytes, end);
    this.countOperation(options);
    let position = offsetBytes;
    let sourcePosition = 0;
    if (leadPartial) {
      const length = Math.min(BLOCK_SIZE - (position % BLOCK_SIZE), end - position);
      this.applyPartialBlock(core.scratchBlock, leadBlock, position % BLOCK_SIZE, source.subarray(0, length));
      position += length;
      sourcePosition += length;
    }
    const fullBlocks = Math.floor((end - position) / BLOCK_SIZE);
    if (fullBlocks > 0) {
      const firstBlock = position / BLOCK_SIZE;
      core.stageData(core.head, firstBlock, fullBlocks, source, sourcePosition);
      core.applyStaged(core.head, firstBlock, fullBlocks, source, sourcePosition);
      position += fullBlocks << BLOCK_SHIFT;
      sourcePosition += fullBlocks << BLOCK_SHIFT;
    }
    if (tailPartial)
      this.applyPartialBlock(core.scratchTailBlock, tailBlock, 0, source.subarray(sourcePosition));
    core.journal.commit();
    core.maybeCheckpoint();
  }

  /**
   * Reads a block-aligned range and fills `checksums` with the CRC32C of each block as the
   * index holds it (zeros for blocks that read as zeros), so that the reader can check the
   * data again after it travels.
   */
  readWithChecksums(offsetBytes: number, target: Uint8Array, checksums: Uint32Array): void {
    const core = this.core;
    core.checkOpen();
    this.validateIo(offsetBytes, target.length);
    if (offsetBytes % BLOCK_SIZE !== 0 || target.length % BLOCK_SIZE !== 0) {
      throw new HornbillError('STORE_UNALIGNED', 'a read with checksums must cover whole 4 KiB blocks', {
        offsetBytes,
        lengthBytes: target.length,
      });
    }
    if (checksums.length < target.length / BLOCK_SIZE) {
      throw new HornbillError('INVALID_ARGUMENT', 'the checksum array is shorter than the block count');
    }
    core.readResolved(offsetBytes / BLOCK_SIZE, target.length / BLOCK_SIZE, target, 0, checksums);
  }

  private countOperation(options: WriteOptions): void {
    if (options.repair === true) return;
    this.core.revisionCounter++;
    this.core.journal.addOperation(this.core.revisionCounter);
  }

  /** Compares staged checksums with the sender's (zero blocks staged without data have the zero block's checksum). */
  private checkStaged(
    firstBlock: number,
    blockCount: number,
    stageOffset: number,
    expected: WriteOptions['expected'],
  ): void {
    if (expected === undefined) return;
    if (typeof expected === 'number' || expected.length < blockCount) {
      throw new HornbillError('INVALID_ARGUMENT', 'a block-aligned write needs one checksum per block');
    }
    const core = this.core;
    for (let index = 0; index < blockCount; index++) {
      const staged = stageOffset + index;
      const actual =
        core.stagedStates[staged] === BlockState.DATA ? core.stagedChecksums[staged] : ZERO_BLOCK_CHECKSUM;
      if (actual !== expected[index])
        throw transferError((firstBlock + index) * BLOCK_SIZE, index, expected[index], actual);
    }
  }

  /**
   * Writes several requests with the result of calling `write` for each in order, but
   * with one journal append for all of them when every request is whole 4 KiB blocks (a
   * replica server hands over the writes that arrived together). Requests that are not
   * block-aligned are written one by one. All requests are validated before any is written.
   */
  writeBatch(requests: readonly WriteRequest[]): void {
    const core = this.core;
    core.checkOpen();
    let blocks = 0;
    let aligned = true;
    for (const request of requests) {
      this.validateIo(request.offsetBytes, request.data.length);
      blocks += request.data.length / BLOCK_SIZE;
      if (request.offsetBytes % BLOCK_SIZE !== 0 || request.data.length % BLOCK_SIZE !== 0) aligned = false;
    }
    if (!aligned || blocks > MAX_IO_BYTES / BLOCK_SIZE) {
      for (const request of requests) this.write(request.offsetBytes, request.data, request);
      return;
    }
    const head = core.head;
    let stageOffset = 0;
    for (const request of requests) {
      const firstBlock = request.offsetBytes / BLOCK_SIZE;
      const blockCount = request.data.length / BLOCK_SIZE;
      core.stageData(head, firstBlock, blockCount, request.data, 0, stageOffset, request.computedChecksums);
      this.checkStaged(firstBlock, blockCount, stageOffset, request.expected);
      stageOffset += blockCount;
    }
    // Every request checked: now journal them all in one append.
    stageOffset = 0;
    for (const request of requests) {
      const firstBlock = request.offsetBytes / BLOCK_SIZE;
      const blockCount = request.data.length / BLOCK_SIZE;
      if (blockCount === 0) continue;
      this.countOperation(request);
      core.journalStaged(head, firstBlock, blockCount, stageOffset);
      stageOffset += blockCount;
    }
    core.commitJournal();
    stageOffset = 0;
    for (const request of requests) {
      const blockCount = request.data.length / BLOCK_SIZE;
      if (blockCount === 0) continue;
      core.writeStaged(head, request.offsetBytes / BLOCK_SIZE, blockCount, request.data, 0, stageOffset);
      stageOffset += blockCount;
    }
    core.maybeCheckpoint();
  }

  /**
   * Unmaps (trims) a range: afterwards it reads as zeros, and whole blocks give their
   * space back (holes are punched in the head). Partial blocks are zero-filled.
   */
  unmap(offsetBytes: number, lengthBytes: number): void {
    const core = this.core;
    core.checkOpen();
    this.validateIo(offsetBytes, lengthBytes, Number.MAX_SAFE_INTEGER);
    if (lengthBytes === 0) return;
    const end = offsetBytes + lengthBytes;
    const { leadBlock, tailBlock, leadPartial, tailPartial } = this.readPartialEdges(offsetBytes, end);
    this.countOperation({});
    let position = offsetBytes;
    if (leadPartial) {
      const inner = position % BLOCK_SIZE;
      const length = Math.min(BLOCK_SIZE - inner, end - position);
      this.applyPartialBlock(core.scratchBlock, leadBlock, inner, ZERO_BLOCK.subarray(0, length));
      position += length;
    }
    const fullBlocks = Math.floor((end - position) / BLOCK_SIZE);
    if (fullBlocks > 0) {
      core.unmapBlocks(position / BLOCK_SIZE, fullBlocks);
      position += fullBlocks * BLOCK_SIZE;
    }
    if (tailPartial)
      this.applyPartialBlock(core.scratchTailBlock, tailBlock, 0, ZERO_BLOCK.subarray(0, end - position));
    core.journal.commit();
    core.maybeCheckpoint();
  }

  /**
   * Provisioning status from `offsetBytes`: runs of mapped (data stored) and deallocated
   * (reads zeros, nothing stored) bytes, in 4 KiB granularity clipped to the request. Stops
   * after `maxRuns` runs, so the answer may cover less than `lengthBytes` (never nothing).
   */
  mappingStatus(offsetBytes: number, lengthBytes: number, maxRuns = 1024): MappingRun[] {
    this.core.checkOpen();
    this.validateIo(offsetBytes, lengthBytes, Number.MAX_SAFE_INTEGER);
    return mappingStatus(this.core, offsetBytes, lengthBytes, maxRuns);
  }

  /** Makes every completed write durable (layer data and journal fdatasync'ed). */
  flush(): void {
    this.core.checkOpen();
    this.core.flush();
  }

  snapshot(name: string, options: SnapshotOptions = {}): LayerInfo {
    this.core.checkOpen();
    return createSnapshot(this.core, name, options);
  }

  /** The layers: live chain root first, head last, then layers off the live chain. */
  listChain(): LayerInfo[] {
    this.core.checkOpen();
    return listChain(this.core);
  }

  /** Marks a snapshot removed; `purge` reclaims it. */
  deleteSnapshot(name: string): void {
    this.core.checkOpen();
    deleteSnapshot(this.core, name);
  }

  /** A purge that the caller steps (`step()` returns true when done), interleaving I/O between steps. */
  startPurge(): PurgeJob {
    this.core.checkOpen();
    return new PurgeJob(this.core);
  }

  /** Purges everything that can be purged, without yielding. */
  purge(): { purgedLayers: number; copiedBytes: number } {
    const job = this.startPurge();
    job.run();
    return { purgedLayers: job.purgedLayers, copiedBytes: job.copiedBytes };
  }

  /** Reverts the volume to a snapshot. The caller guarantees no I/O is running (frontend down). */
  revert(name: string): void {
    this.core.checkOpen();
    revertToSnapshot(this.core, name);
  }

  hashSnapshot(name: string): string {
    this.core.checkOpen();
    return hashSnapshot(this.core, name);
  }

  expand(sizeBytes: number): void {
    this.core.checkOpen();
    expandVolume(this.core, sizeBytes);
  }

  /** Checks every data block of every layer against its checksum; lists the bad ones. */
  verify(): VerifyReport {
    this.core.checkOpen();
    return verify(this.core);
  }

  /** The same walk as `verify`, yielding after every 1 MiB so that a caller can interleave I/O. */
  verifySteps(): Generator<{ blocksChecked: number }, VerifyReport> {
    this.core.checkOpen();
    return verifySteps(this.core);
  }

  exportImage(options: ExportOptions): ExportReport {
    this.core.checkOpen();
    return exportImage(this.core, options);
  }

  // ---- rebuild (sync) support ------------------------------------------------------------

  layerExtents(
    layerName: string,
    startBlock = 0,
    blockCount = this.core.blockCount - startBlock,
  ): LayerExtent[] {
    this.core.checkOpen();
    return layerExtents(this.core, layerName, startBlock, blockCount);
  }

  readLayerBlocks(layerName: string, startBlock: number, target: Uint8Array): void {
    this.core.checkOpen();
    readLayerBlocks(this.core, layerName, startBlock, target);
  }

  writeLayerBlocks(
    layerName: string,
    startBlock: number,
    states: Uint8Array,
    checksums: Uint32Array,
    data: Uint8Array | null,
  ): void {
    this.core.checkOpen();
    writeLayerBlocks(this.core, layerName, startBlock, states, checksums, data);
  }

  /**
   * writeLayerBlocks with the data written past the page cache, for a rebuild filling a
   * snapshot layer (layer-sync.ts writeLayerBlocksPastCache); undefined when it cannot go
   * that way, and then nothing was done.
   */
  writeLayerBlocksPastCache(
    layerName: string,
    startBlock: number,
    states: Uint8Array,
    checksums: Uint32Array,
    data: Uint8Array,
  ): Promise<void> | undefined {
    this.core.checkOpen();
    return writeLayerBlocksPastCache(this.core, layerName, startBlock, states, checksums, data);
  }

  createLayer(spec: ImportedLayer): LayerInfo {
    this.core.checkOpen();
    return createLayer(this.core, spec);
  }

  setHeadParent(parent: string | null): void {
    this.core.checkOpen();
    setHeadParent(this.core, parent);
  }

  /** Moves a snapshot (or the head, by its display name) under another parent. */
  setLayerParent(layerName: string, parent: string | null): void {
    this.core.checkOpen();
    setLayerParent(this.core, layerName, parent);
  }

  setLayerMetadata(layerName: string, metadata: LayerMetadata): void {
    this.core.checkOpen();
    setLayerMetadata(this.core, layerName, metadata);
  }

  /** Deletes a snapshot without children at once (a rebuild target's surplus layers). */
  deleteLayerNow(layerName: string): void {
    this.core.checkOpen();
    deleteLayerNow(this.core, layerName);
  }

  /** While rebuilding, zero writes and unmaps in the head are always recorded (never left ABSENT). */
  setRebuilding(rebuilding: boolean): void {
    this.core.checkOpen();
    if (this.core.volume.rebuilding === rebuilding) return;
    this.core.checkpoint({ volume: { ...this.core.volume, rebuilding } });
  }

  /** Sets the revision counter (a rebuilt replica takes its source's). */
  setRevisionCounter(revisionCounter: number): void {
    this.core.checkOpen();
    if (!Number.isSafeInteger(revisionCounter) || revisionCounter < 0) {
      throw new HornbillError('INVALID_ARGUMENT', 'revision counter must be a non-negative integer', {
        revisionCounter,
      });
    }
    this.core.revisionCounter = revisionCounter;
    this.core.checkpoint();
  }

  /** Recomputes the store's derived in-memory structures and checks them (INTERNAL error if wrong). */
  selfCheck(): void {
    this.core.checkOpen();
    this.core.selfCheck();
  }

  /** Bytes the replica folder's layer files occupy on disk. */
  allocatedBytes(): number {
    this.core.checkOpen();
    let total = 0;
    for (const layer of this.core.layers.values()) total += layer.file.allocatedBytes();
    return total;
  }

  /** Checkpoints, closes every file and releases the folder lock. Idempotent. */
  close(): void {
    const core = this.core;
    if (core.closed) return;
    try {
      core.checkpoint();
    } finally {
      core.closed = true;
      for (const layer of core.layers.values()) core.files.forget(layer.file);
      core.journal.close();
      core.index.close();
      fs.closeSync(core.lockFd);
    }
  }

  /** Overlays `part` on a block already read into `block`, then writes the whole block to the head. */
  private applyPartialBlock(scratch: Buffer, block: number, inner: number, part: Uint8Array): void {
    const core = this.core;
    scratch.set(part, inner);
    core.stageData(core.head, block, 1, scratch, 0);
    core.applyStaged(core.head, block, 1, scratch, 0);
  }

  private validateIo(offsetBytes: number, lengthBytes: number, maxLength = MAX_IO_BYTES): void {
    validateIoRange(offsetBytes, lengthBytes, {
      sizeBytes: this.core.volume.sizeBytes,
      sectorSize: SECTOR_SIZE,
      maxLength,
    });
  }

  /**
   * The partial first and last blocks of a range, read (and checked) into the two scratch
   * blocks before anything is journaled, so that a bad block stops the operation cleanly.
   */
  private readPartialEdges(
    offsetBytes: number,
    end: number,
  ): { leadBlock: number; tailBlock: number; leadPartial: boolean; tailPartial: boolean } {
    const core = this.core;
    const leadBlock = Math.floor(offsetBytes / BLOCK_SIZE);
    const tailBlock = Math.floor((end - 1) / BLOCK_SIZE);
    const leadPartial = offsetBytes % BLOCK_SIZE !== 0 || end - offsetBytes < BLOCK_SIZE;
    const tailPartial = end % BLOCK_SIZE !== 0 && !(leadPartial && tailBlock === leadBlock);
    if (leadPartial) core.readResolved(leadBlock, 1, core.scratchBlock, 0);
    if (tailPartial) core.readResolved(tailBlock, 1, core.scratchTailBlock, 0);
    return { leadBlock, tailBlock, leadPartial, tailPartial };
  }
}

/** A block that does not match the checksum its sender computed: damaged on the way. */
function transferError(offsetBytes: number, index: number, expected: number, actual: number): HornbillError {
  return new HornbillError(
    'STORE_CHECKSUM_MISMATCH',
    `data for offset ${offsetBytes} does not match the checksum it was sent with; nothing was written`,
    { transfer: true, offsetBytes, index, expected, actual },
  );
}
