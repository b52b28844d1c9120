/**
 * Holds I/O back while an operation needs the volume still (snapshot, expansion, the last
 * step of a rebuild): `pause` stops new I/O from entering and waits until the I/O in
 * flight has left; `resume` lets the held-back I/O in. When not paused, entering costs a
 * counter increment.
 */
export class IoGate {
  private inFlight = 0;
  private paused: Promise<void> | undefined;
  private release: (() => void) | undefined;
  private drained: (() => void) | undefined;
  /** Pauses queue behind one another. */
  private pauseChain: Promise<void> = Promise.resolve();

  /** Counts the caller in at once unless paused (then it must `await enter()`): no promise on the I/O path. */
  tryEnter(): boolean {
    if (this.paused !== undefined) return false;
    this.inFlight++;
    return true;
  }

  /** Waits while paused, then counts the caller in. */
  async enter(): Promise<void> {
    while (this.paused !== undefined) await this.paused;
    this.inFlight++;
  }

  leave(): void {
    this.inFlight--;
    if (this.inFlight === 0 && this.drained !== undefined) {
      const drained = this.drained;
      this.drained = undefined;
      drained();
    }
  }

  /** Stops new I/O and resolves once the I/O in flight has left. Pauses are taken one at a time. */
  async pause(): Promise<void> {
    const previous = this.pauseChain;
    let done!: () => void;
    this.pauseChain = new Promise((resolve) => {
      done = resolve;
    });
    await previous;
    this.paused = new Promise((resolve) => {
      this.release = () => {
        this.paused = undefined;
        this.release = undefined;
        resolve();
        done();
      };
    });
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        this.drained = resolve;
      });
    }
  }

  resume(): void {
    this.release?.();
  }
}
