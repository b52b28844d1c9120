/**
 * One `hornbill share-manager` child of the instance manager (docs/share-manager.md): spawned
 * with its argument vector, ready once it prints its JSON ready line on stdout, failed when
 * it exits first (its last `hornbill: CODE: message` line on stderr says why), stopped with
 * SIGTERM and, after a grace period, SIGKILL.
 *
 * It is spawned through `setpriv --pdeathsig SIGKILL` when util-linux's setpriv is present,
 * so that a share manager never outlives its instance manager (a node that dies takes its
 * NFS server with it, and the share manager takes ganesha with it the same way). Without
 * setpriv an instance manager killed with SIGKILL leaves its share managers running until
 * their lease is taken from them (then they fence themselves).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import readline from 'node:readline';
import { type ErrorCode, ErrorCodes, HornbillError } from '../../errors.ts';

/** Lines of the child's stderr kept for the error message and for StreamLogs-like reading. */
export const SHARE_MANAGER_STDERR_LINES_KEPT = 200;
const STDERR_LINE_CHARS_MAX = 4096;
const READY_LINE_CHARS_MAX = 64 * 1024;

/** The share manager's ready line (src/cli/share-manager.ts `announce`). */
export interface ShareManagerReadyLine {
  ready: true;
  endpoint: string;
  exportPath: string;
  health: string;
  nfsPid: number;
  startToReadyMs: number;
  leaseIdentity: string;
}

export interface ShareManagerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts a child; tests pass a launcher of their own (the argument vector is what they check). */
export type ShareManagerLauncher = (
  argv: string[],
  onStderrLine: (line: string) => void,
) => ShareManagerChild;

export interface ShareManagerChild {
  readonly pid: number | undefined;
  /** The ready line, or a rejection (with the child's own error code) when it exits first. */
  readonly ready: Promise<ShareManagerReadyLine>;
  /** Settles when the child has exited. */
  readonly exited: Promise<ShareManagerExit>;
  /** SIGTERM, SIGKILL after `timeoutMs`; resolves once it has exited. */
  stop(timeoutMs: number): Promise<ShareManagerExit>;
}

let setprivPresent: boolean | undefined;

/** Whether util-linux's setpriv can give the child a parent-death signal. */
export function hasSetpriv(): boolean {
  setprivPresent ??=
    spawnSync('sh', ['-c', 'command -v setpriv'], { stdio: 'ignore', timeout: 5_000 }).status === 0;
  return setprivPresent;
}

/** `hornbill`'s entry point, found from this file so that it works from any working directory. */
export const HORNBILL_ENTRY = new URL('../../../bin/hornbill.mjs', import.meta.url).pathname;

/** The command that runs `hornbill share-manager ARGS`: this Node with the hornbill entry point. */
export function defaultShareManagerCommand(): string[] {
  return [process.execPath, HORNBILL_ENTRY, 'share-manager'];
}

/** Parses `hornbill: CODE: message` (src/cli/output.ts reportError) from the child's stderr. */
export function parseFailureLine(line: string): { code: string; message: string } | undefined {
  const match = /^hornbill: ([A-Z][A-Z0-9_]*): (.*)$/.exec(line);
  return match === null ? undefined : { code: match[1], message: match[2] };
}

/** Spawns the command for real (the default launcher). */
export function spawnShareManager(argv: string[], onStderrLine: (line: string) => void): ShareManagerChild {
  const command = hasSetpriv() ? ['setpriv', '--pdeathsig', 'SIGKILL', '--', ...argv] : argv;
  const child: ChildProcess = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let failure: { code: string; message: string } | undefined;
  const exited = new Promise<ShareManagerExit>((resolve) => {
    // 'close' comes after 'exit' once stdout and stderr ended: the failure line has been read.
    child.once('close', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: null, signal: null }));
  });
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = error;
  });
  readline.createInterface({ input: child.stderr! }).on('line', (line) => {
    const kept = line.length > STDERR_LINE_CHARS_MAX ? `${line.slice(0, STDERR_LINE_CHARS_MAX)}…` : line;
    failure = parseFailureLine(kept) ?? failure;
    onStderrLine(kept);
  });
  const ready = new Promise<ShareManagerReadyLine>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (line.length > READY_LINE_CHARS_MAX) return;
      try {
        const parsed = JSON.parse(line) as ShareManagerReadyLine;
        if (parsed?.ready === true) resolve(parsed);
      } catch {
        // not the ready line
      }
    });
    void exited.then((exit) => {
      const how = exit.code !== null ? `exit code ${exit.code}` : `signal ${exit.signal ?? 'unknown'}`;
      reject(
        new HornbillError(
          failure !== undefined && failure.code in ErrorCodes
            ? (failure.code as ErrorCode)
            : 'INSTANCE_FAILED',
          failure?.message ??
            (spawnError === undefined
              ? `the share manager exited (${how}) before it was ready`
              : `the share manager could not be spawned: ${spawnError.message}`),
          { exitCode: exit.code, signal: exit.signal },
        ),
      );
    });
  });
  ready.catch(() => {});
  return {
    get pid() {
      return child.pid;
    },
    ready,
    exited,
    async stop(timeoutMs) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
        const exit = await exited;
        clearTimeout(timer);
        return exit;
      }
      return exited;
    },
  };
}
