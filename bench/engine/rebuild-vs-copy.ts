/**
 * The rebuild part of bench/engine: a fully written volume is rebuilt onto a new replica and
 * the same layer files are copied with `cp -r --sparse=always`, each under the same memory
 * condition, because on this VM the condition moves a copy's time by about 4×:
 *
 * - **returned**: the last files deleted were deleted SETTLE_SECONDS (or `settleSeconds`) ago. A guest with free
 *   page reporting (virtio-balloon, on this VM) hands freed memory back to the host about
 *   2 s after it is freed, and the next write into the page cache makes the host supply
 *   those pages again. This is what a node sees when it rebuilds a replica.
 * - **reused**: started right after deleting a copy of the same files that was in the page
 *   cache, so the page cache takes pages the guest still holds. This is the copy at its
 *   cheapest. (The rebuild writes its layers past the page cache, so deleting a rebuilt
 *   replica frees no cached pages: each reused measurement follows the deletion of a copy.)
 *
 * Measured here (2 GiB file, `cp --sparse=always`): 0.7 s right after deleting a 2 GiB
 * copy, 1.7 s one second later, 2.3–3.3 s two seconds later or more. Before the rebuild
 * and `cp` each got their own condition, the copy ran right after the rebuild's target was
 * deleted (reused) and the rebuild after a replica process had started (partly returned),
 * which made the ratio swing from 29 % to 84 % between rounds.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Engine } from '../../src/dataplane/engine/engine.ts';

/** Default seconds to wait after deleting files so the guest has handed their pages back (reporting delay: 2 s). */
export const SETTLE_SECONDS = 5;

export type MemoryCondition = 'returned' | 'reused';

export interface RebuildRound {
  memory: MemoryCondition;
  rebuildSeconds: number;
  copySeconds: number;
  durableCopySeconds: number;
  bytes: number;
}

interface TargetReplica {
  port: number;
  directory: string;
  stop(): Promise<void>;
}

export interface RebuildSetup {
  engine: Engine;
  /** Folder of a source replica; its `layers` are what `cp` copies. */
  sourceDirectory: string;
  /** Folders of every source replica (their layers are read into the page cache first). */
  sourceDirectories: string[];
  /** Where the copy goes (removed after each measurement). */
  copyTarget: string;
  startTarget(name: string): Promise<TargetReplica>;
  /** Seconds nothing is deleted before a pair in returned memory (SETTLE_SECONDS; 0 in smoke tests). */
  settleSeconds: number;
}

async function timeRebuild(setup: RebuildSetup, target: TargetReplica): Promise<[number, number]> {
  const address = { host: '127.0.0.1', port: target.port };
  const start = performance.now();
  const progress = await setup.engine.addReplica(address);
  const seconds = (performance.now() - start) / 1000;
  setup.engine.removeReplica(address);
  await target.stop();
  return [seconds, progress.transferredBytes];
}

/** cp, then the `sync` that makes the copy as durable as a finished rebuild; the copy stays. */
function timeCopy(setup: RebuildSetup): [number, number] {
  const start = performance.now();
  execFileSync('cp', ['-r', '--sparse=always', path.join(setup.sourceDirectory, 'layers'), setup.copyTarget]);
  const copySeconds = (performance.now() - start) / 1000;
  execFileSync('sync');
  return [copySeconds, (performance.now() - start) / 1000];
}

/** Reads every file under `directory` once (into the page cache). */
function readAll(directory: string): void {
  const buffer = Buffer.allocUnsafe(1 << 20);
  for (const entry of fs.readdirSync(directory, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const fd = fs.openSync(path.join(entry.parentPath, entry.name), 'r');
    try {
      while (fs.readSync(fd, buffer, 0, buffer.length, null) > 0);
    } finally {
      fs.closeSync(fd);
    }
  }
}

function remove(directory: string): void {
  fs.rmSync(directory, { recursive: true, force: true });
}

/**
 * `rounds` rounds, each a pair in returned memory then a pair in reused memory. Within a
 * pair the rebuild and the copy meet the same condition; the sources' layer files are read
 * into the page cache first and stay there (both read them from memory). The copy's folder
 * is left empty.
 */
export async function rebuildAgainstCopy(setup: RebuildSetup, rounds: number): Promise<RebuildRound[]> {
  // Whatever the page cache dropped of the sources' files since they were written is read
  // back now, untimed: otherwise the first rebuild reads it from disk and the cp after it
  // from memory (the first rebuild of a run was 6.3–6.6 s against 3.3–4.4 s for the others).
  for (const directory of setup.sourceDirectories) readAll(path.join(directory, 'layers'));
  const results: RebuildRound[] = [];
  for (let round = 0; round < rounds; round++) {
    // Returned: the target's process is up, nothing was deleted for settleSeconds.
    let target = await setup.startTarget(`rb-target-${round}-returned`);
    execFileSync('sync');
    await sleep(setup.settleSeconds * 1000);
    const [rebuildReturned, bytesReturned] = await timeRebuild(setup, target);
    remove(target.directory);
    execFileSync('sync');
    await sleep(setup.settleSeconds * 1000);
    const [copyReturned, durableReturned] = timeCopy(setup);
    results.push({
      memory: 'returned',
      rebuildSeconds: rebuildReturned,
      copySeconds: copyReturned,
      durableCopySeconds: durableReturned,
      bytes: bytesReturned,
    });

    // Reused: each starts right after a 4 GiB copy that sat in the page cache is deleted —
    // the copy first (after the copy above), then the rebuild (after the copy it made).
    remove(setup.copyTarget);
    const [copyReused, durableReused] = timeCopy(setup);
    target = await setup.startTarget(`rb-target-${round}-reused`);
    execFileSync('sync');
    remove(setup.copyTarget);
    const [rebuildReused, bytesReused] = await timeRebuild(setup, target);
    remove(target.directory);
    results.push({
      memory: 'reused',
      rebuildSeconds: rebuildReused,
      copySeconds: copyReused,
      durableCopySeconds: durableReused,
      bytes: bytesReused,
    });
  }
  return results;
}

/** Whether the guest reports freed pages to its host (virtio-balloon feature bit 5), or undefined off Linux/virtio. */
export function freePageReporting(): boolean | undefined {
  const devices = '/sys/bus/virtio/devices';
  try {
    for (const device of fs.readdirSync(devices)) {
      const id = fs.readFileSync(path.join(devices, device, 'device'), 'utf8').trim();
      if (id !== '0x0005') continue;
      const features = fs.readFileSync(path.join(devices, device, 'features'), 'utf8');
      return features[5] === '1';
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** Markdown rows for the rounds (header included). */
export function rebuildTable(rounds: RebuildRound[]): string[] {
  const percent = (part: number, whole: number) => `${Math.round((part / whole) * 100)} %`;
  return [
    '| round | memory | rebuild | `cp` | `cp` + `sync` | rebuild / cp | rebuild / cp + sync |',
    '|---|---|---|---|---|---|---|',
    ...rounds.map(
      (round, index) =>
        `| ${Math.floor(index / 2) + 1} | ${round.memory} | ${round.rebuildSeconds.toFixed(2)} s (${Math.round(round.bytes / round.rebuildSeconds / 1024 ** 2)} MiB/s) | ${round.copySeconds.toFixed(2)} s | ${round.durableCopySeconds.toFixed(2)} s | **${percent(round.copySeconds, round.rebuildSeconds)}** | **${percent(round.durableCopySeconds, round.rebuildSeconds)}** |`,
    ),
  ];
}
