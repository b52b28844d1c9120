import fs from 'node:fs';
import path from 'node:path';
import fsExtensions from 'fs-native-extensions';
import { HornbillError } from '../errors.ts';
import { Chunk } from './block-table.ts';
import { blockChecksum, isZeroBlock, ZERO_BLOCK_CHECKSUM } from './checksum.ts';
import {
  BLOCK_SIZE,
  BlockState,
  type BlockStateValue,
  CHUNK_BLOCKS,
  DEFAULT_CHECKPOINT_JOURNAL_BYTES,
  MAX_VOLUME_BYTES,
} from './constants.ts';
import {
  INDEX_FILE_NAME,
  type IndexContents,
  IndexDb,
  type LayerRecord,
  type VolumeRecord,
} from './index-db.ts';
import { checkIndexHeader, probeIndex } from './index-probe.ts';
import {
  JOURNAL_HEADER_BYTES,
  Journal,
  type JournalBlockRecord,
  journalGenerationFromFileName,
  readJournal,
} from './journal.ts';
import { Layer } from './layer.ts';
import { LayerFile, layerIdFromFileName } from './layer-file.ts';
import { StoreCore } from './store-core.ts';
import { syncDirectory } from './store-durability.ts';

export interface StoreOptions {
  /** Layer files kept open at once besides the head (default 512). */
  maxOpenLayerFiles?: number;
  /** Journal size that triggers a checkpoint into the index (default DEFAULT_CHECKPOINT_JOURNAL_BYTES, 32 MiB). */
  checkpointJournalBytes?: number;
  /**
   * Read the whole index in a child process before opening it (default true): LMDB can
   * crash on a damaged file (index-probe.ts). Only tests that reopen a known-good store
   * hundreds of times turn it off.
   */
  probeIndex?: boolean;
}

const LOCK_FILE_NAME = 'lock';

export function validateVolumeSize(sizeBytes: number, what = 'volume size'): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % BLOCK_SIZE !== 0) {
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `${what} must be a positive multiple of ${BLOCK_SIZE} bytes`,
      {
        sizeBytes,
      },
    );
  }
  if (sizeBytes > MAX_VOLUME_BYTES) {
    throw new HornbillError('INVALID_ARGUMENT', `${what} exceeds the maximum of ${MAX_VOLUME_BYTES} bytes`, {
      sizeBytes,
    });
  }
}

/**
 * Creates a replica folder. The index is written last: a folder without an index was never
 * completely created, and open refuses it (STORE_INDEX_MISSING) rather than guess.
 */
export function createStoreFiles(directory: string, sizeBytes: number): void {
  validateVolumeSize(sizeBytes);
  fs.mkdirSync(directory, { recursive: true });
  const existing = fs.readdirSync(directory);
  if (existing.length > 0) {
    throw new HornbillError('STORE_NOT_EMPTY', `replica folder ${directory} is not empty`, {
      directory,
      existing,
    });
  }
  try {
    writeNewStore(directory, sizeBytes);
  } catch (error) {
    // Everything in the folder was made by this call (it was empty): leave it empty again.
    for (const name of fs.readdirSync(directory))
      fs.rmSync(path.join(directory, name), { recursive: true, force: true });
    throw error;
  }
}

function writeNewStore(directory: string, sizeBytes: number): void {
  const layersDirectory = path.join(directory, 'layers');
  const journalDirectory = path.join(directory, 'journal');
  fs.mkdirSync(layersDirectory);
  fs.mkdirSync(journalDirectory);
  fs.writeFileSync(path.join(directory, LOCK_FILE_NAME), '');
  const head = LayerFile.create(layersDirectory, 1, sizeBytes);
  head.close();
  Journal.create(journalDirectory, 1).close();
  syncDirectory(layersDirectory);
  syncDirectory(journalDirectory);
  const now = new Date().toISOString();
  const volume: VolumeRecord = {
    sizeBytes,
    headLayerId: 1,
    nextLayerId: 2,
    revisionCounter: 0,
    journalGeneration: 1,
    garbageLayerIds: [],
    rebuilding: false,
    createdAt: now,
  };
  const headRecord: LayerRecord = {
    id: 1,
    name: null,
    parentId: null,
    createdAt: now,
    userCreated: false,
    removed: false,
    labels: {},
    sizeBytes,
    hash: null,
  };
  IndexDb.create(path.join(directory, INDEX_FILE_NAME), volume, headRecord).close();
  syncDirectory(directory);
}

