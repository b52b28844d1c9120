import { HornbillError } from '../../errors.ts';
import { COMPLETION_DESCRIPTOR_WORDS, REQUEST_DESCRIPTOR_WORDS } from './io-protocol.ts';
import { RingQueue } from './ring-queue.ts';

/**
 * A lane is what one worker serves: a request ring (frontend → worker) and a completion ring
 * (worker → frontend), both in one SharedArrayBuffer:
 *
 *   byte 0                    request ring    (capacity slots of REQUEST_DESCRIPTOR_WORDS)
 *   byte completionOffset     completion ring (capacity slots of COMPLETION_DESCRIPTOR_WORDS)
 *
 * Each ring has exactly one producer thread and one consumer thread, and both rings belong
 * to one worker: if the worker dies between a claim and its commit or release, only its own
 * lane is wedged, and the frontend re-initializes that lane for the replacement once the
 * dead thread has exited. (A ring shared by several workers could be wedged for all of them
 * by one death; that is why requests are not taken from one shared ring.)
 *
 * The channel's control buffer holds the completion doorbell the frontend sleeps on; every
 * worker rings it after publishing a completion.
 */
export const kControlCompletionDoorbell = 0; // 2 words: sequence, sleepers (doorbell.ts)
export const CONTROL_BYTES = 64;

export interface Lane {
  readonly buffer: SharedArrayBuffer;
  readonly requests: RingQueue;
  readonly completions: RingQueue;
}

function completionOffset(capacity: number): number {
  return Math.ceil(RingQueue.bytesFor(capacity, REQUEST_DESCRIPTOR_WORDS) / 64) * 64;
}

export function laneBytes(capacity: number): number {
  return completionOffset(capacity) + RingQueue.bytesFor(capacity, COMPLETION_DESCRIPTOR_WORDS);
}

/** Writes two empty rings into `buffer`; only while no other thread uses it. */
export function initializeLane(buffer: SharedArrayBuffer, capacity: number): Lane {
  const requests = RingQueue.initialize(buffer, 0, { capacity, descriptorWords: REQUEST_DESCRIPTOR_WORDS });
  const completions = RingQueue.initialize(buffer, completionOffset(capacity), {
    capacity,
    descriptorWords: COMPLETION_DESCRIPTOR_WORDS,
  });
  return { buffer, requests, completions };
}

export function createLane(capacity: number): Lane {
  return initializeLane(new SharedArrayBuffer(laneBytes(capacity)), capacity);
}

/** Opens a lane created by the frontend; validates both ring headers and their shapes. */
export function attachLane(buffer: SharedArrayBuffer): Lane {
  const requests = RingQueue.attach(buffer, 0);
  if (requests.descriptorWords !== REQUEST_DESCRIPTOR_WORDS) {
    throw new HornbillError('WORKER_BUFFER_INVALID', 'lane request ring has the wrong descriptor size', {
      descriptorWords: requests.descriptorWords,
    });
  }
  const completions = RingQueue.attach(buffer, completionOffset(requests.capacity));
  if (
    completions.descriptorWords !== COMPLETION_DESCRIPTOR_WORDS ||
    completions.capacity !== requests.capacity
  ) {
    throw new HornbillError('WORKER_BUFFER_INVALID', 'lane completion ring does not match its request ring', {
      descriptorWords: completions.descriptorWords,
      capacity: completions.capacity,
    });
  }
  return { buffer, requests, completions };
}

/** A zeroed control buffer: the completion doorbell starts at sequence 0 with no sleepers. */
export function createControlBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_BYTES);
}
