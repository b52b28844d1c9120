import { HornbillError } from '../errors.ts';
import { crc32cBlocks } from '../native.ts';
import {
  describeLayer,
  discardNewLayer,
  findSnapshot,
  newLayer,
  validateSnapshotName,
} from './chain-operations.ts';
import { BLOCK_SHIFT, BLOCK_SIZE, BlockState, HEAD_DISPLAY_NAME, MAX_IO_BLOCKS } from './constants.ts';
import { isDirectRefusal } from './direct-descriptor.ts';
import type { LayerRecord } from './index-db.ts';
import type { Layer, LayerInfo } from './layer.ts';
import { checksumError, type StoreCore } from './store-core.ts';

/**
 * What a rebuild needs from a replica store (DESIGN.md §3): list a layer's extents with
 * their checksums (so a target can skip ranges it already holds), read a layer's blocks,
 * and accept blocks into a layer, with every checksum checked again on arrival.
 */

export interface LayerExtent {
  startBlock: number;
  blockCount: number;
  state: 'data' | 'zero';
  /** One CRC32C per block for data extents; null for zero extents. */
  checksums: Uint32Array | null;
}

/** A layer by snapshot name, or the head by its display name. */
export function findLayer(core: StoreCore, name: string): Layer {
  return name === HEAD_DISPLAY_NAME ? core.head : findSnapshot(core, name);
}

function validateBlockRange(core: StoreCore, startBlock: number, blockCount: number): void {
  if (
    !Number.isSafeInteger(startBlock) ||
    !Number.isSafeInteger(blockCount) ||
    startBlock < 0 ||
    blockCount < 0 ||
    startBlock + blockCount > core.blockCount
  ) {
    throw new HornbillError(
      'STORE_OUT_OF_RANGE',
      `blocks [${startBlock}, +${blockCount}) are outside the volume`,
      {
        startBlock,
        blockCount,
        volumeBlocks: core.blockCount,
      },
    );
  }
}

export function layerExtents(
  core: StoreCore,
  name: string,
  startBlock: number,
  blockCount: number,
): LayerExtent[] {
  const layer = findLayer(core, name);
  validateBlockRange(core, startBlock, blockCount);
  return layer.table.runs(startBlock, startBlock + blockCount).map((run) => {
    if (run.state !== BlockState.DATA) {
      return { startBlock: run.startBlock, blockCount: run.blockCount, state: 'zero', checksums: null };
    }
    const checksums = new Uint32Array(run.blockCount);
    for (let index = 0; index < run.blockCount; index++)
      checksums[index] = layer.table.checksum(run.startBlock + index);
    return { startBlock: run.startBlock, blockCount: run.blockCount, state: 'data', checksums };
  });
}

/** Reads data blocks of one layer (not resolved through the chain); every block must be data. */
export function readLayerBlocks(core: StoreCore, name: string, startBlock: number, target: Uint8Array): void {
  const layer = findLayer(core, name);
  const blockCount = target.length >>> BLOCK_SHIFT;
  if (target.length !== blockCount << BLOCK_SHIFT || blockCount > MAX_IO_BLOCKS) {
    throw new HornbillError('STORE_UNALIGNED', 'a layer read must be whole blocks, at most 64 MiB', {
      length: target.length,
    });
  }
  validateBlockRange(core, startBlock, blockCount);
  for (let index = 0; index < blockCount; index++) {
    if (layer.table.state(startBlock + index) !== BlockState.DATA) {
      throw new HornbillError('INVALID_ARGUMENT', `block ${startBlock + index} of ${name} holds no data`, {
        block: startBlock + index,
      });
    }
  }
  const mismatches = core.readLayerRun(layer, startBlock, blockCount, target, 0, undefined);
  if (mismatches !== undefined) throw checksumError(mismatches, core.directory);
}

/**
 * Checks a layer write (writeLayerBlocks) before anything is written: the range, one state
 * and checksum per block, 4096 bytes of data per block when any is data, and every data
 * block against its checksum (STORE_CHECKSUM_MISMATCH). Returns whether any block is data.
 */
