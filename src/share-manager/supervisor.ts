/**
 * Supervision of the NFS server: start it, and when it dies unexpectedly, start it again
 * after a back-off — 0.5 s, 1 s, 2 s, … up to 10 s — until it has failed `failuresMax` (5)
 * times within `failureWindowMs` (60 s); then give up with SHARE_MANAGER_NFS_FAILED, so that
 * the share manager exits, stops renewing its lease, and the controller moves it. A run that
 * lasted `stableRunMs` (30 s) resets the back-off.
 *
 * The decisions are pure functions (`restartDecision`); `NfsSupervisor` runs them with an
 * injected launcher and clock, so tests drive it with fake servers and a fake clock.
 */
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';

export interface RestartPolicy {
  initialDelayMs: number;
  maximumDelayMs: number;
  /** Failures within the window that make the supervisor give up. */
  failuresMax: number;
  failureWindowMs: number;
  /** A run at least this long resets the back-off to its initial delay. */
  stableRunMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  initialDelayMs: 500,
  maximumDelayMs: 10_000,
  failuresMax: 5,
  failureWindowMs: 60_000,
  stableRunMs: 30_000,
};

/** The delay before restart number `consecutiveFailures` (1 for the first). */
export function restartDelayMs(consecutiveFailures: number, policy: RestartPolicy): number {
  const exponent = Math.max(0, Math.min(consecutiveFailures - 1, 30));
  return Math.min(policy.initialDelayMs * 2 ** exponent, policy.maximumDelayMs);
}

export type RestartDecision =
  | { action: 'restart'; delayMs: number }
  | { action: 'give-up'; failures: number };

/** After a failure at `nowMs`: the failures in the window decide; the consecutive count sets the delay. */
export function restartDecision(
  failureTimesMs: readonly number[],
  consecutiveFailures: number,
  nowMs: number,
  policy: RestartPolicy,
): RestartDecision {
  const recent = failureTimesMs.filter((time) => nowMs - time < policy.failureWindowMs).length;
  if (recent >= policy.failuresMax) return { action: 'give-up', failures: recent };
  return { action: 'restart', delayMs: restartDelayMs(consecutiveFailures, policy) };
}

/** A started and answering NFS server. */
export interface RunningServer {
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(timeoutMs: number): Promise<unknown>;
}

export interface SupervisorClock {
  now(): number;
  /** Resolves after `milliseconds`, or early when `signal` aborts (never rejects). */
  sleep(milliseconds: number, signal: AbortSignal): Promise<void>;
}

export type SupervisorState = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export interface NfsSupervisorOptions {
  /**
   * Starts the server and resolves once it answers; rejects (having cleaned up) when it
   * cannot, or when `signal` aborts (the supervisor is stopping).
   */
  launch(signal: AbortSignal): Promise<RunningServer>;
  log: Logger;
  clock: SupervisorClock;
  policy?: RestartPolicy;
  /** How long a stopping server gets between SIGTERM and SIGKILL. */
  stopTimeoutMs?: number;
  onStateChange?(state: SupervisorState): void;
  /** Called once when the supervisor gives up (restart budget spent). */
  onFailed?(error: HornbillError): void;
}

export class NfsSupervisor {
  private readonly options: NfsSupervisorOptions;
  private readonly policy: RestartPolicy;
  private readonly stopping = new AbortController();
  private server: RunningServer | undefined;
  private failureTimesMs: number[] = [];
  private consecutiveFailures = 0;
  private loop: Promise<void> | undefined;
  state: SupervisorState = 'stopped';
  restarts = 0;
  lastStartToReadyMs: number | undefined;

  constructor(options: NfsSupervisorOptions) {
    this.options = options;
    this.policy = options.policy ?? DEFAULT_RESTART_POLICY;
  }

  get pid(): number | undefined {
    return this.server?.pid;
  }

  /** First start: resolves once the server answers; a failure here is not retried. */
  async start(): Promise<void> {
    if (this.loop !== undefined || this.state !== 'stopped') throw new Error('supervisor already started');
    this.setState('starting');
    await this.launchOnce().catch((error: unknown) => {
      this.setState('failed');
      throw error;
    });
    this.setState('running');
    this.loop = this.supervise();
  }

  /** Stops supervising and stops the server. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.stopping.abort();
    if (this.state !== 'failed') this.setState('stopping');
    const timeoutMs = this.options.stopTimeoutMs ?? 10_000;
    await this.server?.stop(timeoutMs);
    await this.loop;
    await this.server?.stop(timeoutMs); // one that finished launching while we stopped
    this.server = undefined;
    if (this.state !== 'failed') this.setState('stopped');
  }

  private setState(state: SupervisorState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onStateChange?.(state);
  }

  private async launchOnce(): Promise<void> {
    const startedMs = this.options.clock.now();
    this.server = await this.options.launch(this.stopping.signal);
    this.lastStartToReadyMs = this.options.clock.now() - startedMs;
    this.options.log('info', 'nfs server ready', {
      pid: this.server.pid,
      startToReadyMs: this.lastStartToReadyMs,
      restarts: this.restarts,
    });
  }

  private async supervise(): Promise<void> {
    const { clock, log } = this.options;
    while (!this.stopping.signal.aborted && this.server !== undefined) {
      const runStartedMs = clock.now();
      const exit = await this.server.exited;
      if (this.stopping.signal.aborted) return;
      const nowMs = clock.now();
      if (nowMs - runStartedMs >= this.policy.stableRunMs) this.consecutiveFailures = 0;
      if (!(await this.recordFailureAndWait(nowMs, { pid: this.server.pid, ...exit }))) return;
      log('info', 'restarting the nfs server', { restart: this.restarts + 1 });
      while (!this.stopping.signal.aborted) {
        this.restarts++;
        try {
          await this.launchOnce();
          this.setState('running');
          break;
        } catch (error) {
          log('warn', 'nfs server restart failed', { error: String(error) });
          if (!(await this.recordFailureAndWait(clock.now(), { error: String(error) }))) return;
        }
      }
    }
  }

  /** Counts a failure; waits the back-off and returns true, or gives up and returns false. */
  private async recordFailureAndWait(nowMs: number, details: Record<string, unknown>): Promise<boolean> {
    this.failureTimesMs = [
      ...this.failureTimesMs.filter((time) => nowMs - time < this.policy.failureWindowMs),
      nowMs,
    ];
    this.consecutiveFailures++;
    this.server = undefined;
    const decision = restartDecision(this.failureTimesMs, this.consecutiveFailures, nowMs, this.policy);
    if (decision.action === 'give-up') {
      const error = new HornbillError(
        'SHARE_MANAGER_NFS_FAILED',
        `the nfs server failed ${decision.failures} times within ${this.policy.failureWindowMs} ms; giving up`,
        { failures: decision.failures, windowMs: this.policy.failureWindowMs, ...details },
      );
      this.options.log('error', error.message, error.details);
      this.setState('failed');
      this.options.onFailed?.(error);
      return false;
    }
    this.setState('restarting');
    this.options.log('warn', 'nfs server died unexpectedly; restarting after a back-off', {
      ...details,
      delayMs: decision.delayMs,
      consecutiveFailures: this.consecutiveFailures,
    });
    await this.options.clock.sleep(decision.delayMs, this.stopping.signal);
    return !this.stopping.signal.aborted;
  }
}
