import { assert } from '../../../assert.ts';

/** A held or awaited lock on the logical blocks [first, first + count). */
export class RangeLock {
  first = 0;
  count = 0;
  exclusive = false;
  /** Index in the active list while held (swap-remove on release). */
  activeIndex = -1;
  resolve: ((lock: RangeLock) => void) | null = null;
}

/**
 * Locks on LBA ranges so that COMPARE AND WRITE is atomic against every other command on
 * the same blocks: media commands take shared locks, COMPARE AND WRITE an exclusive one.
 * Waiters are served first come, first served, so an exclusive request is never starved.
 *
 * Bound: at most one lock per command in flight across all sessions of the logical unit;
 * lock objects are recycled, so taking a lock does not allocate once the table is warm.
 * An uncontended shared lock resolves synchronously (no promise).
 */
export class RangeLockTable {
  private readonly active: RangeLock[] = [];
  private readonly waiting: RangeLock[] = [];
  private readonly free: RangeLock[] = [];
  /** Exclusive locks held or awaited; while zero, shared requests skip the overlap scan. */
  private exclusiveCount = 0;

  get heldCount(): number {
    return this.active.length;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Takes a lock: returns it at once when nothing conflicts, or a promise of it. */
  acquire(first: number, count: number, exclusive: boolean): RangeLock | Promise<RangeLock> {
    const lock = this.free.pop() ?? new RangeLock();
    lock.first = first;
    lock.count = Math.max(count, 1);
    lock.exclusive = exclusive;
    if (exclusive) this.exclusiveCount++;
    if (!this.mustWait(lock, this.waiting.length)) {
      this.activate(lock);
      return lock;
    }
    return new Promise<RangeLock>((resolve) => {
      lock.resolve = resolve;
      this.waiting.push(lock);
    });
  }

  release(lock: RangeLock): void {
    assert(
      lock.activeIndex >= 0 && this.active[lock.activeIndex] === lock,
      'released a lock that is not held',
    );
    const last = this.active.pop()!;
    if (last !== lock) {
      this.active[lock.activeIndex] = last;
      last.activeIndex = lock.activeIndex;
    }
    lock.activeIndex = -1;
    if (lock.exclusive) this.exclusiveCount--;
    this.free.push(lock);
    this.wakeWaiters();
  }

  private activate(lock: RangeLock): void {
    lock.activeIndex = this.active.length;
    this.active.push(lock);
  }

  /** A lock waits when it conflicts with a held lock or with an earlier waiter. */
  private mustWait(lock: RangeLock, waitersBefore: number): boolean {
    if (!lock.exclusive && this.exclusiveCount === 0) return false;
    for (const other of this.active) if (conflict(lock, other)) return true;
    for (let index = 0; index < waitersBefore; index++) if (conflict(lock, this.waiting[index])) return true;
    return false;
  }

  private wakeWaiters(): void {
    let index = 0;
    while (index < this.waiting.length) {
      const lock = this.waiting[index];
      if (this.mustWait(lock, index)) {
        index++;
        continue;
      }
      this.waiting.splice(index, 1);
      this.activate(lock);
      const resolve = lock.resolve!;
      lock.resolve = null;
      resolve(lock);
    }
  }
}

function conflict(a: RangeLock, b: RangeLock): boolean {
  if (!a.exclusive && !b.exclusive) return false;
  return a.first < b.first + b.count && b.first < a.first + a.count;
}
