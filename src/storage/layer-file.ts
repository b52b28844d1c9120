import fs from 'node:fs';
import path from 'node:path';
import fsExtensions from 'fs-native-extensions';
import { assert } from '../assert.ts';
import { fromSystemError } from '../errors.ts';
import { BLOCK_SHIFT, BLOCK_SIZE } from './constants.ts';
import { DirectDescriptor, isDirectRefusal } from './direct-descriptor.ts';

export function layerFileName(layerId: number): string {
  return `${String(layerId).padStart(6, '0')}.img`;
}

/** Layer id from a file name, or undefined when the name is not one of ours. */
export function layerIdFromFileName(name: string): number | undefined {
  const match = /^(\d{6,})\.img$/.exec(name);
  return match === null ? undefined : Number(match[1]);
}

/**
 * One sparse layer file: block b lives at byte b × 4096, holes read as zeros. All I/O is
 * synchronous (see docs/on-disk-format.md: the store is owned by one thread, and a
 * synchronous page-cache write costs a fifth of a libuv threadpool round trip).
 */
export class LayerFile {
  readonly path: string;
  fd = -1;
  /** Written since the last flush; flush makes it durable with fdatasync. */
  dirty = false;
  /** Pinned files (the head) are never closed by the open-file cache. */
  pinned = false;
  /** Position in the open-file cache's recency order. */
  lastUsed = 0;
  /** Descriptor for writes past the page cache: undefined not opened yet, null refused by the file system. */
  private direct: DirectDescriptor | null | undefined;

  constructor(directory: string, layerId: number) {
    this.path = path.join(directory, layerFileName(layerId));
  }

  static create(directory: string, layerId: number, sizeBytes: number): LayerFile {
    const file = new LayerFile(directory, layerId);
    try {
      file.fd = fs.openSync(file.path, 'wx+');
      fs.ftruncateSync(file.fd, sizeBytes);
    } catch (error) {
      file.close();
      throw fromSystemError(error, `creating layer file ${file.path}`);
    }
    return file;
  }

  isOpen(): boolean {
    return this.fd >= 0;
  }

  open(): void {
    if (this.fd >= 0) return;
    try {
      this.fd = fs.openSync(this.path, 'r+');
    } catch (error) {
      throw fromSystemError(error, `opening layer file ${this.path}`);
    }
  }

  close(): void {
    this.direct?.release();
    this.direct = undefined;
    if (this.fd < 0) return;
    const fd = this.fd;
    this.fd = -1;
    fs.closeSync(fd);
  }

  /** Reads `blockCount` blocks into `target` at `targetOffset`; bytes beyond the end of the file read as zeros. */
  readBlocks(firstBlock: number, blockCount: number, target: Uint8Array, targetOffset: number): void {
    assert(this.fd >= 0, 'read from a closed layer file');
    const length = blockCount << BLOCK_SHIFT;
    let done = 0;
    try {
      while (done < length) {
        const count = fs.readSync(
          this.fd,
          target,
          targetOffset + done,
          length - done,
          firstBlock * BLOCK_SIZE + done,
        );
        if (count === 0) break;
        done += count;
      }
    } catch (error) {
      throw fromSystemError(error, `reading layer file ${this.path}`, { block: firstBlock });
    }
    if (done < length) target.fill(0, targetOffset + done, targetOffset + length);
  }

  /**
   * Writes `blockCount` blocks from `source`, with one pwrite(2) per `pieceBlocks` blocks at
   * most (default: one for all). The page cache gives a write into uncached pages folios as
   * large as the write, and each later 4 KiB write into such a folio costs the kernel a walk
   * over all of its blocks (ext4_block_write_begin): the store writes blocks new to its head
   * in small pieces (store-core.ts FIRST_WRITE_PIECE_BLOCKS) so that random writes stay cheap.
   */
  writeBlocks(
    firstBlock: number,
    blockCount: number,
    source: Uint8Array,
    sourceOffset: number,
    pieceBlocks = blockCount,
  ): void {
    assert(this.fd >= 0, 'write to a closed layer file');
    const length = blockCount << BLOCK_SHIFT;
    const pieceBytes = Math.max(1, pieceBlocks) << BLOCK_SHIFT;
    let done = 0;
    try {
      while (done < length) {
        done += fs.writeSync(
          this.fd,
          source,
          sourceOffset + done,
          Math.min(length - done, pieceBytes - (done % pieceBytes)),
          firstBlock * BLOCK_SIZE + done,
        );
      }
    } catch (error) {
      throw fromSystemError(error, `writing layer file ${this.path}`, { block: firstBlock });
    }
    this.dirty = true;
  }

