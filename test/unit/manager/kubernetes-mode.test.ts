/**
 * The manager in Kubernetes mode without a cluster: two replicas share one store (an
 * embedded one here; the Kubernetes store is exercised by the contract suite when
 * KUBECONFIG is set) and an in-memory Lease with the API server's optimistic concurrency;
 * their electors run on a fake clock and the controllers are fakes that log starts and stops.
 * Checked: one leader runs the controllers and writes the settings; /healthz and /metrics
 * say who leads; a leader cut off from the Lease stops its controllers and reports
 * MANAGER_LEADERSHIP_LOST before the other starts; close() hands over within a retry
 * period; discovered instance managers gate and restart the controllers; the resource API
 * is refused.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ControllerOptions, RunningControllers } from '../../../src/controllers/index.ts';
import type { ShareManagerServices } from '../../../src/controllers/share-manager/services.ts';
import { HornbillError, isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import {
  type InstanceManagerSource,
  type RunningKubernetesManager,
  startKubernetesManager,
} from '../../../src/manager/kubernetes-mode.ts';
import type { InstanceManagerEndpoint } from '../../../src/manager/manager.ts';
import { ManagerMetrics, meteredStore } from '../../../src/manager/metrics.ts';
import type { ElectionClock, LeaseClient, LeaseRecord } from '../../../src/resources/leader-election.ts';
import { openEmbeddedStore } from '../../../src/resources/store/embedded.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';
import { fileShareManagerLeases, type ShareManagerLeases } from '../../../src/share-manager/index.ts';
import { tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';
const nodeA: InstanceManagerEndpoint = {
  nodeID: 'node-a',
  grpcAddress: '10.0.0.21:8500',
  address: '10.0.0.21',
  disks: ['/var/lib/hornbill'],
};
const nodeB: InstanceManagerEndpoint = {
  nodeID: 'node-b',
  grpcAddress: '10.0.0.22:8500',
  address: '10.0.0.22',
  disks: ['/var/lib/hornbill'],
};

class FakeClock implements ElectionClock {
  nowMs = 1_000_000;
  private sleepers: { at: number; resolve: () => void }[] = [];

  now(): number {
    return this.nowMs;
  }

  sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      this.sleepers.push({ at: this.nowMs + milliseconds, resolve });
      signal.addEventListener('abort', () => resolve(), { once: true });
    });
  }

  /** Moves time forward in 100 ms steps; real I/O (the store, HTTP) gets a turn in each. */
  async advance(milliseconds: number): Promise<void> {
    const end = this.nowMs + milliseconds;
    while (this.nowMs < end) {
      this.nowMs = Math.min(end, this.nowMs + 100);
      const due = this.sleepers.filter((sleeper) => sleeper.at <= this.nowMs);
      this.sleepers = this.sleepers.filter((sleeper) => sleeper.at > this.nowMs);
      for (const sleeper of due) sleeper.resolve();
      await sleep(1);
    }
  }
}

/** One Lease with the API server's optimistic concurrency; `down` cuts a holder off. */
class MemoryLease {
  current: LeaseRecord | undefined;
  private version = 0;
  readonly down = new Set<string>();

  clientFor(identity: string): LeaseClient {
    const check = () => {
      if (this.down.has(identity))
        throw new HornbillError('KUBERNETES_UNREACHABLE', `${identity} is cut off`, {});
    };
    return {
      get: async () => {
        check();
        return this.current === undefined ? undefined : { ...this.current };
      },
      create: async (spec) => {
        check();
        if (this.current !== undefined) throw new HornbillError('RESOURCE_ALREADY_EXISTS', 'exists', {});
        this.current = { ...spec, resourceVersion: String(++this.version) };
        return { ...this.current };
      },
      update: async (record) => {
        check();
        if (this.current?.resourceVersion !== record.resourceVersion)
          throw new HornbillError('RESOURCE_CONFLICT', 'modified', {});
        this.current = { ...record, resourceVersion: String(++this.version) };
        return { ...this.current };
      },
    };
  }
}

/** Fake controllers for every replica: one ordered log, and who runs them now. */
class ControllerLog {
  readonly events: { identity: string; event: 'start' | 'stop'; nodes: string[] }[] = [];
  readonly runningNow = new Set<string>();
  /** The share managers' leases each start was given. */
  readonly shareManagerLeases: (ShareManagerLeases | undefined)[] = [];
  /** The share managers' stable-address implementation each start was given. */
  readonly shareManagerServices: (ShareManagerServices | undefined)[] = [];
  overlap = false;