function checkLayerWrite(
  core: StoreCore,
  layer: Layer,
  startBlock: number,
  states: Uint8Array,
  checksums: Uint32Array,
  data: Uint8Array | null,
): boolean {
  const blockCount = states.length;
  if (blockCount > MAX_IO_BLOCKS || checksums.length !== blockCount) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      'states and checksums must have one entry per block, at most 16384',
      {
        blocks: blockCount,
        checksums: checksums.length,
      },
    );
  }
  validateBlockRange(core, startBlock, blockCount);
  const hasData = states.some((state) => state === BlockState.DATA);
  if (hasData && (data === null || data.length !== blockCount << BLOCK_SHIFT)) {
    throw new HornbillError('INVALID_ARGUMENT', 'data must hold 4096 bytes for every block', {
      expectedBytes: blockCount << BLOCK_SHIFT,
      actualBytes: data?.length ?? 0,
    });
  }
  for (let index = 0; index < blockCount; index++) {
    if (states[index] > BlockState.ZERO) {
      throw new HornbillError('INVALID_ARGUMENT', `unknown block state ${states[index]}`, {
        block: startBlock + index,
      });
    }
  }
  // The data's checksums in one native call, into the staging area they are staged from.
  const actualChecksums = core.stagedChecksums;
  if (hasData) crc32cBlocks(data!, 0, BLOCK_SIZE, blockCount, actualChecksums, 0);
  const mismatches = [];
  for (let index = 0; index < blockCount; index++) {
    if (states[index] === BlockState.DATA) {
      const actual = actualChecksums[index];
      if (actual !== checksums[index]) {
        mismatches.push({
          layerId: layer.id,
          layerName: layer.displayName,
          block: startBlock + index,
          expected: checksums[index],
          actual,
        });
      }
    }
  }
  if (mismatches.length > 0) throw checksumError(mismatches, core.directory);
  return hasData;
}

/**
 * Puts blocks into one layer: `states[i]` is 'data' (1), 'zero' (2) or 'absent' (0) for block
 * startBlock + i; data blocks take their 4 KiB from `data` at i × 4096 and must match
 * `checksums[i]`. The apply is journaled like any write.
 */
export function writeLayerBlocks(
  core: StoreCore,
  name: string,
  startBlock: number,
  states: Uint8Array,
  checksums: Uint32Array,
  data: Uint8Array | null,
): void {
  const layer = findLayer(core, name);
  const hasData = checkLayerWrite(core, layer, startBlock, states, checksums, data);
  const blockCount = states.length;
  core.stagedStates.set(states);
  for (let index = 0; index < blockCount; index++) {
    core.stagedChecksums[index] = states[index] === BlockState.DATA ? checksums[index] : 0;
  }
  core.applyStaged(layer, startBlock, blockCount, hasData ? data : null, 0);
  if (layer.record.hash !== null) layer.record.hash = null;
  core.maybeCheckpoint();
}

/**
 * Runs of data shorter than this (64 KiB) go through the page cache even for a rebuild: a
 * direct write is one device request, and a fragmented layer (4 KiB of data, 4 KiB of hole)
 * would make one per block: its rebuild took 4.3× cp's time for 1 GiB with every run
 * written directly (bench/compare/rebuild.ts --size 1G, 2026-11-26).
 */
export const PAST_CACHE_MIN_BLOCKS = 16;

/**
 * writeLayerBlocks for data blocks of a snapshot layer (a rebuild filling it), with the data
 * written past the page cache on the thread pool (DirectDescriptor): checked as
 * writeLayerBlocks checks, then written, and only once the data is in the file are the
 * blocks journaled and entered in the layer's table — until then the layer reads as it did,
 * and a crash leaves the blocks out of the index (a rebuild copies them again). Returns
 * undefined, having done nothing, when the write cannot or should not go that way: fewer
 * than PAST_CACHE_MIN_BLOCKS blocks, the head (whose pages the volume reads and rewrites), a
 * state other than data, memory not aligned, a file system without O_DIRECT; the caller
 * then uses writeLayerBlocks. `data` and `checksums` must not change until the promise
 * settles. A layer deleted or replaced meanwhile, or the store closed, rejects it
 * (STORE_SNAPSHOT_NOT_FOUND, STORE_CLOSED).
 */
export function writeLayerBlocksPastCache(
  core: StoreCore,
  name: string,
  startBlock: number,
  states: Uint8Array,
  checksums: Uint32Array,
  data: Uint8Array,
): Promise<void> | undefined {
  const layer = findLayer(core, name);
  if (states.length < PAST_CACHE_MIN_BLOCKS || layer === core.head) return undefined;
  if (!states.every((state) => state === BlockState.DATA)) return undefined;
  if (!layer.file.takesWritesPastCache(startBlock, data)) return undefined;
  checkLayerWrite(core, layer, startBlock, states, checksums, data);
  const blockCount = states.length;
  let settle!: { resolve: () => void; reject: (error: unknown) => void };
  const written = new Promise<void>((resolve, reject) => {
    settle = { resolve, reject };
  });
  layer.file.writeBlocksPastCache(startBlock, data, (error) => {
    if (error !== undefined && !isDirectRefusal(error)) {
      settle.reject(error);
      return;
    }
    try {
      core.checkOpen();
      if (findLayer(core, name) !== layer)
        throw new HornbillError(
          'STORE_SNAPSHOT_NOT_FOUND',
          `layer ${name} was deleted and made again while its blocks were written`,
        );
      if (error !== undefined) {
        // The file system refused the direct write: through the page cache, as any layer write.
        writeLayerBlocks(core, name, startBlock, states, checksums, data);
        settle.resolve();
        return;
      }
      core.stagedStates.fill(BlockState.DATA, 0, blockCount);
      core.stagedChecksums.set(checksums);
      core.journalStaged(layer, startBlock, blockCount, 0);
      core.commitJournal();
      core.writeStaged(layer, startBlock, blockCount, null, 0, 0, true);
      if (layer.record.hash !== null) layer.record.hash = null;
      core.maybeCheckpoint();
      settle.resolve();
    } catch (error) {
      settle.reject(error);
    }
  });
  return written;
}