/** Opens a replica folder: validates the index, accounts for every file, replays the journal. */
export function openStoreCore(directory: string, options: StoreOptions = {}): StoreCore {
  if (!fs.existsSync(path.join(directory, INDEX_FILE_NAME))) {
    throw new HornbillError(
      'STORE_INDEX_MISSING',
      `replica folder ${directory} has no index (${INDEX_FILE_NAME})`,
      {
        directory,
      },
    );
  }
  const lockFd = acquireLock(directory);
  let index: IndexDb | undefined;
  try {
    const indexPath = path.join(directory, INDEX_FILE_NAME);
    checkIndexHeader(indexPath);
    if (options.probeIndex ?? true) probeIndex(indexPath);
    index = IndexDb.open(indexPath);
    const contents = index.readAll();
    validateContents(contents, directory);
    const core = new StoreCore({
      directory,
      index,
      volume: contents.volume,
      // Assigned below, once the journal has been replayed into the tables.
      journal: undefined as unknown as Journal,
      lockFd,
      maxOpenLayerFiles: options.maxOpenLayerFiles ?? 512,
      checkpointJournalBytes: options.checkpointJournalBytes ?? DEFAULT_CHECKPOINT_JOURNAL_BYTES,
    });
    loadLayers(core, contents);
    accountForLayerFiles(core);
    const replayed = replayJournals(core);
    core.files.pin(core.head.file);
    core.rebuildChain();
    // Consolidate: everything replayed goes into the index, and writes start in a fresh journal.
    core.journal = replayed;
    core.checkpoint();
    removeOlderJournals(core);
    core.collectGarbage();
    return core;
  } catch (error) {
    index?.close();
    fs.closeSync(lockFd);
    throw error;
  }
}

function acquireLock(directory: string): number {
  const fd = fs.openSync(path.join(directory, LOCK_FILE_NAME), fs.constants.O_RDWR | fs.constants.O_CREAT);
  if (!fsExtensions.tryLock(fd)) {
    fs.closeSync(fd);
    throw new HornbillError('STORE_LOCKED', `replica folder ${directory} is already open`, { directory });
  }
  return fd;
}

function validateContents(contents: IndexContents, directory: string): void {
  const { volume, layers } = contents;
  const corrupt = (reason: string) =>
    new HornbillError('STORE_INDEX_CORRUPT', `replica ${directory}: ${reason}`, { directory });
  try {
    validateVolumeSize(volume.sizeBytes);
  } catch {
    throw corrupt(`volume size ${volume.sizeBytes} is not valid`);
  }
  const ids = new Set(layers.map((layer) => layer.id));
  const names = new Set<string>();
  for (const layer of layers) {
    if (layer.parentId !== null && !ids.has(layer.parentId))
      throw corrupt(`layer ${layer.id} names a missing parent`);
    if (layer.id >= volume.nextLayerId) throw corrupt(`layer ${layer.id} is beyond the next layer id`);
    if (layer.name !== null) {
      if (names.has(layer.name)) throw corrupt(`two layers are named ${layer.name}`);
      names.add(layer.name);
    } else if (layer.id !== volume.headLayerId) {
      throw corrupt(`layer ${layer.id} has no name but is not the head`);
    }
  }
  if (!ids.has(volume.headLayerId)) throw corrupt(`the head layer ${volume.headLayerId} has no record`);
}

