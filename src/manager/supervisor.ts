/**
 * A supervised child process, as kubelet keeps a pod's container running: `hornbill up`
 * starts the manager and the instance managers with it, and the e2e harness starts the
 * same processes with restarts off, so that tests decide when a killed node comes back.
 *
 * ```ts
 * const node = new SupervisedProcess({ name: 'node-1', command: process.execPath,
 *   args: () => [HORNBILL_BIN, 'instance-manager', …], log, restart: true });
 * const ready = await node.start();     // the child's ready line (one JSON object on stdout)
 * await node.stop();                    // SIGTERM, SIGKILL after stopTimeoutMs; no restart
 * ```
 *
 * - **Ready**: `start()` resolves with the first JSON line on the child's stdout that has
 *   `ready: true`; a child that exits first, or says nothing within `readyTimeoutMs`, is
 *   PROCESS_START_FAILED with the tail of its stderr.
 * - **Restart** (`restart: true`): a child that exits while nobody asked it to (after it was
 *   ready once) is logged and started again after a back-off — `initialMs`, doubling up to
 *   `maximumMs`, back to `initialMs` once a child has run `resetAfterMs`. A restart that
 *   fails is retried the same way. `args()` is called at every start, so a launcher can
 *   pin the ports the first start picked.
 * - **No leaks**: every live child is SIGKILLed when this process exits (also on an
 *   uncaught exception); only SIGKILL of this process itself leaves children behind.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export interface BackoffOptions {
  initialMs: number;
  maximumMs: number;
  /** A child that ran this long resets the back-off. */
  resetAfterMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maximumMs: 30_000, resetAfterMs: 60_000 };
/** Lines of stderr kept for the error of a failed start. */
const STDERR_TAIL_LINES = 40;
/** A stdout or stderr line longer than this is cut (a child that never prints a newline). */
const MAX_LINE_LENGTH = 64 * 1024;

// biome-ignore lint/suspicious/noExplicitAny: a ready line is JSON whose shape depends on the command
export type ReadyLine = Record<string, any>;

export interface SupervisedProcessOptions {
  /** For logs: `manager`, `node-1`. */
  name: string;
  command: string;
  /** Called at every start. */
  args: () => string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  log: Logger;
  restart: boolean;
  backoff?: BackoffOptions;
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
  /** Each line the child writes on stderr (default: dropped). */
  onStderrLine?: (line: string) => void;
  /** After every successful start, restarts included. */
  onReady?: (ready: ReadyLine) => void;
  /** Own process group (default true), so that a terminal's Ctrl-C reaches only the supervisor. */
  detached?: boolean;
}

type State = 'idle' | 'starting' | 'running' | 'stopping' | 'backoff';

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const live of liveChildren) live.kill('SIGKILL');
    });
  }
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
}

/** Calls `onLine` for each line of `stream`. */
function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    partial += chunk;
    let newline = partial.indexOf('\n');
    while (newline >= 0) {
      onLine(partial.slice(0, newline));
      partial = partial.slice(newline + 1);
      newline = partial.indexOf('\n');
    }
    if (partial.length > MAX_LINE_LENGTH) {
      onLine(partial);
      partial = '';
    }
  });
  stream.on('end', () => {
    if (partial !== '') onLine(partial);
  });
}

export class SupervisedProcess {
  readonly name: string;
  private readonly options: SupervisedProcessOptions;
  private readonly backoff: BackoffOptions;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private state: State = 'idle';
  private restartTimer: NodeJS.Timeout | undefined;
  private delayMs: number;
  private startedAt = 0;
  private stderrTail: string[] = [];
  /** The last ready line. */
  ready: ReadyLine | undefined;
  /** Starts after the first (restarts, automatic or by `start()`). */
  restarts = 0;
  private everReady = false;

  constructor(options: SupervisedProcessOptions) {
    this.name = options.name;
    this.options = options;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.delayMs = this.backoff.initialMs;
  }

  get pid(): number | undefined {
    return this.child?.exitCode === null && this.child.signalCode === null ? this.child.pid : undefined;
  }

  /** True while the child process is alive. */
  get running(): boolean {
    return this.pid !== undefined;
  }

  /** Spawns the child and resolves with its ready line. A running child is returned as is. */
  async start(): Promise<ReadyLine> {
    if (this.state === 'running' && this.ready !== undefined && this.running) return this.ready;
    if (this.state === 'starting')
      throw new HornbillError('INVALID_ARGUMENT', `${this.name} is already starting`);
    clearTimeout(this.restartTimer);
    return this.spawnOnce();
  }

