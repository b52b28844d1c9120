/**
 * One run of nfs-ganesha as a child of the share manager, and the guarantees that it never
 * outlives it.
 *
 * Ganesha runs in the foreground (`-F`), its configuration, log and pid file in the state
 * folder. Three layers make sure no ganesha is left behind:
 *
 * 1. **Parent-death signal.** Ganesha is started through util-linux `setpriv --pdeathsig
 *    SIGKILL`, which sets PR_SET_PDEATHSIG and then execs ganesha: when the share manager
 *    dies in any way — SIGKILL included — the kernel kills ganesha at once. (Node cannot call
 *    prctl itself; a pipe that closes is not enough, since ganesha does not read its stdin.)
 *    The share manager spawns from its main thread, the thread whose death counts.
 * 2. **Own process group.** Ganesha leads its own process group (spawned detached), so a
 *    Ctrl-C meant for the share manager does not reach it before the export is stopped in
 *    order, and `stop()` signals the whole group (SIGTERM, then SIGKILL after a timeout).
 * 3. **Stale pid reaping.** Before each start, a ganesha named by the pid file that still runs
 *    with this state folder's configuration (checked in /proc/PID/cmdline) is killed: the
 *    remains of a run whose parent-death signal could not fire (setpriv missing).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import type { GaneshaPaths } from './config.ts';

export const GANESHA_BINARY = 'ganesha.nfsd';

export interface GaneshaExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running ganesha. */
export interface GaneshaHandle {
  pid: number;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<GaneshaExit>;
  /** SIGTERM to its process group, SIGKILL after `timeoutMs`; resolves once it exited. */
  stop(timeoutMs: number): Promise<GaneshaExit>;
}

export function commandExists(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

/** The argument vector: setpriv (when present) wrapping ganesha in the foreground. */
export function ganeshaCommandLine(paths: GaneshaPaths, withParentDeathSignal: boolean): string[] {
  const ganesha = [GANESHA_BINARY, '-F', '-f', paths.config, '-L', paths.log, '-p', paths.pid];
  return withParentDeathSignal ? ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...ganesha] : ganesha;
}

/** Signals ganesha's process group; `groupOnly` once the leader exited (its pid may be reused). */
function signalGroup(pid: number, signal: NodeJS.Signals, groupOnly = false): void {
  try {
    process.kill(-pid, signal);
  } catch {
    if (groupOnly) return;
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

const CAP_DAC_READ_SEARCH = 2n;

/**
 * Whether this process (and so ganesha) has CAP_DAC_READ_SEARCH, which ganesha's VFS backend
 * needs for open_by_handle_at; without it ganesha starts and answers, but every export
 * access fails with NFS4ERR_PERM. Undefined when /proc does not say.
 */
export function canOpenByHandle(): boolean | undefined {
  try {
    const match = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return match === null ? undefined : ((BigInt(`0x${match[1]}`) >> CAP_DAC_READ_SEARCH) & 1n) === 1n;
  } catch {
    return undefined;
  }
}

/** Starts ganesha; the caller waits for readiness (nfs-probe.ts) and watches `exited`. */
export function spawnGanesha(paths: GaneshaPaths, log: Logger): GaneshaHandle {
  if (!commandExists(GANESHA_BINARY)) {
    throw new HornbillError(
      'SHARE_MANAGER_TOOL_MISSING',
      `${GANESHA_BINARY} not found: install the Debian packages nfs-ganesha and nfs-ganesha-vfs`,
      { tool: GANESHA_BINARY },
    );
  }
  if (canOpenByHandle() === false) {
    log('warn', 'no CAP_DAC_READ_SEARCH: ganesha will answer NFS4ERR_PERM to every client; run as root', {});
  }
  const withParentDeathSignal = commandExists('setpriv');
  if (!withParentDeathSignal) {
    log('warn', 'setpriv (util-linux) not found: ganesha would outlive a killed share manager', {});
  }
  const [file, ...args] = ganeshaCommandLine(paths, withParentDeathSignal);
  const child: ChildProcess = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const forward = (stream: string) => (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line.trim() !== '') log('warn', line.trim(), { source: 'ganesha', stream });
    }
  };
  child.stdout?.on('data', forward('stdout'));
  child.stderr?.on('data', forward('stderr'));
  const exited = new Promise<GaneshaExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      log('error', 'ganesha could not be started', { error: error.message });
      resolve({ code: -1, signal: null });
    });
  });
  if (child.pid === undefined) {
    return { pid: -1, exited, stop: () => exited };
  }
  const pid = child.pid;
  return {
    pid,
    exited,
    async stop(timeoutMs) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      signalGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => {
        log('warn', 'ganesha did not stop on SIGTERM; killing it', { pid, timeoutMs });
        signalGroup(pid, 'SIGKILL');
      }, timeoutMs);
      const result = await exited;
      clearTimeout(timer);
      // Anything ganesha forked stays in its group: make sure the group is empty.
      signalGroup(pid, 'SIGKILL', true);
      return result;
    },
  };
}

/** Whether `pid` runs ganesha with this configuration file (Linux /proc). */
async function isOurGanesha(pid: number, paths: GaneshaPaths): Promise<boolean> {
  try {
    const words = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    return words.some((word) => word.endsWith(GANESHA_BINARY)) && words.includes(paths.config);
  } catch {
    return false;
  }
}

/** Kills a ganesha left running by an earlier share manager on this state folder. */
export async function reapStaleGanesha(paths: GaneshaPaths, log: Logger): Promise<number | undefined> {
  let pid: number;
  try {
    pid = Number((await fs.readFile(paths.pid, 'utf8')).trim());
  } catch {
    return undefined;
  }
  if (!Number.isSafeInteger(pid) || pid <= 1 || !(await isOurGanesha(pid, paths))) return undefined;
  log('warn', 'killing a ganesha left running by an earlier share manager', { pid });
  signalGroup(pid, 'SIGKILL');
  for (let attempt = 0; attempt < 50 && (await isOurGanesha(pid, paths)); attempt++) await sleep(100);
  return pid;
}