function loadLayers(core: StoreCore, contents: IndexContents): void {
  for (const record of contents.layers) {
    core.addLayer(new Layer(record, new LayerFile(core.layersDirectory, record.id)));
  }
  for (const layer of core.layers.values()) {
    if (layer.record.parentId !== null) core.layers.get(layer.record.parentId)!.childIds.add(layer.id);
  }
  core.head = core.layers.get(core.volume.headLayerId)!;
  const chunkCount = Math.ceil(core.blockCount / CHUNK_BLOCKS);
  for (const { layerId, chunkIndex, record } of contents.chunks) {
    const layer = core.layers.get(layerId);
    const where = `chunk ${layerId}/${chunkIndex}`;
    if (layer === undefined) throw indexCorrupt(core, `${where} belongs to no layer`);
    if (!Number.isInteger(chunkIndex) || chunkIndex < 0 || chunkIndex >= chunkCount) {
      throw indexCorrupt(core, `${where} lies beyond the volume`);
    }
    const chunk = Chunk.decode(record);
    if (chunk === undefined) throw indexCorrupt(core, `${where} is not a valid chunk record`);
    layer.table.load(chunkIndex, chunk);
  }
}

function indexCorrupt(core: StoreCore, reason: string): HornbillError {
  return new HornbillError('STORE_INDEX_CORRUPT', `replica ${core.directory}: ${reason}`, {
    directory: core.directory,
  });
}

/**
 * Every file in layers/ must be a layer of the index, a garbage file (a deleted layer whose
 * unlink was interrupted), or a file created by an interrupted snapshot (id at or above
 * nextLayerId, never referenced). Anything else is reported, never deleted.
 */
function accountForLayerFiles(core: StoreCore): void {
  const present = new Set<number>();
  for (const name of fs.readdirSync(core.layersDirectory)) {
    const layerId = layerIdFromFileName(name);
    const filePath = path.join(core.layersDirectory, name);
    if (layerId !== undefined && core.layers.has(layerId)) {
      present.add(layerId);
    } else if (
      layerId !== undefined &&
      (layerId >= core.volume.nextLayerId || core.volume.garbageLayerIds.includes(layerId))
    ) {
      fs.rmSync(filePath, { force: true });
    } else {
      throw new HornbillError(
        'STORE_UNKNOWN_FILE',
        `replica ${core.directory}: unexpected file ${filePath}`,
        {
          path: filePath,
        },
      );
    }
  }
  for (const layer of core.layers.values()) {
    if (!present.has(layer.id)) {
      throw new HornbillError(
        'STORE_LAYER_MISSING',
        `replica ${core.directory}: layer file ${layer.file.path} (${layer.displayName}) is missing`,
        { path: layer.file.path, layerId: layer.id, layerName: layer.displayName },
      );
    }
  }
}

/**
 * Replays the journal named by the index, then the next generation when it holds records
 * (the writes after a background checkpoint rotated the journal, when the crash came before
 * that checkpoint's commit), and returns the last of them, attached, for the consolidating
 * checkpoint to rotate past. Older journals were already checkpointed; any other newer one
 * can only be the empty journal of an interrupted checkpoint.
 */
