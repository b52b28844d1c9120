/**
 * Worker count 0: the one lane of an IoChannel served on the calling thread by the same
 * RequestServer a worker would run, pumped from `submit` and from the handler's completions.
 */
import { type IoHandler, loadHandler } from './io-protocol.ts';
import type { Lane } from './lane.ts';
import type { PayloadSlab } from './payload-slab.ts';
import { RequestServer } from './request-server.ts';

/** Inline pump runs allowed between two event-loop turns (see `schedule`). */
const INLINE_RUNS_PER_TURN = 64;

export class InlineLane {
  private readonly drainCompletions: () => void;
  private handler: IoHandler | undefined;
  private server: RequestServer | undefined;
  private closed = false;
  private pumpScheduled = false;
  private depth = 0;
  private runsThisTurn = 0;
  private turnMarkScheduled = false;

  private constructor(drainCompletions: () => void) {
    this.drainCompletions = drainCompletions;
  }

  /** Loads the handler (`inline: true`) and serves `lane` on this thread. */
  static async start(options: {
    handlerModuleUrl: string;
    handlerData: unknown;
    slab: PayloadSlab;
    lane: Lane;
    drainCompletions: () => void;
  }): Promise<InlineLane> {
    const inline = new InlineLane(options.drainCompletions);
    const handler = await loadHandler(options.handlerModuleUrl, {
      workerIndex: 0,
      inline: true,
      slab: options.slab,
      handlerData: options.handlerData,
    });
    inline.handler = handler;
    inline.server = new RequestServer(options.lane, options.slab, handler, inline.schedule);
    return inline;
  }

  /** Stops pumping and closes the handler. */
  async close(): Promise<void> {
    this.closed = true;
    await this.handler?.close?.();
  }

  /**
   * Serves the published requests, then drains the completions. It runs at once from
   * `submit` and from a handler's completion — no event-loop turn in between, so inline mode
   * adds no latency to an I/O — except that after INLINE_RUNS_PER_TURN runs without an
   * event-loop turn it waits for one (setImmediate): a caller that resubmits from its
   * completion must not starve sockets and timers.
   */
  readonly schedule = (): void => {
    // Called while the pump serves (a handler that completed synchronously): the running
    // pump drains the completions when it has served.
    if (this.depth > 0) return;
    if (this.runsThisTurn < INLINE_RUNS_PER_TURN) {
      this.runsThisTurn++;
      if (!this.turnMarkScheduled) {
        this.turnMarkScheduled = true;
        setImmediate(this.markTurn);
      }
      this.pump();
      return;
    }
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(this.scheduledPump);
  };

  private readonly pump = (): void => {
    if (this.closed) return;
    this.depth++;
    try {
      this.server?.serveAvailable();
    } finally {
      this.depth--;
    }
    this.drainCompletions();
  };

  private readonly scheduledPump = (): void => {
    this.pumpScheduled = false;
    this.pump();
  };

  private readonly markTurn = (): void => {
    this.turnMarkScheduled = false;
    this.runsThisTurn = 0;
  };
}
