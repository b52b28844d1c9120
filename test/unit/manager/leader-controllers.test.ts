/**
 * LeaderControllers: the controllers run exactly while this replica leads and knows its
 * instance managers; a changed list restarts them (stop before start, never two at once);
 * a resign during a start stops them once the start is done; a failed start is retried;
 * the settings step runs once per leadership term.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RunningControllers } from '../../../src/controllers/index.ts';
import { silentLogger } from '../../../src/logging.ts';
import { LeaderControllers } from '../../../src/manager/leader-controllers.ts';
import type { InstanceManagerEndpoint } from '../../../src/manager/manager.ts';

const nodeA: InstanceManagerEndpoint = {
  nodeID: 'node-a',
  grpcAddress: '10.0.0.21:8500',
  address: '10.0.0.21',
  disks: ['/d'],
};
const nodeB: InstanceManagerEndpoint = {
  nodeID: 'node-b',
  grpcAddress: '10.0.0.22:8500',
  address: '10.0.0.22',
  disks: ['/d'],
};

/** Fake controllers: a log of starts and stops, and how many run at once. */
class FakeControllers {
  readonly events: string[] = [];
  running = 0;
  maxRunning = 0;
  failNextStarts = 0;
  /** When set, a start waits for it. */
  gate: Promise<void> | undefined;
  /** Called when a start begins. */
  onStart: () => void = () => {};

  start = async (list: readonly InstanceManagerEndpoint[]): Promise<RunningControllers> => {
    this.onStart();
    await this.gate;
    if (this.failNextStarts > 0) {
      this.failNextStarts--;
      this.events.push('start failed');
      throw new Error('informers could not list');
    }
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.events.push(`start ${list.map((endpoint) => endpoint.nodeID).join(',')}`);
    return {
      statistics: () => [],
      stop: async () => {
        this.running--;
        this.events.push('stop');
      },
      idle: async () => {},
    };
  };
}

function setup() {
  const fake = new FakeControllers();
  let prepared = 0;
  const gauge: boolean[] = [];
  const controllers = new LeaderControllers({
    start: fake.start,
    beforeStart: async () => {
      prepared++;
      fake.events.push('settings');
    },
    log: silentLogger,
    onRunningChange: (running) => gauge.push(running),
  });
  return { fake, controllers, gauge, prepared: () => prepared };
}

test('controllers start when leading and the instance managers are known, and stop on resign', async () => {
  const { fake, controllers, gauge } = setup();
  await controllers.lead();
  assert.equal(controllers.isRunning, false, 'no list yet: nothing is taken for down before it is known');
  await controllers.setInstanceManagers([nodeA, nodeB]);
  assert.equal(controllers.isRunning, true);
  assert.deepEqual(
    controllers.instanceManagers.map((endpoint) => endpoint.nodeID),
    ['node-a', 'node-b'],
  );
  await controllers.resign();
  assert.equal(controllers.isRunning, false);
  assert.deepEqual(fake.events, ['settings', 'start node-a,node-b', 'stop']);
  assert.deepEqual(gauge, [true, false]);
});

test('a follower never starts them, whatever the list', async () => {
  const { fake, controllers } = setup();
  await controllers.setInstanceManagers([nodeA]);
  await controllers.setInstanceManagers([nodeA, nodeB]);
  assert.deepEqual(fake.events, []);
});

test('a new list restarts them (stop, then start); the same list does nothing', async () => {
  const { fake, controllers } = setup();
  await controllers.setInstanceManagers([nodeA]);
  await controllers.lead();
  await controllers.setInstanceManagers([{ ...nodeA, disks: ['/d'] }]);
  await controllers.setInstanceManagers([nodeA, nodeB]);
  await controllers.setInstanceManagers([{ ...nodeB, grpcAddress: '10.0.0.99:8500' }, nodeA]);
  assert.deepEqual(fake.events, [
    'settings',
    'start node-a',
    'stop',
    'start node-a,node-b',
    'stop',
    'start node-a,node-b', // sorted by node, whatever the order given
  ]);
  assert.equal(fake.maxRunning, 1, 'never two at once');
  assert.equal(
    controllers.instanceManagers.find((endpoint) => endpoint.nodeID === 'node-b')?.grpcAddress,
    '10.0.0.99:8500',
  );
});

test('a lead and resign before anything ran starts nothing; a resign during a start stops them after it', async () => {
  const { fake, controllers } = setup();
  let open: () => void = () => {};
  fake.gate = new Promise((resolve) => {
    open = resolve;
  });
  const started = new Promise<void>((resolve) => {
    fake.onStart = resolve;
  });
  await controllers.setInstanceManagers([nodeA]);
  const leading = controllers.lead();
  await started;
  const resigned = controllers.resign();
  open();
  await Promise.all([leading, resigned]);
  assert.equal(controllers.isRunning, false);
  assert.deepEqual(fake.events, ['settings', 'start node-a', 'stop']);
  fake.gate = undefined;
  void controllers.lead();
  await controllers.resign();
  assert.deepEqual(fake.events, ['settings', 'start node-a', 'stop'], 'level-triggered: nothing to do');
});

test('settings once per term: again after a resign and a new lead, not on a restart', async () => {
  const { controllers, prepared } = setup();
  await controllers.setInstanceManagers([nodeA]);
  await controllers.lead();
  await controllers.setInstanceManagers([nodeA, nodeB]);
  assert.equal(prepared(), 1);
  await controllers.resign();
  await controllers.lead();
  assert.equal(prepared(), 2);
  assert.equal(controllers.isRunning, true);
});

test('a failed start is retried after a delay while still leading; close ends everything', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { fake, controllers } = setup();
  fake.failNextStarts = 2;
  await controllers.setInstanceManagers([nodeA]);
  await controllers.lead();
  assert.deepEqual(fake.events, ['settings', 'start failed']);
  t.mock.timers.tick(999);
  await controllers.settled();
  assert.deepEqual(fake.events, ['settings', 'start failed'], 'not before 1 s');
  t.mock.timers.tick(1);
  await controllers.settled();
  assert.deepEqual(fake.events, ['settings', 'start failed', 'start failed']);
  t.mock.timers.tick(1_999); // the delay doubles
  await controllers.settled();
  assert.equal(controllers.isRunning, false);
  t.mock.timers.tick(1);
  await controllers.settled();
  assert.equal(controllers.isRunning, true);
  await controllers.close();
  await controllers.lead();
  assert.equal(controllers.isRunning, false, 'closed for good');
  assert.equal(fake.events.at(-1), 'stop');
});