function replayJournals(core: StoreCore): Journal {
  const generation = core.volume.journalGeneration;
  const paths = new Map<number, string>();
  for (const name of fs.readdirSync(core.journalDirectory)) {
    const fileGeneration = journalGenerationFromFileName(name);
    const filePath = path.join(core.journalDirectory, name);
    if (fileGeneration === undefined) {
      throw new HornbillError(
        'STORE_UNKNOWN_FILE',
        `replica ${core.directory}: unexpected file ${filePath}`,
        {
          path: filePath,
        },
      );
    }
    if (fileGeneration < generation) fs.rmSync(filePath, { force: true });
    else paths.set(fileGeneration, filePath);
  }
  const current = paths.get(generation);
  if (current === undefined) {
    throw new HornbillError(
      'STORE_JOURNAL_CORRUPT',
      `replica ${core.directory}: journal generation ${generation} named by the index is missing`,
      { generation },
    );
  }
  const replays = [readJournal(current, generation)];
  let last = generation;
  for (const [fileGeneration, filePath] of [...paths].sort(([a], [b]) => a - b)) {
    if (fileGeneration === generation) continue;
    // A crash while the file was being created can leave it without a complete header.
    const leftover =
      fs.statSync(filePath).size < JOURNAL_HEADER_BYTES ? undefined : readJournal(filePath, fileGeneration);
    const holdsRecords =
      leftover !== undefined && (leftover.blocks.length > 0 || leftover.revisionCounter >= 0);
    if (holdsRecords && fileGeneration === generation + 1) {
      replays.push(leftover);
      last = fileGeneration;
    } else if (holdsRecords) {
      throw new HornbillError(
        'STORE_JOURNAL_CORRUPT',
        `journal ${filePath} is newer than the index and its successor but holds records`,
        {
          path: filePath,
        },
      );
    } else {
      fs.rmSync(filePath, { force: true });
    }
  }
  for (const replay of replays) {
    applyReplay(core, replay.blocks);
    core.revisionCounter = Math.max(core.revisionCounter, replay.revisionCounter);
  }
  // Kept as they are until the consolidating checkpoint has committed (removeOlderJournals).
  return Journal.attach(core.journalDirectory, last);
}

/** Deletes the journals the consolidating checkpoint left behind (all are in the index now). */
function removeOlderJournals(core: StoreCore): void {
  for (const name of fs.readdirSync(core.journalDirectory)) {
    const fileGeneration = journalGenerationFromFileName(name);
    if (fileGeneration !== undefined && fileGeneration < core.journal.generation)
      fs.rmSync(path.join(core.journalDirectory, name), { force: true });
  }
}

/**
 * Applies journal records to the in-memory tables. Records of one block are taken in order;
 * a DATA record holds only if the block's data on disk matches its checksum (otherwise the
 * write never reached the file and the earlier state stands); ZERO and ABSENT records
 * need no data and always hold.
 */
function applyReplay(core: StoreCore, records: JournalBlockRecord[]): void {
  const groups = new Map<number, JournalBlockRecord[]>();
  for (const record of records) {
    const layer = core.layers.get(record.layerId);
    if (layer === undefined || record.block >= core.blockCount) {
      throw new HornbillError(
        'STORE_JOURNAL_CORRUPT',
        `replica ${core.directory}: journal record ${record.sequence} names layer ${record.layerId} block ${record.block}, which does not exist`,
        { layerId: record.layerId, block: record.block },
      );
    }
    const key = record.layerId * 2 ** 32 + record.block;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [record]);
    else group.push(record);
  }
  const data = Buffer.alloc(BLOCK_SIZE);
  for (const group of groups.values()) {
    const layer = core.layers.get(group[0].layerId)!;
    const block = group[0].block;
    let state: BlockStateValue = layer.table.state(block);
    let checksum = state === BlockState.DATA ? layer.table.checksum(block) : 0;
    let onDisk: number | undefined;
    let onDiskIsZero = false;
    for (const record of group) {
      if (record.state !== BlockState.DATA) {
        state = record.state;
        checksum = 0;
        continue;
      }
      if (onDisk === undefined) {
        core.files.use(layer.file).readBlocks(block, 1, data, 0);
        onDisk = blockChecksum(data, 0);
        onDiskIsZero = onDisk === ZERO_BLOCK_CHECKSUM && isZeroBlock(data, 0);
      }
      // A DATA record is never written for a zero block, so zeros on disk cannot be its data.
      if (record.checksum === onDisk && !onDiskIsZero) {
        state = BlockState.DATA;
        checksum = record.checksum;
      }
    }
    layer.table.set(block, state, checksum);
  }
}
