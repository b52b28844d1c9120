/**
 * Test harness for IoChannel: opens a channel on fixtures/test-handler.ts, records every
 * completion and worker exit, closes the channel when the test ends.
 */
import type { TestContext } from 'node:test';
import {
  IoChannel,
  type IoChannelOptions,
  type WorkerExitEvent,
} from '../../../../src/dataplane/workers/io-channel.ts';
import type { IoRequestFields } from '../../../../src/dataplane/workers/io-protocol.ts';
import type { ErrorCode } from '../../../../src/errors.ts';
import type { TestHandlerData } from './fixtures/test-handler.ts';

export const TEST_HANDLER = new URL('./fixtures/test-handler.ts', import.meta.url);

export interface Outcome {
  errorCode: ErrorCode | undefined;
  value: number;
}

export interface ChannelHarness {
  channel: IoChannel;
  outcomes: Map<number, Outcome>;
  exits: WorkerExitEvent[];
  /** Called after the outcome is recorded (payload inspection, chunk free). */
  afterCompletion: (requestId: number, outcome: Outcome) => void;
  openGate(): void;
  closeCounter: Int32Array;
}

export async function openChannel(
  t: TestContext,
  options: Partial<IoChannelOptions> & { workerCount: number; blocking?: boolean },
): Promise<ChannelHarness> {
  const gate = new SharedArrayBuffer(4);
  const closeCounter = new SharedArrayBuffer(4);
  const handlerData: TestHandlerData = { gate, blocking: options.blocking, closeCounter };
  const harness: Omit<ChannelHarness, 'channel'> & { channel?: IoChannel } = {
    outcomes: new Map<number, Outcome>(),
    exits: [] as WorkerExitEvent[],
    afterCompletion: (_requestId: number, _outcome: Outcome) => {},
    openGate() {
      Atomics.store(new Int32Array(gate), 0, 1);
      Atomics.notify(new Int32Array(gate), 0);
    },
    closeCounter: new Int32Array(closeCounter),
  };
  const channel = await IoChannel.open({
    handlerModule: TEST_HANDLER,
    handlerData,
    onCompletion: (requestId, errorCode, value) => {
      if (harness.outcomes.has(requestId)) throw new Error(`request ${requestId} completed twice`);
      const outcome = { errorCode, value };
      harness.outcomes.set(requestId, outcome);
      harness.afterCompletion(requestId, outcome);
    },
    onWorkerExit: (event) => harness.exits.push(event),
    ...options,
  });
  t.after(() => channel.close({ drain: false }));
  // The same object the callbacks see, so that a test may replace afterCompletion.
  harness.channel = channel;
  return harness as ChannelHarness;
}

export function fields(
  operation: number,
  requestId: number,
  extra: Partial<IoRequestFields> = {},
): IoRequestFields {
  return { operation, offsetBytes: 0, lengthBytes: 0, chunkIndex: -1, requestId, flags: 0, ...extra };
}

/** Polls `condition` every few milliseconds; fails after `timeoutMs`. */
export async function eventually(condition: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
