import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  desiredAttachment,
  engineStartReplicas,
  rebuildsOnNode,
  replenishmentWaitLeftMs,
  reusableFailedReplica,
  robustnessFromModes,
  robustnessFromReplicas,
  salvageMayDecide,
  salvageWaitsFor,
  selectSalvageReplicas,
  staleReplicas,
} from '../../../src/controllers/volume-decisions.ts';
import type { Replica, Volume, VolumeAttachment } from '../../../src/resources/index.ts';

function replica(name: string, spec: Partial<Replica['spec']> = {}, deleting = false): Replica {
  return {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Replica',
    metadata: {
      name,
      namespace: 'hornbill-system',
      uid: name,
      resourceVersion: '1',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
      ...(deleting ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
    },
    spec: {
      volumeName: 'vol',
      volumeSize: '1Gi',
      nodeID: 'node-1',
      diskID: 'disk',
      diskPath: '/data',
      dataDirectoryName: `${name}-dir`,
      engineName: 'vol-e-0',
      desireState: 'running',
      rebuildRetryCount: 0,
      evictionRequested: false,
      ...spec,
    },
  };
}

function volume(spec: Partial<Volume['spec']> = {}): Volume {
  return {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Volume',
    metadata: {
      name: 'vol',
      namespace: 'hornbill-system',
      uid: 'u',
      resourceVersion: '1',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: { size: '1Gi', nodeID: '', disableFrontend: false, numberOfReplicas: 3, ...spec } as Volume['spec'],
  };
}

test('robustness from the engine modes: RW count against numberOfReplicas', () => {
  assert.equal(robustnessFromModes({ a: 'RW', b: 'RW', c: 'RW' }, 3), 'healthy');
  assert.equal(
    robustnessFromModes({ a: 'RW', b: 'RW', c: 'WO' }, 3),
    'degraded',
    'a rebuilding replica does not count',
  );
  assert.equal(robustnessFromModes({ a: 'RW', b: 'ERR' }, 3), 'degraded');
  assert.equal(robustnessFromModes({ a: 'ERR', b: 'WO' }, 2), 'faulted');
  assert.equal(robustnessFromModes({}, 1), 'faulted');
  assert.equal(robustnessFromModes({ a: 'RW', b: 'RW', c: 'RW', d: 'RW' }, 3), 'healthy');
});

test('robustness of a detached volume from its usable replicas', () => {
  const failed = { failedAt: '2026-01-01T00:00:00Z' };
  assert.equal(robustnessFromReplicas([], 3), 'unknown');
  assert.equal(robustnessFromReplicas([replica('a'), replica('b'), replica('c')], 3), 'healthy');
  assert.equal(robustnessFromReplicas([replica('a'), replica('b', failed)], 2), 'degraded');
  assert.equal(robustnessFromReplicas([replica('a', failed), replica('b', failed)], 2), 'faulted');
  assert.equal(
    robustnessFromReplicas([replica('a', { nodeID: '' })], 1),
    'unknown',
    'unscheduled replicas do not count',
  );
});

test('salvage picks the replicas with the highest revision counter', () => {
  assert.deepEqual(selectSalvageReplicas([]), []);
  assert.deepEqual(
    selectSalvageReplicas([
      { name: 'c', revisionCounter: 7 },
      { name: 'a', revisionCounter: 9 },
      { name: 'b', revisionCounter: 9 },
    ]),
    ['a', 'b'],
  );
  assert.deepEqual(selectSalvageReplicas([{ name: 'only', revisionCounter: 0 }]), ['only']);
});

test('the attachment ticket with the highest priority wins over spec.nodeID', () => {
  const attachment = {
    spec: {
      volume: 'vol',
      attachmentTickets: {
        'csi-1': { id: 'csi-1', type: 'csi-attacher', nodeID: 'node-2', parameters: {}, generation: 0 },
        'api-1': {
          id: 'api-1',
          type: 'api',
          nodeID: 'node-3',
          parameters: { disableFrontend: 'true' },
          generation: 0,
        },
        'snap-1': { id: 'snap-1', type: 'snapshot', nodeID: 'node-4', parameters: {}, generation: 0 },
      },
    },
  } as unknown as VolumeAttachment;
  assert.deepEqual(desiredAttachment(volume({ nodeID: 'node-1' }), attachment), {
    nodeID: 'node-3',
    disableFrontend: true,
    ticket: attachment.spec.attachmentTickets['api-1'],
  });
  assert.deepEqual(desiredAttachment(volume({ nodeID: 'node-1' }), undefined), {
    nodeID: 'node-1',
    disableFrontend: false,
  });
  const empty = { spec: { volume: 'vol', attachmentTickets: {} } } as unknown as VolumeAttachment;
  assert.equal(desiredAttachment(volume(), empty).nodeID, '', 'no ticket and no spec.nodeID: detached');
});

test('an rwx volume attaches where its share manager is: workload csi-attacher tickets do not move it', () => {
  const ticket = (id: string, type: string, nodeID: string) => ({
    id,
    type,
    nodeID,
    parameters: {},
    generation: 0,
  });
  const attachment = {
    spec: {
      volume: 'vol',
      attachmentTickets: {
        'a-workload': ticket('a-workload', 'csi-attacher', 'node-1'),
        'share-manager-vol': ticket('share-manager-vol', 'share-manager', 'node-3'),
      },
    },
  } as unknown as VolumeAttachment;
  assert.equal(desiredAttachment(volume({ accessMode: 'rwx' }), attachment).nodeID, 'node-3');
  assert.equal(
    desiredAttachment(volume({ accessMode: 'rwo' }), attachment).nodeID,
    'node-1',
    'rwo: the tie on priority goes to the smaller id',
  );
  const workloadsOnly = {
    spec: {
      volume: 'vol',
      attachmentTickets: { 'a-workload': ticket('a-workload', 'csi-attacher', 'node-1') },
    },
  } as unknown as VolumeAttachment;
  assert.equal(desiredAttachment(volume({ accessMode: 'rwx' }), workloadsOnly).nodeID, '');
});

test('an engine starts with the replicas that hold data; a new volume with all', () => {
  const ready = new Set(['node-1', 'node-2', 'node-3']);
  const fresh = [replica('a'), replica('b', { nodeID: 'node-2' }), replica('c', { nodeID: 'node-9' })];
  assert.deepEqual(
    engineStartReplicas(fresh, ready).map((entry) => entry.metadata.name),
    ['a', 'b'],
    'all on ready nodes',
  );
  const used = [
    replica('a', { healthyAt: '2026-01-01T00:00:00Z' }),
    replica('b', { nodeID: 'node-2' }),
    replica('c', { nodeID: 'node-3', healthyAt: '2026-01-01T00:00:00Z', failedAt: '2026-01-01T00:01:00Z' }),
  ];
  assert.deepEqual(
    engineStartReplicas(used, ready).map((entry) => entry.metadata.name),
    ['a'],
    'never-healthy b joins by rebuild; failed c not at all',
  );
});

test('reuse: the most recently failed replica that runs again, unless it failed too often', () => {
  const running = new Set(['old', 'new', 'tired', 'ok']);
  const replicas = [
    replica('old', { failedAt: '2026-01-01T00:00:00Z' }),
    replica('new', { failedAt: '2026-01-01T00:05:00Z', nodeID: 'node-2' }),
    replica('away', { failedAt: '2026-01-01T00:09:00Z', nodeID: 'node-3' }),
    replica('tired', { failedAt: '2026-01-01T00:08:00Z', rebuildRetryCount: 5 }),
    replica('ok'),
  ];
  assert.equal(
    reusableFailedReplica(replicas, running, Date.parse('2026-01-01T01:00:00Z'))?.metadata.name,
    'new',
  );
  assert.equal(
    reusableFailedReplica([replica('ok')], running, Date.parse('2026-01-01T01:00:00Z')),
    undefined,
  );
  assert.equal(
    reusableFailedReplica(replicas, running, Date.parse('2026-01-01T00:09:01Z'))?.metadata.name,
    'new',
    'settled: failed long enough ago',
  );
  assert.equal(
    reusableFailedReplica([replicas[1]], running, Date.parse('2026-01-01T00:05:01Z')),
    undefined,
    'not within REUSE_SETTLE_MS of its failure',
  );
});

test('replenishment waits from the last failure; stale replicas go unless nothing else is left', () => {
  const failedAtMs = Date.parse('2026-01-01T00:00:00Z');
  const replicas = [replica('ok'), replica('bad', { failedAt: '2026-01-01T00:00:00Z' })];
  assert.equal(replenishmentWaitLeftMs(replicas, 600, failedAtMs + 100_000), 500_000);
  assert.equal(replenishmentWaitLeftMs(replicas, 600, failedAtMs + 700_000), 0);
  assert.equal(replenishmentWaitLeftMs([replica('ok')], 600, failedAtMs), 0);
  assert.deepEqual(staleReplicas(replicas, 10, failedAtMs + 9 * 60_000), []);
  assert.deepEqual(
    staleReplicas(replicas, 10, failedAtMs + 10 * 60_000).map((entry) => entry.metadata.name),
    ['bad'],
  );
  assert.deepEqual(
    staleReplicas([replicas[1]], 10, failedAtMs + 60 * 60_000),
    [],
    'the last copies stay for salvage',
  );
});

test('rebuilds on a node count replicas in an engine that are not yet RW', () => {
  const byName = new Map([
    ['a', replica('a')],
    ['b', replica('b')],
    ['c', replica('c', { nodeID: 'node-2' })],
  ]);
  const engines: {
    spec: { replicaAddressMap: Record<string, string> };
    status: { replicaModeMap: Record<string, 'RW' | 'WO' | 'ERR'> };
  }[] = [
    {
      spec: { replicaAddressMap: { a: 'x:1', c: 'y:1' } },
      status: { replicaModeMap: { a: 'WO' as const, c: 'WO' as const } },
    },
    { spec: { replicaAddressMap: { b: 'x:2' } }, status: { replicaModeMap: { b: 'RW' as const } } },
  ];
  assert.equal(rebuildsOnNode('node-1', byName, engines), 1);
  assert.equal(rebuildsOnNode('node-2', byName, engines), 1);
  assert.equal(rebuildsOnNode('node-3', byName, engines), 0);
});

test('salvage waits for a replica that failed last, for at most the wait interval', () => {
  const replicas = [
    replica('early', { nodeID: 'node-2', failedAt: '2026-01-01T00:00:00Z' }),
    replica('last', { nodeID: 'node-1', failedAt: '2026-01-01T00:00:30Z' }),
    replica('near', { nodeID: 'node-3', failedAt: '2026-01-01T00:00:27Z' }),
  ];
  const at = (time: string) => Date.parse(`2026-01-01T${time}Z`);
  assert.deepEqual(
    salvageWaitsFor(replicas, new Set(['node-2']), 600, at('00:01:00')).map((entry) => entry.metadata.name),
    ['last', 'near'],
    'node-2 is back, but its replica failed long before the others',
  );
  assert.deepEqual(
    salvageWaitsFor(replicas, new Set(['node-3']), 600, at('00:01:00')).map((entry) => entry.metadata.name),
    ['last'],
    'one that failed last is back, but the other may hold newer writes',
  );
  assert.deepEqual(
    salvageWaitsFor(replicas, new Set(['node-1', 'node-3']), 600, at('00:01:00')),
    [],
    'every one that failed last is back',
  );
  assert.deepEqual(
    salvageWaitsFor(replicas, new Set(['node-2']), 600, at('00:10:31')),
    [],
    'waited long enough',
  );
  assert.deepEqual(salvageWaitsFor([replica('ok')], new Set(), 600, at('00:01:00')), []);
});

test('salvage does not choose while a running replica has not told its revision counter, within the wait interval', () => {
  const replicas = [
    replica('stale', { nodeID: 'node-2', failedAt: '2026-01-01T00:00:00Z' }),
    replica('newest', { nodeID: 'node-1', failedAt: '2026-01-01T00:00:30Z' }),
  ];
  const at = (time: string) => Date.parse(`2026-01-01T${time}Z`);
  const newest = replicas[1];
  assert.equal(salvageMayDecide([], replicas, 600, at('00:01:00')), true, 'every replica answered');
  assert.equal(
    salvageMayDecide([newest], replicas, 600, at('00:01:00')),
    false,
    'the newest did not answer: choosing now would bring back the stale one',
  );
  assert.equal(salvageMayDecide([newest], replicas, 600, at('00:10:31')), true, 'waited long enough');
});
