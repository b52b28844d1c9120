/**
 * The work queue every controller runs on (client-go's rate-limited work queue):
 *
 * - a key waits in the queue at most once (adding a waiting key again is a no-op);
 * - a key is handed to one worker at a time: a key added while it is being reconciled waits
 *   until that reconcile ends, and then runs once more;
 * - a failed reconcile is retried after a per-key exponential back-off (5 ms doubling up to
 *   60 s) combined with an overall token bucket (10 retries per second, bursts of 100), so
 *   a storm of failures cannot spin the process; success resets the key's back-off;
 * - a reconcile may ask to run again after a delay (`requeueAfterMs`), for time-based
 *   decisions (timeouts, wait intervals).
 *
 * ```ts
 * const queue = new WorkQueue({ name: 'volume', workers: 2, reconcile: (key) => reconcileVolume(key) });
 * queue.start();
 * queue.add('vol1');
 * await queue.idle();
 * await queue.stop();
 * ```
 */
import { assert } from '../assert.ts';

export interface ReconcileResult {
  /** Run this key again after this many milliseconds (unless it is added earlier). */
  requeueAfterMs?: number;
}

export interface WorkQueueOptions {
  name: string;
  /** Keys reconciled at once (each key by one worker at a time). */
  workers: number;
  reconcile(key: string): Promise<ReconcileResult | undefined>;
  /** Called with each failed reconcile before it is retried. */
  onError?(key: string, error: unknown, retryInMs: number): void;
  /** First retry delay of a failing key (default 5 ms), doubled on each failure. */
  baseDelayMs?: number;
  /** Longest retry delay of a failing key (default 60 s). */
  maximumDelayMs?: number;
  /** Overall retry rate (default 10 per second) and burst (default 100). */
  bucketRatePerSecond?: number;
  bucketBurst?: number;
  /** The clock (tests pass their own). */
  now?(): number;
}

/** Upper bound of keys waiting (a controller that enqueues more has a bug). */
const MAXIMUM_WAITING_KEYS = 1_000_000;

/** Per-key exponential back-off: base × 2^failures, capped. */
export class ExponentialBackoff {
  private readonly failures = new Map<string, number>();
  private readonly baseDelayMs: number;
  private readonly maximumDelayMs: number;

  constructor(baseDelayMs: number, maximumDelayMs: number) {
    assert(baseDelayMs > 0 && maximumDelayMs >= baseDelayMs, 'back-off delays must be positive and ordered');
    this.baseDelayMs = baseDelayMs;
    this.maximumDelayMs = maximumDelayMs;
  }

  /** The delay before the next retry of `key`, counting this failure. */
  next(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    return Math.min(this.maximumDelayMs, this.baseDelayMs * 2 ** Math.min(failures, 40));
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.failures.delete(key);
  }
}

/** A token bucket: `ratePerSecond` tokens a second, at most `burst` saved up. */
export class TokenBucket {
  private readonly ratePerSecond: number;
  private readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private updatedAtMs: number;

  constructor(ratePerSecond: number, burst: number, now: () => number = Date.now) {
    assert(ratePerSecond > 0 && burst >= 1, 'token bucket rate and burst must be positive');
    this.ratePerSecond = ratePerSecond;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.updatedAtMs = now();
  }

  /** Takes a token; returns how long to wait until it is really available (0: now). */
  reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAtMs) * this.ratePerSecond) / 1000);
    this.updatedAtMs = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.ratePerSecond);
  }
}

export class WorkQueue {
  readonly name: string;
  private readonly options: WorkQueueOptions;
  private readonly backoff: ExponentialBackoff;
  private readonly bucket: TokenBucket;
  /** Keys waiting to be handed out, in order. */
  private readonly queue: string[] = [];
  /** Keys that are waiting (in `queue`, or to be queued when their reconcile ends). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  /** Delayed adds: key → [due time, timer]. Only the earliest per key is kept. */
  private readonly delayed = new Map<string, { dueMs: number; timer: NodeJS.Timeout }>();
  private readonly wakeups: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly workers: Promise<void>[] = [];
  private stopped = false;

  constructor(options: WorkQueueOptions) {
    assert(options.workers >= 1, 'a work queue needs at least one worker');
    this.name = options.name;
    this.options = options;
    this.backoff = new ExponentialBackoff(options.baseDelayMs ?? 5, options.maximumDelayMs ?? 60_000);
    this.bucket = new TokenBucket(options.bucketRatePerSecond ?? 10, options.bucketBurst ?? 100, options.now);
  }

  start(): void {
    assert(this.workers.length === 0, 'work queue already started');
    for (let index = 0; index < this.options.workers; index++) this.workers.push(this.work());
  }

  /** Queues `key` unless it is already waiting. */
  add(key: string): void {
    if (this.stopped || this.dirty.has(key)) return;
    assert(this.dirty.size < MAXIMUM_WAITING_KEYS, `work queue ${this.name} holds too many keys`);
    this.dirty.add(key);
    if (this.processing.has(key)) return; // queued again when its reconcile ends
    this.queue.push(key);
    this.wakeups.shift()?.();
  }

  /** Queues `key` after `delayMs` (an earlier pending add of the key wins). */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const dueMs = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending !== undefined) {
      if (pending.dueMs <= dueMs) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { dueMs, timer });
  }

  /** Queues `key` after its back-off; returns the delay. */
  addRateLimited(key: string): number {
    const delayMs = Math.max(this.backoff.next(key), this.bucket.reserve());
    this.addAfter(key, delayMs);
    return delayMs;
  }

  /** Resets the back-off of `key`. */
  forget(key: string): void {
    this.backoff.forget(key);
  }

  failuresOf(key: string): number {
    return this.backoff.failuresOf(key);
  }

  get length(): number {
    return this.queue.length;
  }

  /** Reconciles run so far: those that returned, and those that threw (for /metrics). */
  readonly counts = { succeeded: 0, failed: 0 };

  /** Resolves when no key is waiting or being reconciled (delayed adds do not count). */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops handing out keys; waits for the reconciles in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.dirty.clear();
    for (const wake of this.wakeups.splice(0)) wake();
    await Promise.all(this.workers);
    this.notifyIdle();
  }

  private isIdle(): boolean {
    return this.queue.length === 0 && this.processing.size === 0;
  }

  private notifyIdle(): void {
    if (!this.isIdle()) return;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async next(): Promise<string | undefined> {
    while (!this.stopped) {
      const key = this.queue.shift();
      if (key !== undefined) return key;
      await new Promise<void>((resolve) => this.wakeups.push(resolve));
    }
    return undefined;
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.next();
      if (key === undefined) return;
      assert(!this.processing.has(key), `key ${key} handed to two workers`);
      this.dirty.delete(key);
      this.processing.add(key);
      try {
        const result = await this.options.reconcile(key);
        this.counts.succeeded++;
        this.backoff.forget(key);
        if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        this.counts.failed++;
        const retryInMs = this.stopped ? 0 : this.addRateLimited(key);
        this.options.onError?.(key, error, retryInMs);
      } finally {
        this.processing.delete(key);
        if (this.dirty.has(key) && !this.stopped) {
          this.queue.push(key);
          this.wakeups.shift()?.();
        }
        this.notifyIdle();
      }
    }
  }
}
