/**
 * Launching ganesha until its export answers: keep the previous run's log, follow the new
 * log, spawn, then probe until ready — the NFS NULL call, plus an `nfs-ls` of the export
 * when the server serves NFSv4.0 (libnfs's only version) and libnfs-utils is installed.
 * Ganesha exiting first, or not answering within the start timeout, is
 * SHARE_MANAGER_NFS_START_FAILED quoting the end of its log; the process is stopped first.
 */
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { type GaneshaPaths, type GaneshaSettings, ganeshaPaths } from './config.ts';
import { LogFollower, tailOfFile } from './ganesha-log.ts';
import { commandExists, type GaneshaHandle, spawnGanesha } from './ganesha-process.ts';
import { probeExportListing, probeNfsNull } from './nfs-probe.ts';
import type { RunningServer } from './supervisor.ts';

const PROBE_INTERVAL_MS = 100;

export interface LaunchOptions {
  settings: GaneshaSettings;
  /** How long ganesha gets to answer. */
  startTimeoutMs: number;
  /** Between SIGTERM and SIGKILL when a failed launch is cleaned up. */
  stopTimeoutMs: number;
  log: Logger;
  signal: AbortSignal;
}

async function keepPreviousLog(paths: GaneshaPaths): Promise<void> {
  await fs.rename(paths.log, paths.previousLog).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/** Undefined once the export answers; the reason it does not yet, otherwise. */
async function probeOnce(settings: GaneshaSettings, listExport: boolean): Promise<string | undefined> {
  const nullProblem = await probeNfsNull(settings.address, settings.port);
  if (nullProblem !== undefined || !listExport) return nullProblem;
  return probeExportListing(settings.address, settings.port, settings.volume);
}

export async function launchGanesha(options: LaunchOptions): Promise<RunningServer> {
  const { settings, log, signal } = options;
  const paths = ganeshaPaths(settings.stateDirectory);
  await keepPreviousLog(paths);
  const follower = new LogFollower(paths.log, log);
  follower.start();
  let handle: GaneshaHandle;
  try {
    handle = spawnGanesha(paths, log);
  } catch (error) {
    await follower.stop();
    throw error;
  }
  const exited = handle.exited.then(async (exit) => {
    await follower.stop();
    return exit;
  });
  let running = true;
  void exited.then(() => {
    running = false;
  });
  const listExport = settings.nfs.minimumMinorVersion === 0 && commandExists('nfs-ls');
  const deadlineMs = Date.now() + options.startTimeoutMs;
  let problem: string | undefined = 'not probed yet';
  while (running && !signal.aborted && Date.now() < deadlineMs) {
    problem = await probeOnce(settings, listExport);
    if (problem === undefined) break;
    await sleep(PROBE_INTERVAL_MS);
  }
  if (running && problem === undefined && !signal.aborted) {
    return { pid: handle.pid, exited, stop: (timeoutMs) => handle.stop(timeoutMs).then(() => exited) };
  }
  const exitedEarly = !running;
  await handle.stop(options.stopTimeoutMs);
  const exit = await exited;
  const why = signal.aborted
    ? 'the share manager is stopping'
    : exitedEarly
      ? `ganesha exited (${exit.code ?? exit.signal}) before its export answered`
      : `ganesha did not answer within ${options.startTimeoutMs} ms (${problem})`;
  const tail = await tailOfFile(paths.log);
  throw new HornbillError(
    'SHARE_MANAGER_NFS_START_FAILED',
    `${why}${tail === '' ? '' : `; its log ends:\n${tail}`}`,
    {
      exitCode: exit.code,
      signal: exit.signal,
      problem,
    },
  );
}
