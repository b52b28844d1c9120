import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A token bucket for rebuild traffic: `take(bytes)` waits until the bytes fit in the rate.
 * The bucket holds at most one second of tokens, so a pause is not followed by a burst
 * larger than a second's worth. A rate of 0 means no limit. The bucket starts full, or with
 * `initialTokens` (0: the first bytes already wait for their share of the rate — for a
 * limiter made per request, which would otherwise let every request burst).
 */
export class BandwidthLimiter {
  private readonly bytesPerSecond: number;
  private tokens: number;
  private last = performance.now();

  constructor(bytesPerSecond: number, initialTokens = bytesPerSecond) {
    this.bytesPerSecond = bytesPerSecond;
    this.tokens = Math.min(initialTokens, bytesPerSecond);
  }

  async take(bytes: number): Promise<void> {
    if (this.bytesPerSecond <= 0) return;
    for (;;) {
      const now = performance.now();
      this.tokens = Math.min(
        this.bytesPerSecond,
        this.tokens + ((now - this.last) / 1000) * this.bytesPerSecond,
      );
      this.last = now;
      if (this.tokens >= bytes || this.tokens >= this.bytesPerSecond) {
        this.tokens -= bytes;
        return;
      }
      await sleep(Math.ceil(((bytes - this.tokens) / this.bytesPerSecond) * 1000));
    }
  }
}
