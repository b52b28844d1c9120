/** Sizes and limits of the replica store. Every limit here is a written-down upper bound. */

/** One block: the unit of checksums, layer resolution and copy-on-write. */
export const BLOCK_SIZE = 4096;
export const BLOCK_SHIFT = 12;
/** The smallest unit of I/O the store accepts (a SCSI logical block). */
export const SECTOR_SIZE = 512;
/** Blocks per chunk: the unit of the index (one LMDB record per layer and chunk). 1024 blocks = 4 MiB. */
export const CHUNK_BLOCKS = 1024;
export const CHUNK_SHIFT = 10;
/** Largest single read, write or unmap (64 MiB); bigger requests are split by the caller. */
export const MAX_IO_BYTES = 64 * 1024 * 1024;
export const MAX_IO_BLOCKS = MAX_IO_BYTES / BLOCK_SIZE;
/**
 * Largest volume: 16 TiB less 2 MiB. Block numbers stay below 2^32 (the tables index chunks
 * with `block >>> CHUNK_SHIFT`), and layer files stay below ext4's 16 TiB file-size limit
 * (a multiple of 2 MiB, the size CSI rounds to).
 */
export const MAX_VOLUME_BYTES = 16 * 1024 ** 4 - 2 * 1024 * 1024;
/**
 * The journal is checkpointed into the index once it holds this many bytes: about 1 M block
 * records, 4 GiB of block writes. Larger means fewer syncs of data written again and again
 * (a checkpoint syncs every layer page written since the last one), smaller means a shorter
 * replay after a crash (it reads each block the journal names: 1.6-3.1 s for a full journal
 * here, page cache warm). docs/on-disk-format.md, "The journal".
 */
export const DEFAULT_CHECKPOINT_JOURNAL_BYTES = 32 * 1024 * 1024;
/** Layer files kept open at once (the head is always open and not counted). */
export const DEFAULT_MAX_OPEN_LAYER_FILES = 512;
/** Snapshot names: what Longhorn and Kubernetes names allow, and no path separators. */
export const SNAPSHOT_NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
export const HEAD_DISPLAY_NAME = 'volume-head';

/** What a layer says about one block. */
export const BlockState = {
  /** The layer does not hold the block; a read falls through to the parent layer. */
  ABSENT: 0,
  /** The layer holds data for the block in its file, with a checksum in the index. */
  DATA: 1,
  /** The layer holds the block as zeros (written zeros or unmapped); nothing is stored in the file. */
  ZERO: 2,
} as const;
export type BlockStateValue = (typeof BlockState)[keyof typeof BlockState];

export const FORMAT_MAGIC = 'hornbill-replica';
export const FORMAT_VERSION = 1;
