/**
 * Leader election (src/resources/leader-election.ts): the pure decisions, then electors on a
 * fake clock sharing a tiny in-memory Lease (the narrow LeaseClient interface: get, create,
 * conditional update), and the Lease object mapping of kubernetes-lease.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HornbillError, isHornbillError } from '../../../src/errors.ts';
import {
  checkTiming,
  DEFAULT_LEADER_ELECTION_TIMING,
  decideLeaseAction,
  type ElectionClock,
  isLeaseExpired,
  LeaderElector,
  type LeaseClient,
  type LeaseRecord,
  leaseFor,
  nextAttemptAtMs,
  observe,
  releasedLease,
  renewDeadlinePassed,
} from '../../../src/resources/leader-election.ts';
import {
  formatMicroTime,
  leaseObject,
  leaseRecordOf,
  parseLeaseTime,
} from '../../../src/resources/store/kubernetes-lease.ts';

const timing = DEFAULT_LEADER_ELECTION_TIMING;

function record(
  holderIdentity: string,
  resourceVersion: string,
  extra: Partial<LeaseRecord> = {},
): LeaseRecord {
  return { holderIdentity, leaseDurationSeconds: 15, leaseTransitions: 0, resourceVersion, ...extra };
}

describe('decisions', () => {
  test('defaults: lease 15 s, renew every 5 s, deadline 10 s, retry 2 s; bad timings are refused', () => {
    assert.deepEqual(timing, {
      leaseDurationMs: 15_000,
      renewPeriodMs: 5_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    assert.deepEqual(checkTiming(timing), timing);
    for (const bad of [
      { ...timing, renewDeadlineMs: 15_000 },
      { ...timing, renewPeriodMs: 10_000 },
      { ...timing, retryPeriodMs: 0 },
      { ...timing, leaseDurationMs: 15_500 },
    ]) {
      assert.throws(
        () => checkTiming(bad),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
      );
    }
  });

  test('an observation keeps its time while the resourceVersion stays', () => {
    const first = observe(undefined, record('a', '1'), 1_000);
    assert.equal(first.observedAtMs, 1_000);
    assert.equal(observe(first, record('a', '1'), 9_000).observedAtMs, 1_000);
    assert.equal(observe(first, record('a', '2'), 9_000).observedAtMs, 9_000);
  });

  test('expiry counts from when we saw the Lease change, by our clock, not from its renewTime', () => {
    // A renewTime far in the past (another host's clock) does not matter.
    const seen = observe(undefined, record('a', '1', { renewTimeMs: 0 }), 100_000);
    assert.equal(isLeaseExpired(seen, 100_000), false);
    assert.equal(isLeaseExpired(seen, 114_999), false);
    assert.equal(isLeaseExpired(seen, 115_000), true);
    assert.equal(isLeaseExpired(observe(undefined, record('', '1'), 0), 0), true, 'released');
  });

  test('what to do with the Lease', () => {
    assert.equal(decideLeaseAction('me', undefined, 0), 'create');
    assert.equal(decideLeaseAction('me', observe(undefined, record('me', '1'), 0), 1), 'renew');
    const other = observe(undefined, record('other', '1'), 0);
    assert.equal(decideLeaseAction('me', other, 14_999), 'wait');
    assert.equal(decideLeaseAction('me', other, 15_000), 'take-over');
    assert.equal(decideLeaseAction('me', observe(undefined, record('', '2'), 0), 0), 'take-over');
  });

  test('the Lease we write: renewals keep acquireTime, take-overs count transitions', () => {
    assert.deepEqual(leaseFor('me', 'create', undefined, 1_000, 15_000), {
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTimeMs: 1_000,
      renewTimeMs: 1_000,
      leaseTransitions: 0,
    });
    const mine = record('me', '3', { acquireTimeMs: 1_000, renewTimeMs: 5_000, leaseTransitions: 2 });
    assert.deepEqual(leaseFor('me', 'renew', mine, 9_000, 15_000), {
      holderIdentity: 'me',
      leaseDurationSeconds: 15,
      acquireTimeMs: 1_000,
      renewTimeMs: 9_000,
      leaseTransitions: 2,
    });
    const taken = leaseFor('me', 'take-over', record('other', '4', { leaseTransitions: 2 }), 20_000, 15_000);
    assert.equal(taken.leaseTransitions, 3);
    assert.equal(taken.acquireTimeMs, 20_000);
    const released = releasedLease(mine, 30_000);
    assert.equal(released.holderIdentity, '');
    assert.equal(released.leaseDurationSeconds, 1);
    assert.equal(released.resourceVersion, '3');
  });

  test('when to try next, and when a leader must step down', () => {
    assert.equal(
      nextAttemptAtMs({ leading: false, lastRenewMs: 0, lastAttemptSucceeded: false }, 7_000, timing),
      9_000,
    );
    assert.equal(
      nextAttemptAtMs({ leading: true, lastRenewMs: 7_000, lastAttemptSucceeded: true }, 7_100, timing),
      12_000,
    );
    assert.equal(
      nextAttemptAtMs({ leading: true, lastRenewMs: 7_000, lastAttemptSucceeded: false }, 12_000, timing),
      14_000,
    );
    assert.equal(
      nextAttemptAtMs({ leading: true, lastRenewMs: 7_000, lastAttemptSucceeded: false }, 16_500, timing),
      17_000,
    );
    assert.equal(renewDeadlinePassed(7_000, 16_999, timing), false);
    assert.equal(renewDeadlinePassed(7_000, 17_000, timing), true);
    assert.ok(
      timing.renewDeadlineMs < timing.leaseDurationMs,
      'a leader steps down before others may take over',
    );
  });
});

// --- Electors on a fake clock -----------------------------------------------------------------

class FakeClock implements ElectionClock {
  nowMs = 1_000_000;
  private sleepers: { at: number; resolve: () => void }[] = [];

  now(): number {
    return this.nowMs;
  }

  sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const sleeper = { at: this.nowMs + milliseconds, resolve };
      this.sleepers.push(sleeper);
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Moves time forward in 100 ms steps, letting every woken elector run in between. */
  async advance(milliseconds: number): Promise<void> {
    const end = this.nowMs + milliseconds;
    while (this.nowMs < end) {
      this.nowMs = Math.min(end, this.nowMs + 100);
      const due = this.sleepers.filter((sleeper) => sleeper.at <= this.nowMs);
      this.sleepers = this.sleepers.filter((sleeper) => sleeper.at > this.nowMs);
      for (const sleeper of due) sleeper.resolve();
      await settle();
    }
  }
}

