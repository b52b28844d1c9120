import { assert } from '../../assert.ts';

/**
 * Memory for the responses of one burst of requests (one socket read). Responses are
 * carved out of one buffer with a bump pointer and written to the socket as views; the
 * buffer is reused for the next burst only once the socket has flushed everything it was
 * given (`writableLength === 0`), otherwise a fresh buffer is taken and the old one is
 * freed by the garbage collector when the socket lets go of it. Under steady load the hot
 * path allocates nothing per request.
 */
export class ResponseArena {
  private buffer: Buffer;
  private used = 0;
  /** Largest buffer kept for reuse; a burst needing more gets a one-off buffer. */
  private readonly maxKeepBytes: number;

  constructor(initialBytes = 1024 * 1024, maxKeepBytes = 16 * 1024 * 1024) {
    this.buffer = Buffer.allocUnsafe(initialBytes);
    this.maxKeepBytes = maxKeepBytes;
  }

  /** Starts a burst; `socketIdle` says whether the socket still holds views of the previous one. */
  begin(socketIdle: boolean): void {
    if (!socketIdle) this.buffer = Buffer.allocUnsafe(this.buffer.length);
    this.used = 0;
  }

  /** `bytes` of memory, 8-byte aligned, valid until the socket has written it. */
  take(bytes: number): Buffer {
    assert(bytes >= 0, 'negative allocation');
    const start = (this.used + 7) & ~7;
    if (start + bytes > this.buffer.length) {
      if (bytes > this.maxKeepBytes / 2) return Buffer.allocUnsafe(bytes);
      // Views already handed out keep the old buffer alive; continue in a bigger one.
      this.buffer = Buffer.allocUnsafe(
        Math.min(this.maxKeepBytes, Math.max(this.buffer.length * 2, bytes * 2)),
      );
      this.used = bytes;
      return this.buffer.subarray(0, bytes);
    }
    this.used = start + bytes;
    return this.buffer.subarray(start, start + bytes);
  }
}