export interface ImportedLayer {
  name: string;
  /** The parent snapshot's name, or null for a root layer. */
  parent: string | null;
  createdAt?: string;
  userCreated?: boolean;
  removed?: boolean;
  labels?: Record<string, string>;
}

/**
 * Creates an empty snapshot layer under `parent` (or as a root), to be filled with
 * writeLayerBlocks: how a rebuild target builds the source's chain below its head.
 */
export function createLayer(core: StoreCore, spec: ImportedLayer): LayerInfo {
  validateSnapshotName(spec.name);
  if (core.layersByName.has(spec.name)) {
    throw new HornbillError('STORE_SNAPSHOT_EXISTS', `a snapshot named ${spec.name} already exists`, {
      name: spec.name,
    });
  }
  const parent = spec.parent === null ? null : findSnapshot(core, spec.parent);
  const record: Omit<LayerRecord, 'id'> = {
    name: spec.name,
    parentId: parent?.id ?? null,
    createdAt: spec.createdAt ?? new Date().toISOString(),
    userCreated: spec.userCreated ?? false,
    removed: spec.removed ?? false,
    labels: { ...(spec.labels ?? {}) },
    sizeBytes: core.volume.sizeBytes,
    hash: null,
  };
  const layer = newLayer(core, record);
  try {
    core.checkpoint({ putLayers: [layer.record], volume: { ...core.volume, nextLayerId: layer.id + 1 } });
  } catch (error) {
    discardNewLayer(core, layer);
    throw error;
  }
  core.addLayer(layer);
  core.setParent(layer, record.parentId);
  return describeLayer(core, layer);
}

/** Puts the head on top of `parent` (or makes it a root); its own blocks stay. */
export function setHeadParent(core: StoreCore, parent: string | null): void {
  const parentLayer = parent === null ? null : findSnapshot(core, parent);
  core.checkpoint({ putLayers: [{ ...core.head.record, parentId: parentLayer?.id ?? null }] });
  core.setParent(core.head, parentLayer?.id ?? null);
  core.rebuildChain();
}

export interface LayerMetadata {
  createdAt?: string;
  userCreated?: boolean;
  removed?: boolean;
  labels?: Record<string, string>;
}

/**
 * Moves a snapshot under another parent (or makes it a root), as a rebuild target does to
 * match its source's chain. Refused when it would make a cycle.
 */
export function setLayerParent(core: StoreCore, name: string, parent: string | null): void {
  const layer = findLayer(core, name);
  const parentLayer = parent === null ? null : findSnapshot(core, parent);
  for (let ancestor: Layer | null = parentLayer; ancestor !== null; ) {
    if (ancestor === layer) {
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `making ${parent} the parent of ${name} would make a cycle`,
        { name, parent },
      );
    }
    ancestor = ancestor.record.parentId === null ? null : (core.layers.get(ancestor.record.parentId) ?? null);
  }
  if (layer.record.parentId === (parentLayer?.id ?? null)) return;
  core.checkpoint({ putLayers: [{ ...layer.record, parentId: parentLayer?.id ?? null }] });
  core.setParent(layer, parentLayer?.id ?? null);
  core.rebuildChain();
}

/** Sets a snapshot's metadata (a rebuild target copies its source's). */
export function setLayerMetadata(core: StoreCore, name: string, metadata: LayerMetadata): void {
  const layer = findSnapshot(core, name);
  const record: LayerRecord = {
    ...layer.record,
    createdAt: metadata.createdAt ?? layer.record.createdAt,
    userCreated: metadata.userCreated ?? layer.record.userCreated,
    removed: metadata.removed ?? layer.record.removed,
    labels: metadata.labels === undefined ? layer.record.labels : { ...metadata.labels },
  };
  core.index.commit({ putLayers: [record] });
  Object.assign(layer.record, record);
}

/**
 * Deletes a snapshot at once, data and all (not mark-and-purge): for a rebuild target's
 * layers that its source does not have. The snapshot must have no children, which also
 * means it is not on the live chain.
 */
export function deleteLayerNow(core: StoreCore, name: string): void {
  const layer = findSnapshot(core, name);
  if (layer.childIds.size > 0) {
    throw new HornbillError('INVALID_ARGUMENT', `snapshot ${name} has children; move or delete them first`, {
      name,
    });
  }
  core.checkpoint({
    deleteLayers: [layer.id],
    volume: { ...core.volume, garbageLayerIds: [...core.volume.garbageLayerIds, layer.id] },
  });
  core.dropLayer(layer);
  core.collectGarbage();
}
