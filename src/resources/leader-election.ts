/**
 * Leader election on a Lease (coordination.k8s.io/v1), as client-go's leaderelection does it,
 * so that of several manager replicas exactly one runs the controllers.
 *
 * The Lease names its holder (`holderIdentity`), how long the holding lasts without renewal
 * (`leaseDurationSeconds`, 15) and when it was last renewed. The holder renews every
 * `renewPeriodMs` (5 s). Everyone else polls every `retryPeriodMs` (2 s) and takes the Lease
 * over once it has stayed unchanged for a whole lease duration *by the poller's own clock*
 * (counted from when the poller first saw that resourceVersion, never from the renewTime the
 * holder wrote, so the hosts' clocks need not agree). Every write is conditional on the
 * resourceVersion read (optimistic concurrency), so of two candidates only one wins.
 *
 * Safety: a leader that cannot renew for `renewDeadlineMs` (10 s, less than the lease
 * duration) stops leading on its own, before anyone else may take over (15 s after they last
 * saw a change), so two leaders never overlap as long as clocks run at about the same rate.
 *
 * The decisions are pure functions (tested with a fake clock); LeaderElector only runs them.
 *
 * ```ts
 * const elector = new LeaderElector({
 *   lease: kubernetesLeaseClient(store.kubeConfig, { namespace: store.namespace }),
 *   identity: os.hostname(),
 *   onStartedLeading: (signal) => controllers.start(signal),
 *   onStoppedLeading: () => controllers.stop(),
 * });
 * elector.start();
 * // at shutdown: await elector.stop();   // releases the Lease
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HornbillError, isHornbillError } from '../errors.ts';
import { type Logger, silentLogger } from '../logging.ts';

export const LEADER_LEASE_NAME = 'hornbill-manager';

/** What a Lease says, as the elector uses it (times in milliseconds since the epoch). */
export interface LeaseRecord {
  /** '' when nobody holds it (never held, or released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTimeMs?: number;
  renewTimeMs?: number;
  leaseTransitions: number;
  /** Opaque; writes are conditional on it. */
  resourceVersion: string;
}

export type LeaseSpec = Omit<LeaseRecord, 'resourceVersion'>;

/** The narrow Lease access the elector needs (kubernetes-lease.ts implements it on the API). */
export interface LeaseClient {
  /** The Lease, or undefined when it does not exist. */
  get(): Promise<LeaseRecord | undefined>;
  /** RESOURCE_ALREADY_EXISTS when another candidate created it first. */
  create(spec: LeaseSpec): Promise<LeaseRecord>;
  /** Conditional on `record.resourceVersion`: RESOURCE_CONFLICT when the Lease changed since. */
  update(record: LeaseRecord): Promise<LeaseRecord>;
}

/** A LeaseClient that can also remove its Lease (the share managers' leases, on teardown). */
export interface DeletableLeaseClient extends LeaseClient {
  /** Removes the Lease; one that is already gone is fine. */
  delete(): Promise<void>;
}

export interface LeaderElectionTiming {
  /** How long a holding lasts without renewal (written into the Lease). Default 15 s. */
  leaseDurationMs: number;
  /** How often the leader renews. Default 5 s. */
  renewPeriodMs: number;
  /** A leader that has not renewed for this long stops leading. Default 10 s. */
  renewDeadlineMs: number;
  /** How often a candidate tries, and a leader retries a failed renewal. Default 2 s. */
  retryPeriodMs: number;
}

export const DEFAULT_LEADER_ELECTION_TIMING: LeaderElectionTiming = {
  leaseDurationMs: 15_000,
  renewPeriodMs: 5_000,
  renewDeadlineMs: 10_000,
  retryPeriodMs: 2_000,
};