  private spawnOnce(): Promise<ReadyLine> {
    this.state = 'starting';
    if (this.everReady) this.restarts++;
    this.stderrTail = [];
    const args = this.options.args();
    const child = spawn(this.options.command, args, {
      cwd: this.options.cwd,
      // The child stops on its own if this process dies without stopping it (args.ts, watchParent).
      env: { ...(this.options.env ?? process.env), HORNBILL_SUPERVISOR_PID: String(process.pid) },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: this.options.detached ?? true,
    });
    this.child = child;
    trackChild(child);
    this.startedAt = Date.now();
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    this.exited = exited.then(() => {});
    eachLine(child.stderr!, (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      this.options.onStderrLine?.(line);
    });
    const ready = new Promise<ReadyLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(this.startFailed(`did not print its ready line in ${this.readyTimeoutMs} ms`));
      }, this.readyTimeoutMs);
      eachLine(child.stdout!, (line) => {
        if (!line.startsWith('{')) return;
        try {
          const parsed = JSON.parse(line) as ReadyLine;
          if (parsed.ready === true) {
            clearTimeout(timer);
            resolve(parsed);
          }
        } catch {
          // Not a ready line; children print nothing else on stdout that matters here.
        }
      });
      child.once('error', (error) => {
        clearTimeout(timer);
        reject(this.startFailed(`could not be spawned: ${error.message}`));
      });
      exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(this.startFailed(`exited (${code ?? signal}) before it was ready`));
      });
    });
    exited.then(({ code, signal }) => this.onExit(child, code, signal));
    return ready.then(
      (line) => {
        if (this.child === child && this.state === 'starting') this.state = 'running';
        this.ready = line;
        this.everReady = true;
        this.options.onReady?.(line);
        return line;
      },
      (error: unknown) => {
        if (this.child === child && this.state === 'starting') this.state = 'idle';
        throw error;
      },
    );
  }

  private get readyTimeoutMs(): number {
    return this.options.readyTimeoutMs ?? 60_000;
  }

  private startFailed(reason: string): HornbillError {
    const tail = this.stderrTail.slice(-10).join('\n');
    return new HornbillError(
      'PROCESS_START_FAILED',
      `${this.name} ${reason}${tail === '' ? '' : `:\n${tail}`}`,
      {
        process: this.name,
        stderr: this.stderrTail.slice(-10),
      },
    );
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    const wasRunning = this.state === 'running';
    if (this.state === 'stopping') return;
    if (!wasRunning) return;
    this.state = 'idle';
    const ranMs = Date.now() - this.startedAt;
    this.options.log('warn', 'process exited unexpectedly', { process: this.name, code, signal, ranMs });
    if (this.options.restart) this.scheduleRestart(ranMs);
  }

  private scheduleRestart(ranMs: number): void {
    if (ranMs >= this.backoff.resetAfterMs) this.delayMs = this.backoff.initialMs;
    const delayMs = this.delayMs;
    this.delayMs = Math.min(this.delayMs * 2, this.backoff.maximumMs);
    this.state = 'backoff';
    this.options.log('info', 'restarting process after back-off', { process: this.name, delayMs });
    this.restartTimer = setTimeout(() => {
      if (this.state !== 'backoff') return;
      this.spawnOnce().then(
        (ready) =>
          this.options.log('info', 'process restarted', {
            process: this.name,
            restarts: this.restarts,
            pid: this.pid,
            ready,
          }),
        (error: HornbillError) => {
          if (this.state === 'stopping') return;
          this.options.log('error', 'restart failed', { process: this.name, error: error.message });
          this.scheduleRestart(0);
        },
      );
    }, delayMs);
  }

  /** Sends `signal` (SIGTERM), SIGKILL after `timeoutMs`; waits for the exit. Never restarted. */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    timeoutMs = this.options.stopTimeoutMs ?? 20_000,
  ): Promise<void> {
    this.state = 'stopping';
    clearTimeout(this.restartTimer);
    const child = this.child;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => {
        this.options.log('warn', 'process did not stop in time; killing it', {
          process: this.name,
          timeoutMs,
        });
        child.kill('SIGKILL');
      }, timeoutMs);
      await this.exited;
      clearTimeout(timer);
    }
    this.state = 'idle';
  }

  /** Sends `signal` (default SIGKILL) and waits for the exit; the child is not restarted. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return this.stop(signal, signal === 'SIGKILL' ? 60_000 : (this.options.stopTimeoutMs ?? 20_000));
  }

  /** The last lines the child wrote on stderr. */
  stderr(): string[] {
    return [...this.stderrTail];
  }
}