  /**
   * Whether `data` can be written at `firstBlock` past the page cache (writeBlocksPastCache):
   * aligned memory and a file system that takes O_DIRECT (asked once per open file).
   */
  takesWritesPastCache(firstBlock: number, data: Uint8Array): boolean {
    if (!DirectDescriptor.accepts(data, firstBlock * BLOCK_SIZE)) return false;
    if (this.direct === undefined) this.direct = DirectDescriptor.open(this.path) ?? null;
    return this.direct !== null;
  }

  /**
   * Writes whole blocks past the page cache, on the thread pool (DirectDescriptor), where
   * takesWritesPastCache said they can go; `done` runs when they are in the file (and the
   * file is marked dirty, for the next flush's fdatasync). A write the file system refuses
   * (EINVAL: isDirectRefusal) ends with that error and turns direct writes to this file off.
   */
  writeBlocksPastCache(firstBlock: number, data: Uint8Array, done: (error?: Error) => void): void {
    const direct = this.direct;
    assert(direct !== undefined && direct !== null, 'write past the page cache before takesWritesPastCache');
    direct.write(data, firstBlock * BLOCK_SIZE, (error) => {
      if (error === undefined) this.dirty = true;
      // A file system that opens with O_DIRECT but refuses the write: no more direct writes
      // to this file (the caller writes this one through the page cache).
      else if (isDirectRefusal(error)) this.refuseDirect();
      done(error);
    });
  }

  private refuseDirect(): void {
    this.direct?.release();
    this.direct = null;
  }

  /** Deallocates the blocks (fallocate PUNCH_HOLE | KEEP_SIZE): the file stays thin. */
  punch(firstBlock: number, blockCount: number): void {
    assert(this.fd >= 0, 'punch in a closed layer file');
    try {
      fsExtensions.trimSync(this.fd, firstBlock * BLOCK_SIZE, blockCount * BLOCK_SIZE);
    } catch (error) {
      throw fromSystemError(error, `punching a hole in layer file ${this.path}`, { block: firstBlock });
    }
    this.dirty = true;
  }

  datasync(): void {
    if (!this.dirty) return;
    assert(this.fd >= 0, 'sync of a closed layer file');
    try {
      fs.fdatasyncSync(this.fd);
    } catch (error) {
      throw fromSystemError(error, `syncing layer file ${this.path}`);
    }
    this.dirty = false;
  }

  truncate(sizeBytes: number): void {
    assert(this.fd >= 0, 'truncate of a closed layer file');
    try {
      fs.ftruncateSync(this.fd, sizeBytes);
    } catch (error) {
      throw fromSystemError(error, `resizing layer file ${this.path}`);
    }
    this.dirty = true;
  }

  /** Bytes the file occupies on disk (allocated blocks, not its apparent size). */
  allocatedBytes(): number {
    return fs.statSync(this.path).blocks * 512;
  }
}

/**
 * Bounds the number of open layer files: a chain of thousands of snapshots must not need
 * thousands of descriptors. Least recently used unpinned files are closed first; a closed
 * file that still has unsynced writes is synced before it is closed, so flush never
 * needs a closed file.
 */
export class OpenFileCache {
  private readonly open = new Set<LayerFile>();
  private clock = 0;
  private readonly maxOpen: number;

  constructor(maxOpen: number) {
    this.maxOpen = maxOpen;
  }

  /** Makes sure the file is open, evicting the least recently used unpinned file when full. */
  use(file: LayerFile): LayerFile {
    file.lastUsed = ++this.clock;
    if (file.isOpen()) return file;
    if (!file.pinned && this.open.size >= this.maxOpen) this.evictOne();
    file.open();
    if (!file.pinned) this.open.add(file);
    return file;
  }

  pin(file: LayerFile): void {
    this.open.delete(file);
    file.pinned = true;
    file.open();
  }

  unpin(file: LayerFile): void {
    file.pinned = false;
    if (file.isOpen()) this.open.add(file);
  }

  forget(file: LayerFile): void {
    this.open.delete(file);
    file.close();
  }

  private evictOne(): void {
    let oldest: LayerFile | undefined;
    for (const file of this.open) if (oldest === undefined || file.lastUsed < oldest.lastUsed) oldest = file;
    if (oldest === undefined) return;
    oldest.datasync();
    this.forget(oldest);
  }
}
