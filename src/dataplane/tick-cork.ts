import type { ByteStream } from './protocol/in-thread-link.ts';

type Socket = Pick<ByteStream, 'cork' | 'uncork'>;

/**
 * Holds a socket's writes until the current tick's work is done, so that the replies (or
 * requests) produced together — completions that arrive in one batch at queue depth 32 —
 * leave in one `writev` instead of one system call each. `hold()` corks once per tick and
 * schedules the uncork with `process.nextTick`, which runs after the promise jobs of the
 * batch: a reply waits for nothing but the code already running. Nested
 * `cork()`/`uncork()` pairs inside stay correct (the socket counts them).
 *
 * ```ts
 * const cork = new TickCork(socket);
 * cork.hold();
 * socket.write(reply); // leaves with the others written this tick
 * ```
 */
export class TickCork {
  private held = false;
  private socket: Socket | undefined;
  private readonly release = (): void => {
    this.held = false;
    this.socket?.uncork();
  };

  constructor(socket?: Socket) {
    this.socket = socket;
  }

  /** The socket to hold (for owners that connect after construction). */
  attach(socket: Socket): void {
    this.socket = socket;
  }

  hold(): void {
    if (this.held || this.socket === undefined) return;
    this.held = true;
    this.socket.cork();
    process.nextTick(this.release);
  }
}
