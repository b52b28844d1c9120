/**
 * Durability of the replica store: flushing layer data and the journal, checkpointing the
 * journal into the index (in the background when the journal fills, at once for the
 * operations that change the chain), collecting deleted layers' files, and syncDirectory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { failpoint } from './failpoints.ts';
import type { IndexBatch, VolumeRecord } from './index-db.ts';
import { Journal } from './journal.ts';
import { type LayerFile, layerFileName } from './layer-file.ts';
import { StoreState } from './store-state.ts';

/**
 * A checkpoint whose journal has been rotated but whose index commit waits for the layer
 * data written before the rotation to be synced (by a thread of the libuv pool).
 */
interface BackgroundCheckpoint {
  /** The journal that holds the records of the writes before the rotation. */
  previous: Journal;
  /** The generation writes go to since the rotation; the commit names it. */
  generation: number;
  /** Layer files written before the rotation. */
  files: LayerFile[];
  putChunks: NonNullable<IndexBatch['putChunks']>;
  deleteChunks: NonNullable<IndexBatch['deleteChunks']>;
  revisionCounter: number;
  /** Set when the background sync of `files` finished without error. */
  synced: boolean;
}

/** The durability part of StoreCore, on top of its state. Internal to src/storage. */
export class StoreDurability extends StoreState {
  // ---- durability ----------------------------------------------------------------------

  private background: BackgroundCheckpoint | undefined;

  /**
   * Writes the queued journal records (Journal.commit), then passes the crash-test
   * failpoints: `journal-committed` always, and `journal-committed-during-checkpoint` while a
   * background checkpoint is pending (the index names the journal before, these records go
   * to the one after it).
   */
  commitJournal(): void {
    this.journal.commit();
    failpoint('journal-committed');
    if (this.background !== undefined) failpoint('journal-committed-during-checkpoint');
  }

  /** Makes every write so far durable: layer data and the journal, fdatasync'ed. */
  flush(): void {
    this.settleCheckpoint();
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    this.journal.datasync();
  }

  /**
   * Once the journal holds checkpointJournalBytes, starts a background checkpoint: the
   * journal is rotated at once (writes go on into the next generation), the changed chunk
   * records are taken as they are now, and the layer data written so far is synced by a
   * pool thread; when that is done, one index transaction names the new journal and the
   * old one is deleted. Recovery replays the journal the index names and the next
   * generation after it, so a crash before the commit loses nothing. The engine's thread
   * therefore never waits for the writeback of a journal's worth of data (a synchronous
   * fdatasync of 1 GiB of dirty pages here); it waits only when the next checkpoint is
   * due before the previous one has finished (settleCheckpoint).
   */
  maybeCheckpoint(): void {
    if (this.journal.sizeBytes < this.checkpointJournalBytes) return;
    this.settleCheckpoint();
    // The next journal first: if it cannot be made, nothing has changed and the write that
    // called this gets the error.
    const next = this.createNextJournal();
    failpoint('checkpoint-journal-created');
    const files = [...this.dirtyFiles].filter((file) => file.isOpen());
    this.dirtyFiles.clear();
    const { putChunks, deleteChunks } = this.takeDirtyChunks();
    const background: BackgroundCheckpoint = {
      previous: this.journal,
      generation: next.generation,
      files,
      putChunks,
      deleteChunks,
      revisionCounter: this.revisionCounter,
      synced: false,
    };
    this.journal = next;
    this.background = background;
    syncFilesInBackground(
      files.map((file) => file.path),
      (error) => {
        if (this.background !== background || error !== undefined) return;
        background.synced = true;
        try {
          this.commitBackground(background);
        } catch {
          // Left pending: the next settleCheckpoint retries the commit and throws to its caller.
        }
      },
    );
  }

  /**
   * Finishes a background checkpoint now: syncs its layer files here if the pool has not
   * (fdatasync waits for writeback already under way) and commits. Called by flush and by
   * every synchronous checkpoint, so that operations on the chain see one journal.
   */
  settleCheckpoint(): void {
    const background = this.background;
    if (background === undefined) return;
    if (!background.synced) for (const file of background.files) if (file.isOpen()) file.datasync();
    background.synced = true;
    this.commitBackground(background);
  }

