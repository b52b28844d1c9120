import fs from 'node:fs';
import { type Database, open, type RootDatabase } from 'lmdb';
import { HornbillError } from '../errors.ts';
import { sealRecord, unsealRecord } from './checksum.ts';
import { CHUNK_BLOCKS, FORMAT_MAGIC, FORMAT_VERSION } from './constants.ts';

/** Volume-wide facts; one record. */
export interface VolumeRecord {
  sizeBytes: number;
  headLayerId: number;
  /** Layer ids are never reused; a file with an id at or above this was left by an interrupted create. */
  nextLayerId: number;
  revisionCounter: number;
  /** The journal generation that holds the writes after this checkpoint. */
  journalGeneration: number;
  /** Layer files whose records are deleted but whose file may still exist (unlinked at open). */
  garbageLayerIds: number[];
  /** Set while the replica is the target of a rebuild (see ReplicaStore.setRebuilding). */
  rebuilding: boolean;
  createdAt: string;
}

export interface LayerRecord {
  id: number;
  /** null for the head. */
  name: string | null;
  parentId: number | null;
  createdAt: string;
  userCreated: boolean;
  removed: boolean;
  labels: Record<string, string>;
  /** Volume size when the layer was created (the head grows with the volume). */
  sizeBytes: number;
  hash: { algorithm: 'sha256'; value: string; computedAt: string } | null;
}

interface FormatRecord {
  magic: string;
  version: number;
  chunkBlocks: number;
}

export interface IndexBatch {
  volume?: VolumeRecord;
  putLayers?: LayerRecord[];
  deleteLayers?: number[];
  putChunks?: { layerId: number; chunkIndex: number; record: Uint8Array }[];
  deleteChunks?: { layerId: number; chunkIndex: number }[];
}

export interface IndexContents {
  volume: VolumeRecord;
  layers: LayerRecord[];
  chunks: { layerId: number; chunkIndex: number; record: Uint8Array }[];
}

export const INDEX_FILE_NAME = 'index.mdb';

/**
 * The replica's index: an LMDB environment (lmdb-js) with three databases — `meta` (format
 * and volume records), `layers` (one record per layer), `chunks` (key [layer id, chunk
 * index]: block states and checksums of one 4 MiB range). Every value carries a CRC32C
 * trailer, so a damaged record is reported, never trusted. Commits are synchronous and
 * durable (overlappingSync off: the commit fsyncs before it returns).
 */
export class IndexDb {
  private readonly root: RootDatabase;
  private readonly meta: Database<Buffer, string>;
  private readonly layers: Database<Buffer, number>;
  private readonly chunks: Database<Buffer, [number, number]>;

  private constructor(filePath: string, readOnly = false) {
    try {
      this.root = open({
        path: filePath,
        maxDbs: 4,
        overlappingSync: false,
        encoding: 'binary',
        cache: false,
        readOnly,
      });
      this.meta = this.root.openDB({ name: 'meta', encoding: 'binary' });
      this.layers = this.root.openDB({ name: 'layers', encoding: 'binary' });
      this.chunks = this.root.openDB({ name: 'chunks', encoding: 'binary' });
    } catch (error) {
      throw new HornbillError(
        'STORE_INDEX_CORRUPT',
        `index ${filePath} cannot be opened: ${(error as Error).message}`,
        {
          path: filePath,
        },
      );
    }
  }

  static create(filePath: string, volume: VolumeRecord, head: LayerRecord): IndexDb {
    const index = new IndexDb(filePath);
    const format: FormatRecord = { magic: FORMAT_MAGIC, version: FORMAT_VERSION, chunkBlocks: CHUNK_BLOCKS };
    index.root.transactionSync(() => {
      index.meta.put('format', encodeJson(format));
      index.meta.put('volume', encodeJson(volume));
      index.layers.put(head.id, encodeJson(head));
    });
    return index;
  }

  /**
   * Opens an existing index. Callers outside the probe check it first (checkIndexHeader,
   * probeIndex in index-probe.ts): LMDB can crash on a damaged file.
   */
  static open(filePath: string, options: { readOnly?: boolean } = {}): IndexDb {
    if (!fs.existsSync(filePath)) {
      throw new HornbillError('STORE_INDEX_MISSING', `index ${filePath} does not exist`, { path: filePath });
    }
    return new IndexDb(filePath, options.readOnly ?? false);
  }

  /** Reads and validates everything (the store keeps the index in memory). */
  readAll(): IndexContents {
    try {
      const format = decodeJson<FormatRecord>(this.meta.getBinary('format'), 'meta/format');
      if (
        format.magic !== FORMAT_MAGIC ||
        format.version !== FORMAT_VERSION ||
        format.chunkBlocks !== CHUNK_BLOCKS
      ) {
        throw new HornbillError(
          'STORE_FORMAT_UNSUPPORTED',
          `unsupported replica format ${JSON.stringify(format)}`,
          {
            format,
          },
        );
      }
      const volume = decodeJson<VolumeRecord>(this.meta.getBinary('volume'), 'meta/volume');
      const layers: LayerRecord[] = [];
      for (const { key, value } of this.layers.getRange({})) {
        const layer = decodeJson<LayerRecord>(value, `layers/${key}`);
        if (layer.id !== key) throw corrupt(`layers/${key}`, 'record names another layer id');
        layers.push(layer);
      }
      const chunks: IndexContents['chunks'] = [];
      for (const { key, value } of this.chunks.getRange({})) {
        const record = unsealRecord(value);
        if (record === undefined) throw corrupt(`chunks/${key.join('/')}`, 'checksum mismatch');
        chunks.push({ layerId: key[0], chunkIndex: key[1], record: Uint8Array.from(record) });
      }
      return { volume, layers, chunks };
    } catch (error) {
      if (error instanceof HornbillError) throw error;
      throw corrupt('index', (error as Error).message);
    }
  }

  /** Applies the batch in one durable transaction. */
  commit(batch: IndexBatch): void {
    this.root.transactionSync(() => {
      if (batch.volume !== undefined) this.meta.put('volume', encodeJson(batch.volume));
      for (const layer of batch.putLayers ?? []) this.layers.put(layer.id, encodeJson(layer));
      for (const chunk of batch.putChunks ?? []) {
        this.chunks.put([chunk.layerId, chunk.chunkIndex], sealRecord(chunk.record));
      }
      for (const chunk of batch.deleteChunks ?? []) this.chunks.remove([chunk.layerId, chunk.chunkIndex]);
      // Deleting a layer removes its chunks last, so a batch can never leave chunks of a deleted layer.
      for (const layerId of batch.deleteLayers ?? []) {
        this.layers.remove(layerId);
        for (const key of this.chunks.getKeys({ start: [layerId], end: [layerId + 1] }))
          this.chunks.remove(key);
      }
    });
  }

  close(): void {
    this.root.close();
  }
}

function encodeJson(value: unknown): Buffer {
  return sealRecord(Buffer.from(JSON.stringify(value), 'utf8'));
}

function decodeJson<T>(sealed: Uint8Array | undefined, key: string): T {
  if (sealed === undefined) throw corrupt(key, 'record missing');
  const payload = unsealRecord(sealed);
  if (payload === undefined) throw corrupt(key, 'checksum mismatch');
  try {
    return JSON.parse(Buffer.from(payload).toString('utf8')) as T;
  } catch {
    throw corrupt(key, 'record is not valid JSON');
  }
}

function corrupt(key: string, reason: string): HornbillError {
  return new HornbillError('STORE_INDEX_CORRUPT', `index record ${key}: ${reason}`, { key });
}