async function settle(): Promise<void> {
  for (let index = 0; index < 20; index++) await new Promise((resolve) => setImmediate(resolve));
}

/** One Lease in memory with the API server's optimistic concurrency; `down` fails calls of a holder. */
class MemoryLease {
  current: LeaseRecord | undefined;
  private version = 0;
  readonly down = new Set<string>();
  /** Requests of these holders never answer (an API server that accepts and stalls). */
  readonly hung = new Set<string>();

  clientFor(identity: string): LeaseClient {
    const check = async () => {
      if (this.hung.has(identity)) await new Promise(() => {});
      if (this.down.has(identity)) {
        throw new HornbillError('KUBERNETES_UNREACHABLE', `${identity} is cut off`, { status: 0 });
      }
    };
    return {
      get: async () => {
        await check();
        return this.current === undefined ? undefined : { ...this.current };
      },
      create: async (spec) => {
        await check();
        if (this.current !== undefined) throw new HornbillError('RESOURCE_ALREADY_EXISTS', 'exists', {});
        this.current = { ...spec, resourceVersion: String(++this.version) };
        return { ...this.current };
      },
      update: async (next) => {
        await check();
        if (this.current === undefined || this.current.resourceVersion !== next.resourceVersion) {
          throw new HornbillError('RESOURCE_CONFLICT', 'modified', {});
        }
        this.current = { ...next, resourceVersion: String(++this.version) };
        return { ...this.current };
      },
    };
  }
}

/** The timeline of who leads: start and stop times per identity. */
class Timeline {
  readonly entries: { identity: string; event: 'started' | 'stopped'; atMs: number }[] = [];
  private readonly clock: FakeClock;

