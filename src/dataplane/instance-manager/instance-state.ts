import { HornbillError } from '../../errors.ts';
import type { InstanceState } from './types.ts';

/**
 * The lifecycle of an engine or replica instance:
 *
 * ```
 *   (created) ──▶ starting ──▶ running ──▶ stopping ──▶ stopped ──▶ starting …
 *                    │            │            │
 *                    └──▶ error ◀─┘            └──▶ error
 *   error ──▶ starting (start again)      error ──▶ stopped (stop: nothing left to stop)
 * ```
 *
 * `error` is entered when a start fails or when a running instance's thread dies; the
 * instance keeps its spec, its port and its folder, so that it can be started again.
 * Deleting is stop + forget, from any state.
 */
const TRANSITIONS: Record<InstanceState, readonly InstanceState[]> = {
  starting: ['running', 'error'],
  running: ['stopping', 'error'],
  stopping: ['stopped', 'error'],
  stopped: ['starting'],
  error: ['starting', 'stopped'],
};

export const INSTANCE_STATES: readonly InstanceState[] = Object.keys(TRANSITIONS) as InstanceState[];

export function canTransition(from: InstanceState, to: InstanceState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A transition the lifecycle does not allow is a bug in the instance manager. */
export function assertTransition(name: string, from: InstanceState, to: InstanceState): void {
  if (!canTransition(from, to)) {
    throw new HornbillError('INTERNAL', `instance ${name}: no transition from ${from} to ${to}`, {
      name,
      from,
      to,
    });
  }
}

/**
 * Runs operations one after another (start, stop, delete and failure clean-up of one
 * instance never interleave). An operation that fails does not stop the ones after it.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;

  get length(): number {
    return this.pending;
  }

  run<T>(operation: () => Promise<T>): Promise<T> {
    this.pending++;
    const result = this.tail.then(operation, operation);
    const settled = result.then(
      () => {
        this.pending--;
      },
      () => {
        this.pending--;
      },
    );
    this.tail = settled;
    return result;
  }

  /** Resolves once every operation queued so far has settled. */
  idle(): Promise<void> {
    return this.tail.then(() => undefined);
  }
}