/** INVALID_ARGUMENT unless retry < renew deadline, renew period < renew deadline < lease duration. */
export function checkTiming(timing: LeaderElectionTiming): LeaderElectionTiming {
  const { leaseDurationMs, renewPeriodMs, renewDeadlineMs, retryPeriodMs } = timing;
  const problems: string[] = [];
  if (!(leaseDurationMs >= 1_000 && leaseDurationMs % 1_000 === 0))
    problems.push('leaseDurationMs must be whole seconds, at least 1 s');
  if (!(renewDeadlineMs < leaseDurationMs))
    problems.push('renewDeadlineMs must be less than leaseDurationMs');
  if (!(renewPeriodMs > 0 && renewPeriodMs < renewDeadlineMs))
    problems.push('renewPeriodMs must be positive and less than renewDeadlineMs');
  if (!(retryPeriodMs > 0 && retryPeriodMs < renewDeadlineMs))
    problems.push('retryPeriodMs must be positive and less than renewDeadlineMs');
  if (problems.length > 0) {
    throw new HornbillError('INVALID_ARGUMENT', `leader election timing: ${problems.join('; ')}`, {
      ...timing,
    });
  }
  return timing;
}

/** The Lease as last read, and when (by our clock) it was first seen with this resourceVersion. */
export interface LeaseObservation {
  record: LeaseRecord;
  observedAtMs: number;
}

/** A new observation; the time stays when the Lease has not changed since the last one. */
export function observe(
  previous: LeaseObservation | undefined,
  record: LeaseRecord,
  nowMs: number,
): LeaseObservation {
  if (previous !== undefined && previous.record.resourceVersion === record.resourceVersion) {
    return { record, observedAtMs: previous.observedAtMs };
  }
  return { record, observedAtMs: nowMs };
}

/** Nobody holds it, or it has not changed for a whole lease duration (by our clock). */
export function isLeaseExpired(observation: LeaseObservation, nowMs: number): boolean {
  const { record, observedAtMs } = observation;
  if (record.holderIdentity === '') return true;
  return nowMs >= observedAtMs + record.leaseDurationSeconds * 1_000;
}

export type LeaseAction =
  /** No Lease yet: create it, held by us. */
  | 'create'
  /** We hold it: write a new renewTime. */
  | 'renew'
  /** Free or expired: write ourselves as the holder. */
  | 'take-over'
  /** Someone else holds it and it is alive. */
  | 'wait';

export function decideLeaseAction(
  identity: string,
  observation: LeaseObservation | undefined,
  nowMs: number,
): LeaseAction {
  if (observation === undefined) return 'create';
  if (observation.record.holderIdentity === identity) return 'renew';
  return isLeaseExpired(observation, nowMs) ? 'take-over' : 'wait';
}

/** The Lease we write for `action`: a renewal keeps acquireTime; a take-over counts a transition. */
export function leaseFor(
  identity: string,
  action: 'create' | 'renew' | 'take-over',
  current: LeaseRecord | undefined,
  nowMs: number,
  leaseDurationMs: number,
): LeaseSpec {
  const leaseDurationSeconds = Math.round(leaseDurationMs / 1_000);
  if (action === 'renew' && current !== undefined) {
    return { ...withoutVersion(current), holderIdentity: identity, leaseDurationSeconds, renewTimeMs: nowMs };
  }
  return {
    holderIdentity: identity,
    leaseDurationSeconds,
    acquireTimeMs: nowMs,
    renewTimeMs: nowMs,
    leaseTransitions: current === undefined ? 0 : current.leaseTransitions + 1,
  };
}

/** What the leader writes when it steps down: nobody holds it, so the next candidate need not wait. */
export function releasedLease(current: LeaseRecord, nowMs: number): LeaseRecord {
  return { ...current, holderIdentity: '', leaseDurationSeconds: 1, renewTimeMs: nowMs };
}

/** A leader whose last successful renewal (sent at `lastRenewMs`) is this old must step down. */
export function renewDeadlinePassed(
  lastRenewMs: number,
  nowMs: number,
  timing: LeaderElectionTiming,
): boolean {
  return nowMs - lastRenewMs >= timing.renewDeadlineMs;
}

/**
 * When to try next: a leader renews `renewPeriodMs` after its last renewal, or retries after
 * `retryPeriodMs` when that renewal failed, never later than its renew deadline; a candidate
 * tries every `retryPeriodMs`.
 */
export function nextAttemptAtMs(
  state: { leading: boolean; lastRenewMs: number; lastAttemptSucceeded: boolean },
  nowMs: number,
  timing: LeaderElectionTiming,
): number {
  if (!state.leading) return nowMs + timing.retryPeriodMs;
  if (state.lastAttemptSucceeded) return state.lastRenewMs + timing.renewPeriodMs;
  return Math.min(nowMs + timing.retryPeriodMs, state.lastRenewMs + timing.renewDeadlineMs);
}