  constructor(clock: FakeClock) {
    this.clock = clock;
  }

  elector(lease: MemoryLease, identity: string): LeaderElector {
    return new LeaderElector({
      lease: lease.clientFor(identity),
      identity,
      clock: this.clock,
      onStartedLeading: () => {
        this.entries.push({ identity, event: 'started', atMs: this.clock.nowMs });
      },
      onStoppedLeading: () => {
        this.entries.push({ identity, event: 'stopped', atMs: this.clock.nowMs });
      },
    });
  }

  /** At no moment do two identities lead. */
  assertNoOverlap(): void {
    const leading = new Set<string>();
    for (const entry of this.entries) {
      if (entry.event === 'started') {
        assert.equal(leading.size, 0, `${entry.identity} started while ${[...leading].join()} led`);
        leading.add(entry.identity);
      } else {
        leading.delete(entry.identity);
      }
    }
  }
}

describe('LeaderElector', () => {
  test('one of two candidates leads and renews; the other waits', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    const timeline = new Timeline(clock);
    const a = timeline.elector(lease, 'a');
    const b = timeline.elector(lease, 'b');
    a.start();
    await settle();
    b.start();
    await clock.advance(60_000);
    assert.equal(a.isLeader, true);
    assert.equal(b.isLeader, false);
    assert.equal(b.leader, 'a');
    assert.equal(lease.current?.holderIdentity, 'a');
    assert.equal(lease.current?.leaseDurationSeconds, 15);
    assert.ok((lease.current?.renewTimeMs ?? 0) >= clock.nowMs - timing.renewPeriodMs, 'renewed every 5 s');
    await b.stop();
    await a.stop();
    timeline.assertNoOverlap();
  });

  test('stop() steps down first, then releases: the other takes over within a retry period', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    const timeline = new Timeline(clock);
    const a = timeline.elector(lease, 'a');
    a.start();
    await settle();
    const b = timeline.elector(lease, 'b');
    b.start();
    await clock.advance(10_000);
    const stoppedAt = clock.nowMs;
    await a.stop();
    assert.equal(lease.current?.holderIdentity, '');
    assert.deepEqual(timeline.entries.at(-1), { identity: 'a', event: 'stopped', atMs: stoppedAt });
    await clock.advance(timing.retryPeriodMs + 100);
    assert.equal(b.isLeader, true);
    assert.ok(clock.nowMs - stoppedAt <= timing.retryPeriodMs + 100);
    await b.stop();
    timeline.assertNoOverlap();
  });

  test('a leader cut off from the API server steps down before anyone takes over', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    const timeline = new Timeline(clock);
    const a = timeline.elector(lease, 'a');
    a.start();
    await settle();
    const b = timeline.elector(lease, 'b');
    b.start();
    await clock.advance(7_000);
    const lastRenew = lease.current?.renewTimeMs ?? 0;
    lease.down.add('a');
    await clock.advance(30_000);
    const stopped = timeline.entries.find((entry) => entry.identity === 'a' && entry.event === 'stopped');
    const started = timeline.entries.find((entry) => entry.identity === 'b' && entry.event === 'started');
    assert.ok(stopped !== undefined && started !== undefined);
    assert.ok(
      stopped.atMs <= lastRenew + timing.renewDeadlineMs + 100,
      `a stopped at +${stopped.atMs - lastRenew} ms`,
    );
    assert.ok(
      started.atMs >= lastRenew + timing.leaseDurationMs,
      `b started at +${started.atMs - lastRenew} ms`,
    );
    assert.ok(stopped.atMs < started.atMs);
    assert.equal(lease.current?.leaseTransitions, 1);
    timeline.assertNoOverlap();
    lease.down.delete('a');
    await clock.advance(10_000);
    assert.equal(a.isLeader, false, 'the old leader comes back as a candidate');
    await a.stop();
    await b.stop();
  });

  test('a leader whose Lease requests hang steps down at the renew deadline', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    const timeline = new Timeline(clock);
    const a = timeline.elector(lease, 'a');
    a.start();
    await settle();
    const b = timeline.elector(lease, 'b');
    b.start();
    await clock.advance(6_000);
    const lastRenew = lease.current?.renewTimeMs ?? 0;
    lease.hung.add('a');
    await clock.advance(30_000);
    const stopped = timeline.entries.find((entry) => entry.identity === 'a' && entry.event === 'stopped');
    const started = timeline.entries.find((entry) => entry.identity === 'b' && entry.event === 'started');
    assert.ok(stopped !== undefined && started !== undefined);
    assert.ok(
      stopped.atMs <= lastRenew + timing.renewDeadlineMs + 100,
      `a stopped at +${stopped.atMs - lastRenew} ms`,
    );
    assert.ok(started.atMs >= lastRenew + timing.leaseDurationMs);
    timeline.assertNoOverlap();
    await a.stop(); // returns although its requests still hang
    await b.stop();
  });

  test('a leader that finds another holder in the Lease steps down at once', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    const timeline = new Timeline(clock);
    const a = timeline.elector(lease, 'a');
    a.start();
    await clock.advance(1_000);
    assert.equal(a.isLeader, true);
    const current = lease.current as LeaseRecord;
    await lease.clientFor('intruder').update({ ...current, holderIdentity: 'intruder' });
    await clock.advance(timing.renewPeriodMs + 100);
    assert.equal(a.isLeader, false);
    await a.stop();
    assert.equal(lease.current?.holderIdentity, 'intruder', 'not released: it is not ours');
  });

  test('onStartedLeading gets a signal that aborts when leadership ends', async () => {
    const clock = new FakeClock();
    const lease = new MemoryLease();
    let signal: AbortSignal | undefined;
    const elector = new LeaderElector({
      lease: lease.clientFor('a'),
      identity: 'a',
      clock,
      onStartedLeading: (given) => {
        signal = given;
      },
      onStoppedLeading: () => {},
    });
    elector.start();
    await clock.advance(100);
    assert.equal(signal?.aborted, false);
    await elector.stop();
    assert.equal(signal?.aborted, true);
  });

  test('an empty identity is refused', () => {
    assert.throws(
      () =>
        new LeaderElector({
          lease: new MemoryLease().clientFor('x'),
          identity: '',
          onStartedLeading() {},
          onStoppedLeading() {},
        }),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
    );
  });
});