  /**
   * Moves everything the journal holds into the index: syncs the layer data, then writes
   * the changed chunk records and `extra` in one durable LMDB transaction that names a
   * fresh journal, then deletes the old journal. `extra.volume`, when given, is the new
   * volume record (journal generation and revision counter are filled in here); the
   * in-memory volume changes only once the transaction has committed.
   */
  checkpoint(extra: IndexBatch = {}): void {
    this.settleCheckpoint();
    for (const file of this.dirtyFiles) if (file.isOpen()) file.datasync();
    this.dirtyFiles.clear();
    const next = this.createNextJournal();
    failpoint('checkpoint-journal-created');
    const taken = this.takeDirtyChunks();
    const putChunks = [...(extra.putChunks ?? []), ...taken.putChunks];
    const deleteChunks = [...(extra.deleteChunks ?? []), ...taken.deleteChunks];
    const volume: VolumeRecord = {
      ...(extra.volume ?? this.volume),
      journalGeneration: next.generation,
      revisionCounter: this.revisionCounter,
    };
    try {
      this.index.commit({ ...extra, putChunks, deleteChunks, volume });
    } catch (error) {
      retireJournal(next);
      // The chunk records taken above were not stored: they stay due for the next checkpoint.
      this.markChunksDirty(taken.putChunks, taken.deleteChunks);
      throw error;
    }
    failpoint('checkpoint-committed');
    this.volume = volume;
    const previous = this.journal;
    this.journal = next;
    retireJournal(previous);
  }

  private commitBackground(background: BackgroundCheckpoint): void {
    const volume: VolumeRecord = {
      ...this.volume,
      journalGeneration: background.generation,
      revisionCounter: background.revisionCounter,
    };
    this.index.commit({ putChunks: background.putChunks, deleteChunks: background.deleteChunks, volume });
    failpoint('checkpoint-committed');
    this.volume = volume;
    this.background = undefined;
    retireJournal(background.previous);
  }

  /** Creates the next generation's journal, durable in its directory; nothing is left behind on failure. */
  private createNextJournal(): Journal {
    const next = Journal.create(this.journalDirectory, this.journal.generation + 1);
    try {
      syncDirectory(this.journalDirectory);
    } catch (error) {
      retireJournal(next);
      throw error;
    }
    return next;
  }

  /** The serialized records of every chunk changed since the last checkpoint; the layers' lists are cleared. */
  private takeDirtyChunks(): Required<Pick<IndexBatch, 'putChunks' | 'deleteChunks'>> {
    const putChunks: NonNullable<IndexBatch['putChunks']> = [];
    const deleteChunks: NonNullable<IndexBatch['deleteChunks']> = [];
    for (const layer of this.layers.values()) {
      for (const chunkIndex of layer.table.dirtyChunks) {
        const chunk = layer.table.chunks.get(chunkIndex);
        if (chunk === undefined) deleteChunks.push({ layerId: layer.id, chunkIndex });
        else putChunks.push({ layerId: layer.id, chunkIndex, record: chunk.serialize() });
      }
      layer.table.dirtyChunks.clear();
    }
    return { putChunks, deleteChunks };
  }

  private markChunksDirty(
    putChunks: NonNullable<IndexBatch['putChunks']>,
    deleteChunks: NonNullable<IndexBatch['deleteChunks']>,
  ): void {
    for (const { layerId, chunkIndex } of [...putChunks, ...deleteChunks]) {
      this.layers.get(layerId)?.table.dirtyChunks.add(chunkIndex);
    }
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

/** Closes a journal and deletes its file (covered by the index, or never named by it). */
function retireJournal(journal: Journal): void {
  journal.close();
  fs.rmSync(journal.path, { force: true });
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

/**
 * fdatasync of each file through a descriptor of its own, on the libuv pool: independent
 * of the layer files' own descriptors, which the store may close meanwhile. Reports the
 * first error.
 */
function syncFilesInBackground(paths: string[], done: (error: Error | undefined) => void): void {
  const syncAll = async () => {
    for (const filePath of paths) {
      const handle = await fs.promises.open(filePath, 'r');
      try {
        await handle.datasync();
      } finally {
        await handle.close();
      }
    }
  };
  syncAll().then(
    () => done(undefined),
    (error: Error) => done(error),
  );
}