function withoutVersion(record: LeaseRecord): LeaseSpec {
  const { resourceVersion: _resourceVersion, ...spec } = record;
  return spec;
}

/** Time for the elector: injectable, so tests run it on a fake clock. */
export interface ElectionClock {
  now(): number;
  /** Resolves after `milliseconds`, or early when `signal` aborts (never rejects). */
  sleep(milliseconds: number, signal: AbortSignal): Promise<void>;
}

export const systemClock: ElectionClock = {
  now: Date.now,
  sleep: (milliseconds, signal) => sleep(milliseconds, undefined, { signal }).catch(() => {}),
};

export interface LeaderElectorOptions {
  lease: LeaseClient;
  /** Unique per replica (the pod name). */
  identity: string;
  timing?: Partial<LeaderElectionTiming>;
  clock?: ElectionClock;
  logger?: Logger;
  /** Called when this replica becomes leader; `signal` aborts when it stops being leader. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  /** Called when leadership ends (lost, or stop()); before the Lease is released. */
  onStoppedLeading(): void | Promise<void>;
  /** Called when the Lease names a different holder than last seen ('' when nobody holds it). */
  onNewLeader?(identity: string): void;
}

export class LeaderElector {
  private readonly options: LeaderElectorOptions;
  private readonly timing: LeaderElectionTiming;
  private readonly clock: ElectionClock;
  private readonly logger: Logger;
  private readonly stopping = new AbortController();
  private observation: LeaseObservation | undefined;
  private leadership: AbortController | undefined;
  private lastRenewMs = 0;
  private lastHolder: string | undefined;
  private running: Promise<void> | undefined;

  constructor(options: LeaderElectorOptions) {
    if (typeof options.identity !== 'string' || options.identity === '') {
      throw new HornbillError('INVALID_ARGUMENT', 'leader election needs a non-empty identity', {});
    }
    this.options = options;
    this.timing = checkTiming({ ...DEFAULT_LEADER_ELECTION_TIMING, ...options.timing });
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? silentLogger;
  }

  get isLeader(): boolean {
    return this.leadership !== undefined;
  }

  /** The holder the Lease named when last read ('' for nobody, undefined before the first read). */
  get leader(): string | undefined {
    return this.lastHolder;
  }

  /** Starts campaigning in the background; `stop()` ends it. */
  start(): void {
    if (this.running !== undefined) throw new Error('leader elector already started');
    this.running = this.run().catch((error: unknown) => {
      this.logger('error', 'leader election stopped on an unexpected error', { error: String(error) });
    });
  }

  /** Stops campaigning; a leader stops leading (callbacks first) and releases the Lease. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    if (this.leadership === undefined) return;
    await this.stopLeading('stopped');
    const current = this.observation?.record;
    if (current !== undefined && current.holderIdentity === this.options.identity) {
      try {
        await this.options.lease.update(releasedLease(current, this.clock.now()));
        this.logger('info', 'released the leader Lease', { identity: this.options.identity });
      } catch (error) {
        this.logger('warn', 'could not release the leader Lease; it expires by itself', {
          error: String(error),
        });
      }
    }
  }

  private async run(): Promise<void> {
    let lastAttemptSucceeded = false;
    while (!this.stopping.signal.aborted) {
      const attemptMs = this.clock.now();
      const outcome = await this.attemptWithinDeadline(attemptMs);
      if (this.stopping.signal.aborted) break;
      if (outcome === 'deadline' && this.leadership !== undefined) {
        // The request still hangs; whatever it does later, we no longer lead.
        await this.stopLeading('renew deadline passed with the Lease request still pending');
      }
      lastAttemptSucceeded = outcome === true;
      if (lastAttemptSucceeded) {
        this.lastRenewMs = attemptMs;
        if (this.leadership === undefined) await this.startLeading();
      } else if (
        this.leadership !== undefined &&
        renewDeadlinePassed(this.lastRenewMs, this.clock.now(), this.timing)
      ) {
        await this.stopLeading('renew deadline passed');
      }
      const state = {
        leading: this.leadership !== undefined,
        lastRenewMs: this.lastRenewMs,
        lastAttemptSucceeded,
      };
      const delay = Math.max(0, nextAttemptAtMs(state, this.clock.now(), this.timing) - this.clock.now());
      await this.clock.sleep(delay, this.stopping.signal);
    }
  }

  /**
   * One attempt, bounded: while leading by the renew deadline (a request that hangs past it
   * must not keep us leading after others may take over), as a candidate by the renew
   * deadline's length, and always by stop(). A hung request is left behind, not awaited.
   */
  private async attemptWithinDeadline(attemptMs: number): Promise<boolean | 'deadline'> {
    const attempt = this.tryAcquireOrRenew(attemptMs);
    const watchdog = new AbortController();
    const deadlineMs =
      this.leadership === undefined
        ? attemptMs + this.timing.renewDeadlineMs
        : this.lastRenewMs + this.timing.renewDeadlineMs;
    const remainingMs = Math.max(0, deadlineMs - this.clock.now());
    const deadline = this.clock
      .sleep(remainingMs, AbortSignal.any([watchdog.signal, this.stopping.signal]))
      .then(() => 'deadline' as const);
    try {
      return await Promise.race([attempt, deadline]);
    } finally {
      watchdog.abort();
    }
  }