describe('the Lease object (kubernetes-lease.ts)', () => {
  test('MicroTime text and parsing', () => {
    assert.equal(formatMicroTime(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), '2026-01-02T03:04:05.678000Z');
    assert.equal(parseLeaseTime('2026-01-02T03:04:05.678000Z'), Date.UTC(2026, 0, 2, 3, 4, 5, 678));
    assert.equal(parseLeaseTime(new Date(5)), 5);
    assert.equal(parseLeaseTime(''), undefined);
    assert.equal(parseLeaseTime('garbage'), undefined);
  });

  test('a LeaseSpec becomes a coordination.k8s.io/v1 Lease and back', () => {
    const object = leaseObject(
      'hornbill-manager',
      'hornbill-system',
      {
        holderIdentity: 'pod-a',
        leaseDurationSeconds: 15,
        acquireTimeMs: 1_000,
        renewTimeMs: 2_000,
        leaseTransitions: 3,
      },
      '77',
    );
    assert.deepEqual(object, {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: 'hornbill-manager', namespace: 'hornbill-system', resourceVersion: '77' },
      spec: {
        holderIdentity: 'pod-a',
        leaseDurationSeconds: 15,
        leaseTransitions: 3,
        acquireTime: '1970-01-01T00:00:01.000000Z',
        renewTime: '1970-01-01T00:00:02.000000Z',
      },
    });
    assert.deepEqual(leaseRecordOf(object), {
      holderIdentity: 'pod-a',
      leaseDurationSeconds: 15,
      leaseTransitions: 3,
      resourceVersion: '77',
      acquireTimeMs: 1_000,
      renewTimeMs: 2_000,
    });
    assert.deepEqual(leaseRecordOf({ metadata: { resourceVersion: '1' }, spec: {} }), {
      holderIdentity: '',
      leaseDurationSeconds: 0,
      leaseTransitions: 0,
      resourceVersion: '1',
    });
  });
});