  startFor(identity: string) {
    return async (options: ControllerOptions): Promise<RunningControllers> => {
      if (this.runningNow.size > 0) this.overlap = true;
      this.runningNow.add(identity);
      this.shareManagerLeases.push(options.shareManagerLeases);
      this.shareManagerServices.push(options.shareManagerServices);
      this.events.push({
        identity,
        event: 'start',
        nodes: options.instanceManagers.map((endpoint) => endpoint.nodeID),
      });
      return {
        statistics: () => [],
        stop: async () => {
          this.runningNow.delete(identity);
          this.events.push({ identity, event: 'stop', nodes: [] });
        },
        idle: async () => {},
      };
    };
  }
}

async function eventually(check: () => boolean, message: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${message}`);
    await sleep(5);
  }
}

interface Cluster {
  store: ResourceStore;
  lease: MemoryLease;
  clock: FakeClock;
  controllers: ControllerLog;
  lost: Map<string, HornbillError>;
  shareManagerLeases: ShareManagerLeases;
  shareManagerServices: ShareManagerServices;
  replica(identity: string, source?: InstanceManagerSource): Promise<RunningKubernetesManager>;
}

async function cluster(t: TestContext): Promise<Cluster> {
  const directory = tempDirectory(t);
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  const lease = new MemoryLease();
  const clock = new FakeClock();
  const controllers = new ControllerLog();
  const lost = new Map<string, HornbillError>();
  const shareManagerLeases = fileShareManagerLeases(path.join(directory, 'share-manager-leases'));
  // A stand-in: the controllers are fake, only its identity is checked.
  const shareManagerServices = { mode: 'kubernetes' } as unknown as ShareManagerServices;
  const replicas: RunningKubernetesManager[] = [];
  t.after(async () => {
    for (const replica of replicas) await replica.close();
    await store.close();
  });
  return {
    store,
    lease,
    clock,
    controllers,
    lost,
    shareManagerLeases,
    shareManagerServices,
    async replica(identity, source = { static: [nodeA, nodeB] }) {
      // Every replica's close() closes "its" store; they share one here, closed by the test.
      const shared: ResourceStore = { ...meteredStore(store, new ManagerMetrics()), close: async () => {} };
      const manager = await startKubernetesManager({
        store: shared,
        lease: lease.clientFor(identity),
        shareManagerLeases,
        shareManagerServices,
        identity,
        namespace,
        listen: { host: '127.0.0.1', port: 0 },
        instanceManagers: source,
        settings: { 'replica-soft-anti-affinity': 'true' },
        tokensFile: path.join(directory, 'api-tokens.json'),
        log: silentLogger,
        clock,
        startControllers: controllers.startFor(identity),
        onLeadershipLost: (error) => lost.set(identity, error),
      });
      replicas.push(manager);
      return manager;
    },
  };
}

async function json(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

test('one of two replicas leads: it writes the settings and runs the controllers; health and metrics say so', async (t) => {
  const { store, clock, controllers, replica, shareManagerLeases, shareManagerServices } = await cluster(t);
  const a = await replica('manager-a');
  await clock.advance(100);
  const b = await replica('manager-b');
  await clock.advance(5_000);
  await eventually(() => a.controllersRunning(), 'the leader runs the controllers');
  assert.equal(b.controllersRunning(), false);
  assert.deepEqual(controllers.events, [
    { identity: 'manager-a', event: 'start', nodes: ['node-a', 'node-b'] },
  ]);
  assert.equal(
    controllers.shareManagerLeases[0],
    shareManagerLeases,
    'the share-manager leases reach the controllers',
  );
  assert.equal(
    controllers.shareManagerServices[0],
    shareManagerServices,
    'the share-manager Services implementation reaches the controllers',
  );
  const setting = await store.get({ kind: 'Setting', namespace, name: 'replica-soft-anti-affinity' });
  assert.equal(setting.spec.value, 'true');

  const leaderHealth = await json(`${a.url}/healthz`);
  assert.deepEqual(leaderHealth, {
    status: 200,
    body: {
      ok: true,
      store: 'embedded',
      controllers: true,
      leader: {
        identity: 'manager-a',
        lease: 'hornbill-system/hornbill-manager',
        isLeader: true,
        holder: 'manager-a',
      },
    },
  });
  const followerHealth = await json(`${b.url}/healthz`);
  assert.equal(followerHealth.status, 200, 'a follower is healthy too');
  assert.deepEqual(followerHealth.body.leader, {
    identity: 'manager-b',
    lease: 'hornbill-system/hornbill-manager',
    isLeader: false,
    holder: 'manager-a',
  });
  assert.equal(followerHealth.body.controllers, false);
  const leaderMetrics = await (await fetch(`${a.url}/metrics`)).text();
  assert.match(leaderMetrics, /^hornbill_manager_leader 1$/m);
  assert.match(leaderMetrics, /^hornbill_manager_controllers_running 1$/m);
  const followerMetrics = await (await fetch(`${b.url}/metrics`)).text();
  assert.match(followerMetrics, /^hornbill_manager_leader 0$/m);
  assert.match(followerMetrics, /^hornbill_manager_controllers_running 0$/m);
});

test('the resource API is refused (the API server is the resource API); /graphql is served', async (t) => {
  const { replica } = await cluster(t);
  const manager = await replica('manager-a');
  for (const url of [
    '/apis/hornbill.io/v1beta1/namespaces/hornbill-system/volumes',
    '/apis/hornbill.io/v1beta1',
    '/api/v1/namespaces/hornbill-system/events',
  ]) {
    const { status, body } = await json(`${manager.url}${url}`);
    assert.equal(status, 404, url);
    assert.equal(body.code, 'MANAGER_RESOURCE_API_DISABLED', url);
  }
  const response = await fetch(`${manager.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: '{ __typename }' }),
  });
  assert.notEqual(response.status, 404, '/graphql is mounted');
  await response.arrayBuffer();
});

