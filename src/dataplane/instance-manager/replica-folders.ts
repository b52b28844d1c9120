/**
 * Removal of replica folders for the instance manager. Removal never blocks the event
 * loop (unlinking a large layer file with many extents can take minutes), and a folder
 * being removed is reserved: no replica may be created in it until it is gone, and a
 * second removal of it is a no-op.
 */
import fs from 'node:fs';
import { HornbillError } from '../../errors.ts';

export class ReplicaFolders {
  private readonly removing = new Set<string>();
  private readonly onRemoved: (directory: string) => void;

  constructor(onRemoved: (directory: string) => void) {
    this.onRemoved = onRemoved;
  }

  /** Throws INSTANCE_CONFLICT while `directory` is being removed. */
  checkNotRemoving(directory: string, name: string): void {
    if (this.removing.has(directory))
      throw new HornbillError(
        'INSTANCE_CONFLICT',
        `${directory} is being removed; try again when it is gone`,
        {
          name,
          directory,
        },
      );
  }

  /** Removes the folder of a replica this process ran (already stopped). */
  async remove(directory: string): Promise<void> {
    this.removing.add(directory);
    try {
      await fs.promises.rm(directory, { recursive: true, force: true });
    } finally {
      this.removing.delete(directory);
    }
    this.onRemoved(directory);
  }

  /**
   * Removes a left-over replica folder that no instance of this process uses (`usedBy`
   * names the instance that does, if any). Refuses a folder that holds something other
   * than a replica. Returns whether a folder was removed.
   */
  async removeLeftOver(directory: string, usedBy: string | undefined): Promise<boolean> {
    if (usedBy !== undefined)
      throw new HornbillError('INSTANCE_CONFLICT', `replica ${usedBy} uses ${directory}`, { usedBy });
    if (this.removing.has(directory) || !fs.existsSync(directory)) return false;
    const entries = await fs.promises.readdir(directory);
    if (entries.length > 0 && !entries.includes('index.mdb')) {
      throw new HornbillError('INSTANCE_CONFLICT', `${directory} is not a replica folder; it is left alone`, {
        directory,
        entries: entries.slice(0, 10),
      });
    }
    await this.remove(directory);
    return true;
  }
}
