/**
 * Durability of the replica store: flushing layer data and the journal, checkpointing the
 * journal into the index, collecting deleted layers' files, and syncDirectory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { failpoint } from './failpoints.ts';
import type { IndexBatch, VolumeRecord } from './index-db.ts';
import { Journal } from './journal.ts';
import { layerFileName } from './layer-file.ts';
import { StoreState } from './store-state.ts';

/** The durability part of StoreCore, on top of its state. Internal to src/storage. */
export class StoreDurability extends StoreState {
  // ---- durability ----------------------------------------------------------------------

  /** Makes every write so far durable: layer data and the journal, fdatasync'ed. */
  flush(): void {
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    this.journal.datasync();
  }

  maybeCheckpoint(): void {
    if (this.journal.sizeBytes >= this.checkpointJournalBytes) this.checkpoint();
  }

  /**
   * Moves everything the journal holds into the index: syncs the layer data, then writes
   * the changed chunk records and `extra` in one durable LMDB transaction that names a
   * fresh journal, then deletes the old journal. `extra.volume`, when given, is the new
   * volume record (journal generation and revision counter are filled in here); the
   * in-memory volume changes only once the transaction has committed.
   */
  checkpoint(extra: IndexBatch = {}): void {
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    const putChunks = [...(extra.putChunks ?? [])];
    const deleteChunks = [...(extra.deleteChunks ?? [])];
    for (const layer of this.layers.values()) {
      for (const chunkIndex of layer.table.dirtyChunks) {
        const chunk = layer.table.chunks.get(chunkIndex);
        if (chunk === undefined) deleteChunks.push({ layerId: layer.id, chunkIndex });
        else putChunks.push({ layerId: layer.id, chunkIndex, record: chunk.serialize() });
      }
    }
    const next = Journal.create(this.journalDirectory, this.journal.generation + 1);
    syncDirectory(this.journalDirectory);
    failpoint('checkpoint-journal-created');
    const volume: VolumeRecord = {
      ...(extra.volume ?? this.volume),
      journalGeneration: next.generation,
      revisionCounter: this.revisionCounter,
    };
    try {
      this.index.commit({ ...extra, putChunks, deleteChunks, volume });
    } catch (error) {
      next.close();
      fs.rmSync(next.path, { force: true });
      throw error;
    }
    failpoint('checkpoint-committed');
    this.volume = volume;
    for (const layer of this.layers.values()) layer.table.dirtyChunks.clear();
    const previous = this.journal;
    this.journal = next;
    previous.close();
    fs.rmSync(previous.path, { force: true });
  }

  /** Unlinks files of deleted layers; their ids leave the garbage list at the next commit. */
  collectGarbage(): void {
    const remaining: number[] = [];
    for (const layerId of this.volume.garbageLayerIds) {
      try {
        fs.rmSync(path.join(this.layersDirectory, layerFileName(layerId)), { force: true });
      } catch {
        remaining.push(layerId);
      }
    }
    this.volume = { ...this.volume, garbageLayerIds: remaining };
  }
}

/** fsync on a directory makes the creation and removal of its entries durable. */
export function syncDirectory(directory: string): void {
  const fd = fs.openSync(directory, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