  /** One read and (maybe) one conditional write; true when we hold the Lease afterwards. */
  private async tryAcquireOrRenew(nowMs: number): Promise<boolean> {
    const { lease, identity } = this.options;
    let record: LeaseRecord | undefined;
    try {
      record = await lease.get();
    } catch (error) {
      this.logger('warn', 'cannot read the leader Lease', { error: String(error) });
      return false;
    }
    this.observation = record === undefined ? undefined : observe(this.observation, record, nowMs);
    if (record !== undefined) this.noticeHolder(record.holderIdentity);
    if (this.leadership !== undefined && record !== undefined && record.holderIdentity !== identity) {
      // Someone took over (we were too slow to renew): step down at once.
      await this.stopLeading(`the Lease is held by ${record.holderIdentity || 'nobody'}`);
      return false;
    }
    const action = decideLeaseAction(identity, this.observation, nowMs);
    if (action === 'wait') return false;
    const spec = leaseFor(identity, action, record, nowMs, this.timing.leaseDurationMs);
    try {
      const written =
        action === 'create' || record === undefined
          ? await lease.create(spec)
          : await lease.update({ ...spec, resourceVersion: record.resourceVersion });
      this.observation = { record: written, observedAtMs: nowMs };
      this.noticeHolder(written.holderIdentity);
      return true;
    } catch (error) {
      const expected =
        isHornbillError(error, 'RESOURCE_CONFLICT') || isHornbillError(error, 'RESOURCE_ALREADY_EXISTS');
      this.logger(expected ? 'debug' : 'warn', `leader Lease ${action} failed`, { error: String(error) });
      return false;
    }
  }

  private noticeHolder(holder: string): void {
    if (holder === this.lastHolder) return;
    this.lastHolder = holder;
    try {
      this.options.onNewLeader?.(holder);
    } catch (error) {
      this.logger('error', 'onNewLeader threw', { error: String(error) });
    }
  }

  private async startLeading(): Promise<void> {
    const leadership = new AbortController();
    this.leadership = leadership;
    this.logger('info', 'started leading', { identity: this.options.identity });
    try {
      // Not awaited: the callback may run for as long as we lead.
      void Promise.resolve(this.options.onStartedLeading(leadership.signal)).catch((error: unknown) => {
        this.logger('error', 'onStartedLeading failed', { error: String(error) });
      });
    } catch (error) {
      this.logger('error', 'onStartedLeading threw', { error: String(error) });
    }
  }

  private async stopLeading(reason: string): Promise<void> {
    const leadership = this.leadership;
    if (leadership === undefined) return;
    this.leadership = undefined;
    leadership.abort();
    this.logger('info', 'stopped leading', { identity: this.options.identity, reason });
    try {
      await this.options.onStoppedLeading();
    } catch (error) {
      this.logger('error', 'onStoppedLeading failed', { error: String(error) });
    }
  }
}
