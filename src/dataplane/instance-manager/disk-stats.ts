import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { HornbillError } from '../../errors.ts';

export const DISK_IDENTITY_FILE = 'hornbill-disk.json';
/** Entries examined per disk at most (replica folders hold a few dozen files each). */
const USAGE_ENTRIES_MAX = 200_000;

export interface ReplicaUsage {
  dataDirectoryName: string;
  instanceName: string;
  usedBytes: number;
}

export interface DiskStat {
  path: string;
  diskUUID: string;
  filesystemType: string;
  totalBytes: number;
  freeBytes: number;
  availableBytes: number;
  replicaUsedBytes: number;
  replicas: ReplicaUsage[];
}

/** statfs f_type values of the filesystems a node is likely to have. */
const FILESYSTEM_TYPES: Record<number, string> = {
  61267: 'ext4',
  1481003842: 'xfs',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
  2035054128: 'overlayfs',
  801189825: 'zfs',
  26985: 'nfs',
  1702057286: 'fuse',
};

/**
 * Makes a disk ready for replicas: the folder and its `replicas/` folder exist, and the
 * disk has an identity — a UUID written once into `hornbill-disk.json`, so that the control
 * plane tells a disk that was replaced (or mounted elsewhere) from the one it scheduled on.
 */
export function prepareDisk(diskPath: string): string {
  fs.mkdirSync(path.join(diskPath, 'replicas'), { recursive: true });
  const file = path.join(diskPath, DISK_IDENTITY_FILE);
  if (fs.existsSync(file)) {
    try {
      const identity = JSON.parse(fs.readFileSync(file, 'utf8')) as { diskUUID?: unknown };
      if (typeof identity.diskUUID === 'string' && identity.diskUUID !== '') return identity.diskUUID;
    } catch {
      // Not JSON: reported below.
    }
    throw new HornbillError('INVALID_ARGUMENT', `${file} is damaged; it must hold {"diskUUID": "…"}`, {
      file,
    });
  }
  const diskUUID = randomUUID();
  const temporary = `${file}.tmp`;
  const fd = fs.openSync(temporary, 'w');
  try {
    fs.writeSync(fd, `${JSON.stringify({ diskUUID })}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, file);
  return diskUUID;
}

/**
 * statfs of the disk and the bytes allocated by each folder under `<disk>/replicas/`
 * (sparse files count the blocks they hold, as `du` does).
 */
export async function diskStat(
  diskPath: string,
  diskUUID: string,
  instanceByDirectory: ReadonlyMap<string, string>,
): Promise<DiskStat> {
  const stats = await fs.promises.statfs(diskPath);
  const replicasFolder = path.join(diskPath, 'replicas');
  const replicas: ReplicaUsage[] = [];
  const budget = { entries: USAGE_ENTRIES_MAX };
  const entries = await fs.promises.readdir(replicasFolder, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    replicas.push({
      dataDirectoryName: entry.name,
      instanceName: instanceByDirectory.get(entry.name) ?? '',
      usedBytes: await allocatedBytes(path.join(replicasFolder, entry.name), budget),
    });
  }
  replicas.sort((a, b) => a.dataDirectoryName.localeCompare(b.dataDirectoryName));
  return {
    path: diskPath,
    diskUUID,
    filesystemType: FILESYSTEM_TYPES[stats.type] ?? `0x${stats.type.toString(16)}`,
    totalBytes: stats.blocks * stats.bsize,
    freeBytes: stats.bfree * stats.bsize,
    availableBytes: stats.bavail * stats.bsize,
    replicaUsedBytes: replicas.reduce((sum, replica) => sum + replica.usedBytes, 0),
    replicas,
  };
}

/** Allocated bytes of a folder tree; files vanishing meanwhile (a purge) are skipped. */
async function allocatedBytes(folder: string, budget: { entries: number }): Promise<number> {
  let total = 0;
  const entries = await fs.promises.readdir(folder, { withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
    if (--budget.entries < 0) break;
    const child = path.join(folder, entry.name);
    if (entry.isDirectory()) {
      total += await allocatedBytes(child, budget);
      continue;
    }
    const stats = await fs.promises.lstat(child).catch(() => undefined);
    if (stats !== undefined) total += stats.blocks * 512;
  }
  return total;
}