test('a leader cut off from the Lease stops its controllers and reports MANAGER_LEADERSHIP_LOST before the other starts', async (t) => {
  const { lease, clock, controllers, lost, replica } = await cluster(t);
  const a = await replica('manager-a');
  await clock.advance(100);
  const b = await replica('manager-b');
  await clock.advance(3_000);
  await eventually(() => a.controllersRunning(), 'a leads');
  lease.down.add('manager-a');
  await clock.advance(10_500); // past the renew deadline (10 s)
  await eventually(() => lost.has('manager-a'), 'a reports the loss');
  assert.equal(a.controllersRunning(), false);
  assert.ok(isHornbillError(lost.get('manager-a'), 'MANAGER_LEADERSHIP_LOST'));
  assert.equal(lost.get('manager-a')?.details.controllersStopped, true);
  assert.equal(b.controllersRunning(), false, 'b waits for a whole lease duration');
  await clock.advance(10_000);
  await eventually(() => b.controllersRunning(), 'b takes over');
  assert.equal(controllers.overlap, false, 'never two replicas running controllers at once');
  assert.deepEqual(
    controllers.events.map((entry) => `${entry.identity} ${entry.event}`),
    ['manager-a start', 'manager-a stop', 'manager-b start'],
  );
  assert.equal(lost.has('manager-b'), false);
});

test('close() of the leader releases the Lease: the follower leads within a retry period; no loss reported', async (t) => {
  const { clock, controllers, lost, replica } = await cluster(t);
  const a = await replica('manager-a');
  await clock.advance(100);
  const b = await replica('manager-b');
  await clock.advance(3_000);
  await eventually(() => a.controllersRunning(), 'a leads');
  await a.close();
  assert.equal(a.controllersRunning(), false);
  await clock.advance(2_100);
  await eventually(() => b.controllersRunning(), 'b leads after one retry period');
  assert.equal(lost.size, 0, 'a clean stop is not a loss');
  assert.equal(controllers.overlap, false);
});

test('discovered instance managers: the controllers wait for the first list, and a new list restarts them', async (t) => {
  const { clock, controllers, replica } = await cluster(t);
  let report: (endpoints: readonly InstanceManagerEndpoint[]) => void = () => {};
  let discoveryStopped = false;
  const manager = await replica('manager-a', {
    discover: (onChange) => {
      report = onChange;
      return { stop: () => void (discoveryStopped = true) };
    },
  });
  await clock.advance(3_000);
  await eventually(() => manager.leader().isLeader, 'a leads');
  await sleep(50);
  assert.equal(manager.controllersRunning(), false, 'no list yet: nothing starts');
  report([nodeA]);
  await eventually(() => manager.controllersRunning(), 'started with the first list');
  report([nodeA, nodeB]);
  await eventually(() => controllers.events.length === 3, 'restarted');
  assert.deepEqual(
    controllers.events.map((entry) => `${entry.event} ${entry.nodes.join(',')}`),
    ['start node-a', 'stop ', 'start node-a,node-b'],
  );
  assert.deepEqual(
    manager.instanceManagers().map((endpoint) => endpoint.nodeID),
    ['node-a', 'node-b'],
  );
  await manager.close();
  assert.equal(discoveryStopped, true);
});
