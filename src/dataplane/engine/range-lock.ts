/**
 * Excludes overlapping block ranges from each other: a write that must read and merge
 * whole blocks (see Engine, while a replica rebuilds) must not interleave with another
 * write to the same blocks. Held ranges are few (bounded by the I/O in flight), so a list
 * scan is enough.
 */
export class RangeLock {
  private readonly held: { start: number; end: number; released: Promise<void> }[] = [];

  get busy(): boolean {
    return this.held.length > 0;
  }

  /** Waits until [start, end) overlaps nothing held, holds it, and returns the release. */
  async acquire(start: number, end: number): Promise<() => void> {
    for (;;) {
      const overlapping = this.held.find((range) => range.start < end && start < range.end);
      if (overlapping === undefined) break;
      await overlapping.released;
    }
    let release!: () => void;
    const entry = {
      start,
      end,
      released: new Promise<void>((resolve) => {
        release = resolve;
      }),
    };
    this.held.push(entry);
    return () => {
      this.held.splice(this.held.indexOf(entry), 1);
      release();
    };
  }
}
