/**
 * A doorbell: two adjacent 32-bit words in shared memory that let a thread sleep until
 * another thread has made some condition true (a ring became non-empty, a slot became
 * free, a completion arrived), without losing a wake-up and without a system call on the
 * signalling side while nobody sleeps.
 *
 *   words[sequenceIndex]      kDoorbellSequenceField: bumped by a signaller when a sleeper exists
 *   words[sequenceIndex + 1]  kDoorbellSleepersField: number of threads between announce and wake
 *
 * Protocol (every access below is an Atomics operation, and all Atomics operations on
 * shared memory are sequentially consistent in the ECMAScript memory model, so they fall
 * into one total order that every thread agrees on):
 *
 *   sleeper                                   signaller
 *   S1 observed = load(sequence)              G1 make the condition true (an Atomics store)
 *   S2 add(sleepers, 1)                       G2 if load(sleepers) > 0:
 *   S3 if condition(): sub(sleepers,1); done  G3     add(sequence, 1)
 *   S4 wait(sequence, observed)               G4     notify(sequence)
 *   S5 sub(sleepers, 1); go back to the caller's loop
 *
 * Why no wake-up is lost: suppose the sleeper reaches S4 and sleeps although G1 happened.
 * S3 did not see G1, so S3 precedes G1 in the total order; S2 precedes S3 (program order),
 * and G1 precedes G2, so S2 precedes G2: the signaller sees sleepers > 0 and does G3 and G4.
 * Atomics.wait compares the sequence word with `observed` and queues the sleeper inside one
 * critical section that Atomics.notify also takes. If G3 came before that comparison, the
 * comparison fails ("not-equal") and S4 returns at once; if it came after, the sleeper is
 * already queued when G4 runs and is woken. Either way S4 returns. The same holds for
 * Atomics.waitAsync, which does the comparison and queues its waiter synchronously, in the
 * call itself. The sequence is a 32-bit counter: S1..S4 would have to straddle exactly 2^32
 * signals to be fooled, and the window is a few instructions long.
 *
 * A signaller that sees no sleeper skips G3/G4 (one load on the hot path). Spurious wake-ups
 * are possible (a signal meant for another condition on the same doorbell), so callers
 * always re-check their condition in a loop.
 */

/** Word offsets inside a doorbell, relative to its first word. */
export const kDoorbellSequenceField = 0;
export const kDoorbellSleepersField = 1;
/** Words one doorbell occupies. */
export const kDoorbellWords = 2;

export class Doorbell {
  readonly words: Int32Array;
  readonly sequenceIndex: number;
  readonly sleepersIndex: number;

  constructor(words: Int32Array, firstIndex: number) {
    this.words = words;
    this.sequenceIndex = firstIndex + kDoorbellSequenceField;
    this.sleepersIndex = firstIndex + kDoorbellSleepersField;
  }

  /** Sets both words to zero. Only while no thread uses the doorbell (creation, reset). */
  reset(): void {
    Atomics.store(this.words, this.sequenceIndex, 0);
    Atomics.store(this.words, this.sleepersIndex, 0);
  }

  /**
   * G2-G4: wake every sleeper if there is one. Call after the Atomics store that made the
   * condition true. Waking all (not one) keeps the argument simple when several conditions
   * or several kinds of waiter (blocking and async) share a doorbell; the thread counts here
   * are small (a handful of workers), so the herd is small.
   */
  ring(): void {
    // G2, sequentially consistent load: ordered after the caller's G1 store (see above).
    if (Atomics.load(this.words, this.sleepersIndex) === 0) return;
    // G3: a sleeper between S1 and S4 now fails its comparison instead of sleeping.
    Atomics.add(this.words, this.sequenceIndex, 1);
    // G4: wakes sleepers already queued by Atomics.wait / Atomics.waitAsync.
    Atomics.notify(this.words, this.sequenceIndex);
  }

  /** Wakes all sleepers unconditionally (used for close and stop, where the flag is the condition). */
  ringAlways(): void {
    Atomics.add(this.words, this.sequenceIndex, 1);
    Atomics.notify(this.words, this.sequenceIndex);
  }

  /** S1: the value to hand to `sleep` / `sleepAsync` after `announce` and the re-check. */
  observe(): number {
    return Atomics.load(this.words, this.sequenceIndex);
  }

  /** S2: announce a sleeper. Must be followed by `withdraw` on every path. */
  announce(): void {
    Atomics.add(this.words, this.sleepersIndex, 1);
  }

  /** S5 (or the early exit of S3). */
  withdraw(): void {
    Atomics.sub(this.words, this.sleepersIndex, 1);
  }

  /**
   * S4, blocking: for worker threads only. Node would allow Atomics.wait on the main thread
   * too, but the main thread runs the frontend's event loop and must never block, so
   * Hornbill calls `sleepAsync` there. Returns when signalled, on a spurious wake-up, or
   * after `timeoutMs` (Infinity: no timeout).
   */
  sleep(observed: number, timeoutMs: number): void {
    Atomics.wait(this.words, this.sequenceIndex, observed, timeoutMs);
  }

  /**
   * S4, asynchronous: resolves when signalled (or at once if the sequence already moved).
   * Allocates one promise per sleep, never per operation. A pending waitAsync does not keep
   * the Node event loop alive.
   */
  sleepAsync(observed: number): Promise<unknown> | undefined {
    const result = Atomics.waitAsync(this.words, this.sequenceIndex, observed);
    return result.async ? result.value : undefined;
  }

  /**
   * Blocks the calling worker thread until `condition()` holds: `spinLimit` checks first,
   * then S1-S5 in a loop. `condition` must read the shared state with Atomics loads, and
   * every store that can make it true must be followed by `ring()` (or `ringAlways()`).
   * Pass a function bound once, not a new closure per call, on hot paths.
   */
  waitUntil(condition: () => boolean, spinLimit: number): void {
    for (let round = 0; round < spinLimit; round++) if (condition()) return;
    // Each round sleeps until a signal; it ends when the condition holds (the loop has no
    // count bound by nature: it waits for another thread, as Atomics.wait does).
    while (!condition()) {
      const observed = this.observe(); // S1
      this.announce(); // S2
      if (condition()) {
        this.withdraw(); // S3: already true, no sleep
        return;
      }
      this.sleep(observed, Number.POSITIVE_INFINITY); // S4
      this.withdraw(); // S5
    }
  }

  /** `waitUntil` without blocking the thread (Atomics.waitAsync); one promise per sleep. */
  async whenTrue(condition: () => boolean): Promise<void> {
    while (!condition()) {
      const observed = this.observe(); // S1
      this.announce(); // S2
      if (condition()) {
        this.withdraw(); // S3
        return;
      }
      const sleeping = this.sleepAsync(observed); // S4
      // The waitAsync promise never rejects, so withdraw always runs.
      if (sleeping !== undefined) await sleeping;
      this.withdraw(); // S5
    }
  }
}
