/**
 * Supervision of the NFS server with fake servers and a fake clock: back-off delays, the
 * restart budget, the reset after a stable run, failed restarts, and stop.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import {
  DEFAULT_RESTART_POLICY,
  NfsSupervisor,
  type RunningServer,
  restartDecision,
  restartDelayMs,
  type SupervisorState,
} from '../../../src/share-manager/supervisor.ts';

/** A server the test kills with `die()`. */
interface FakeServer extends RunningServer {
  die(): void;
  stopped: boolean;
}

function fakeServer(pid: number): FakeServer {
  let die!: () => void;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    die = () => resolve({ code: null, signal: 'SIGKILL' });
  });
  const server: FakeServer = {
    pid,
    exited,
    die,
    stopped: false,
    async stop() {
      server.stopped = true;
      die();
      return exited;
    },
  };
  return server;
}

/** A harness: fake clock (sleep advances it), launches that succeed or fail on demand. */
function harness() {
  let nowMs = 1_000_000;
  const sleeps: number[] = [];
  const servers: FakeServer[] = [];
  const states: SupervisorState[] = [];
  const failures: unknown[] = [];
  const launchFailures: boolean[] = [];
  let launched: () => void = () => {};
  const supervisor = new NfsSupervisor({
    async launch() {
      if (launchFailures.shift() === true) throw new Error('ganesha exited before its export answered');
      const server = fakeServer(100 + servers.length);
      servers.push(server);
      queueMicrotask(() => launched());
      return server;
    },
    log: silentLogger,
    clock: {
      now: () => nowMs,
      async sleep(milliseconds, signal) {
        if (signal.aborted) return;
        sleeps.push(milliseconds);
        nowMs += milliseconds;
      },
    },
    onStateChange: (state) => states.push(state),
    onFailed: (error) => failures.push(error),
  });
  return {
    supervisor,
    sleeps,
    servers,
    states,
    failures,
    launchFailures,
    advance(milliseconds: number) {
      nowMs += milliseconds;
    },
    /** Resolves after the next successful launch. */
    nextLaunch: () =>
      new Promise<void>((resolve) => {
        launched = resolve;
      }),
    settle: () => new Promise((resolve) => setImmediate(resolve)),
  };
}

describe('restart policy', () => {
  it('doubles the delay from 0.5 s up to 10 s', () => {
    const delays = [1, 2, 3, 4, 5, 6, 7].map((count) => restartDelayMs(count, DEFAULT_RESTART_POLICY));
    assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
  });

  it('gives up at the fifth failure within a minute, counting only the window', () => {
    const now = 500_000;
    const four = [now - 40_000, now - 30_000, now - 20_000, now - 10_000];
    assert.deepEqual(restartDecision(four, 4, now, DEFAULT_RESTART_POLICY), {
      action: 'restart',
      delayMs: 4_000,
    });
    assert.deepEqual(restartDecision([...four, now], 5, now, DEFAULT_RESTART_POLICY), {
      action: 'give-up',
      failures: 5,
    });
    const old = [now - 90_000, now - 80_000, now - 70_000, now - 10_000, now];
    assert.equal(restartDecision(old, 5, now, DEFAULT_RESTART_POLICY).action, 'restart');
  });
});

describe('NfsSupervisor', () => {
  it('restarts a server that dies, after the initial back-off', async () => {
    const test = harness();
    await test.supervisor.start();
    assert.equal(test.supervisor.state, 'running');
    const restarted = test.nextLaunch();
    test.servers[0].die();
    await restarted;
    await test.settle();
    assert.deepEqual(test.sleeps, [500]);
    assert.equal(test.servers.length, 2);
    assert.equal(test.supervisor.pid, 101);
    assert.equal(test.supervisor.restarts, 1);
    assert.deepEqual(test.states, ['starting', 'running', 'restarting', 'running']);
    await test.supervisor.stop();
    assert.ok(test.servers[1].stopped);
    assert.equal(test.supervisor.state, 'stopped');
  });

  it('backs off exponentially and gives up with SHARE_MANAGER_NFS_FAILED at the budget', async () => {
    const test = harness();
    await test.supervisor.start();
    for (let index = 0; index < 4; index++) {
      const restarted = test.nextLaunch();
      test.servers[index].die();
      await restarted;
    }
    test.servers[4].die();
    await test.settle();
    assert.deepEqual(test.sleeps, [500, 1_000, 2_000, 4_000]);
    assert.equal(test.failures.length, 1);
    assert.ok(isHornbillError(test.failures[0], 'SHARE_MANAGER_NFS_FAILED'));
    assert.equal(test.supervisor.state, 'failed');
    assert.equal(test.servers.length, 5, 'no launch after giving up');
    await test.supervisor.stop();
    assert.equal(test.supervisor.state, 'failed');
  });

  it('resets the back-off after a stable run', async () => {
    const test = harness();
    await test.supervisor.start();
    let restarted = test.nextLaunch();
    test.servers[0].die();
    await restarted;
    await test.settle();
    test.advance(DEFAULT_RESTART_POLICY.stableRunMs);
    restarted = test.nextLaunch();
    test.servers[1].die();
    await restarted;
    assert.deepEqual(test.sleeps, [500, 500]);
    await test.supervisor.stop();
  });

  it('counts a failed restart as a failure and tries again', async () => {
    const test = harness();
    await test.supervisor.start();
    test.launchFailures.push(true, true);
    const restarted = test.nextLaunch();
    test.servers[0].die();
    await restarted;
    await test.settle();
    assert.deepEqual(test.sleeps, [500, 1_000, 2_000]);
    assert.equal(test.supervisor.restarts, 3);
    assert.equal(test.supervisor.state, 'running');
    await test.supervisor.stop();
  });

  it('fails the first start without retrying', async () => {
    const test = harness();
    test.launchFailures.push(true);
    await assert.rejects(test.supervisor.start(), /before its export answered/);
    assert.equal(test.supervisor.state, 'failed');
    assert.deepEqual(test.sleeps, []);
  });

  it('does not restart a server stopped on purpose', async () => {
    const test = harness();
    await test.supervisor.start();
    await test.supervisor.stop();
    await test.settle();
    assert.equal(test.servers.length, 1);
    assert.ok(test.servers[0].stopped);
    assert.deepEqual(test.sleeps, []);
    assert.deepEqual(test.states, ['starting', 'running', 'stopping', 'stopped']);
  });
});
