/**
 * The controllers of a leader-elected manager: started while this replica leads and knows
 * its instance managers, stopped when it stops leading, and restarted (stop, then start)
 * when the instance-manager list changes — the controllers take that list at start, and
 * being level-triggered they pick up where the previous run left off.
 *
 * It is level-triggered itself: `lead()`, `resign()` and `setInstanceManagers()` only change
 * what is wanted; one serialized `sync` at a time moves the running controllers towards it,
 * so a resign during a start waits for the start and then stops. A start that fails is
 * retried after 1 s, doubling up to 30 s, while still wanted. `beforeStart` runs once per
 * leadership term, before its first start (the manager writes the `--setting` values there).
 *
 * ```ts
 * const controllers = new LeaderControllers({ start: (list) => startControllers({ store, namespace, instanceManagers: list, log }), log });
 * controllers.setInstanceManagers(list);
 * controllers.lead();            // from LeaderElector's onStartedLeading
 * await controllers.resign();    // from onStoppedLeading: resolves once they have stopped
 * ```
 */
import type { RunningControllers } from '../controllers/index.ts';
import type { Logger } from '../logging.ts';
import { compareInstanceManagers } from './instance-manager-discovery.ts';
import type { InstanceManagerEndpoint } from './manager.ts';

export const START_RETRY_DELAY_MS_MIN = 1_000;
export const START_RETRY_DELAY_MS_MAX = 30_000;

export interface LeaderControllersOptions {
  /** Starts the controllers with this instance-manager list. */
  start(instanceManagers: readonly InstanceManagerEndpoint[]): Promise<RunningControllers>;
  /** Once per leadership term, before the first start; a failure is logged, and the start goes on. */
  beforeStart?(): Promise<void>;
  log: Logger;
  /** Called with true after a start and false after a stop (the controllers_running gauge). */
  onRunningChange?(running: boolean): void;
}

export class LeaderControllers {
  private readonly options: LeaderControllersOptions;
  private wanted = false;
  private closed = false;
  private termStarted = false;
  private desired: readonly InstanceManagerEndpoint[] | undefined;
  private running: RunningControllers | undefined;

  /** The running controllers' queue statistics (none while not leading). */
  statistics(): ReturnType<RunningControllers['statistics']> {
    return this.running?.statistics() ?? [];
  }
  private runningWith: readonly InstanceManagerEndpoint[] = [];
  private chain: Promise<void> = Promise.resolve();
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = START_RETRY_DELAY_MS_MIN;
  /** Completed starts, for tests and logs. */
  starts = 0;

  constructor(options: LeaderControllersOptions) {
    this.options = options;
  }

  /** Whether controllers run now. */
  get isRunning(): boolean {
    return this.running !== undefined;
  }

  /** The list the running controllers were started with (empty when none run). */
  get instanceManagers(): readonly InstanceManagerEndpoint[] {
    return this.running === undefined ? [] : this.runningWith;
  }

  /** This replica leads: start the controllers (once the instance managers are known). */
  lead(): Promise<void> {
    if (!this.wanted) this.termStarted = false;
    this.wanted = true;
    return this.kick();
  }

  /** This replica no longer leads: resolves once the controllers have stopped. */
  resign(): Promise<void> {
    this.wanted = false;
    return this.kick();
  }

  /** The instance managers to run with; a different list restarts running controllers. */
  setInstanceManagers(instanceManagers: readonly InstanceManagerEndpoint[]): Promise<void> {
    this.desired = instanceManagers
      .map((endpoint) => ({ ...endpoint, disks: [...endpoint.disks] }))
      .sort((a, b) => (a.nodeID < b.nodeID ? -1 : a.nodeID > b.nodeID ? 1 : 0));
    return this.kick();
  }

  /** Resolves when the syncs queued so far are done (a scheduled retry is not waited for). */
  settled(): Promise<void> {
    return this.chain;
  }

  /** Stops the controllers for good; later calls do nothing. */
  async close(): Promise<void> {
    this.closed = true;
    this.wanted = false;
    await this.kick();
  }

  /** Queues one sync after the ones already queued; never rejects. */
  private kick(): Promise<void> {
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    this.chain = this.chain
      .then(() => this.sync())
      .catch((error: unknown) => {
        this.options.log('error', 'controller start or stop failed unexpectedly', { error: String(error) });
      });
    return this.chain;
  }

  /** Why the running controllers must stop now, or undefined when they may go on. */
  private stopReason(): Record<string, unknown> | undefined {
    if (!this.wanted) return { reason: 'no longer leading' };
    if (this.desired === undefined) return undefined;
    const changes = compareInstanceManagers(this.runningWith, this.desired);
    return changes.restartNeeded ? { reason: 'instance managers changed', ...changes } : undefined;
  }

  private async sync(): Promise<void> {
    // Each round stops, prepares or starts once; three rounds settle any state, a fourth checks.
    for (let round = 0; round < 4; round++) {
      const desired = this.desired;
      if (this.running !== undefined) {
        const reason = this.stopReason();
        if (reason === undefined) return;
        await this.stopRunning(reason);
        continue;
      }
      if (!this.wanted || this.closed || desired === undefined) return;
      if (!this.termStarted) {
        this.termStarted = true;
        await this.prepare();
        continue; // wanted may have changed meanwhile
      }
      await this.startRunning(desired);
      if (this.running === undefined) return; // failed: a retry is scheduled
    }
  }

  private async prepare(): Promise<void> {
    if (this.options.beforeStart === undefined) return;
    try {
      await this.options.beforeStart();
    } catch (error) {
      this.options.log('error', 'preparing the controllers failed; starting them anyway', {
        error: String(error),
      });
    }
  }

  private async startRunning(desired: readonly InstanceManagerEndpoint[]): Promise<void> {
    try {
      this.running = await this.options.start(desired);
      this.runningWith = desired;
      this.starts++;
      this.retryDelayMs = START_RETRY_DELAY_MS_MIN;
      this.options.onRunningChange?.(true);
      this.options.log('info', 'controllers started', { nodes: desired.map((endpoint) => endpoint.nodeID) });
    } catch (error) {
      const delayMs = this.retryDelayMs;
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, START_RETRY_DELAY_MS_MAX);
      this.options.log('error', 'the controllers failed to start; retrying', {
        error: String(error),
        delayMs,
      });
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        void this.kick();
      }, delayMs);
      this.retryTimer.unref();
    }
  }

  private async stopRunning(details: Record<string, unknown>): Promise<void> {
    const running = this.running;
    if (running === undefined) return;
    this.running = undefined;
    this.runningWith = [];
    this.options.log('info', 'stopping the controllers', details);
    try {
      await running.stop();
    } catch (error) {
      this.options.log('error', 'controllers failed to stop cleanly', { error: String(error) });
    }
    this.options.onRunningChange?.(false);
  }
}
