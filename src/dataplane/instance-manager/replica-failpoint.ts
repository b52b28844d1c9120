/**
 * The test-only replica failpoint of an instance manager (HORNBILL_INSTANCE_FAILPOINT,
 * see InstanceManagerOptions.failpoint): checked when the manager starts, then handed
 * once to the first thread started for the replica it names.
 */
import { HornbillError } from '../../errors.ts';
import type { ReplicaFailpoint } from './replica-thread.ts';

const FAILPOINT = /^replica-(crash|hang)-on-write:([^:]+):(\d+)$/;

/** Throws INVALID_ARGUMENT when `failpoint` is given but is not a known failpoint. */
export function checkFailpoint(failpoint: string | undefined): void {
  if ((failpoint ?? '') !== '' && !FAILPOINT.test(failpoint!)) {
    throw new HornbillError('INVALID_ARGUMENT', `failpoint ${JSON.stringify(failpoint)} is not known`, {
      expected: 'replica-crash-on-write:<replica>:<offset> or replica-hang-on-write:<replica>:<offset>',
    });
  }
}

/** The failpoint of one instance manager until a replica thread takes it. */
export class ReplicaWriteFailpoint {
  private failpoint: { replica: string; armed: ReplicaFailpoint } | undefined;

  constructor(option: string | undefined) {
    const failpoint = option === undefined ? null : FAILPOINT.exec(option);
    if (failpoint !== null) {
      const kind = failpoint[1] === 'hang' ? 'hang' : 'crash';
      this.failpoint = { replica: failpoint[2], armed: { kind, offsetBytes: Number(failpoint[3]) } };
    }
  }

  /** Whether a failpoint is armed and not taken yet. */
  get isArmed(): boolean {
    return this.failpoint !== undefined;
  }

  /** The failpoint for a thread of `replica`, at most once; undefined for any other replica. */
  take(replica: string): ReplicaFailpoint | undefined {
    if (this.failpoint === undefined || this.failpoint.replica !== replica) return undefined;
    const armed = this.failpoint.armed;
    this.failpoint = undefined;
    return armed;
  }
}
