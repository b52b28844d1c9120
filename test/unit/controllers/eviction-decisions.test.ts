/**
 * Replica eviction, the pure half (volume-decisions.ts): which replicas are being evicted
 * (their own flag, their node's, their disk's), when a replacement is due, and when an
 * evicted replica may be deleted (only once numberOfReplicas whole replicas stay).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { evictionPlan, isEvicting, placementEvicting } from '../../../src/controllers/volume-decisions.ts';
import type { Node, Replica } from '../../../src/resources/index.ts';
import { makeNode, makeReplica } from './scheduler/cluster-builder.ts';

function nodesByName(...nodes: Node[]): Map<string, Node> {
  return new Map(nodes.map((node) => [node.metadata.name, node]));
}

const names = (replicas: readonly Replica[]) => replicas.map((replica) => replica.metadata.name).sort();

test('a replica is being evicted by its own flag, its node or its disk', () => {
  const nodes = nodesByName(
    makeNode('node-1', { evictionRequested: true }),
    makeNode('node-2', { disks: { a: { evictionRequested: true, uuid: 'uuid-a' }, b: {} } }),
    makeNode('node-3'),
  );
  const onEvictingNode = makeReplica('r1', 'vol', { nodeID: 'node-1' });
  const onEvictingDisk = makeReplica('r2', 'vol', { nodeID: 'node-2', diskID: 'uuid-a' });
  const onEvictingDiskByPath = makeReplica('r2p', 'vol', {
    nodeID: 'node-2',
    diskID: '',
    diskPath: '/data/a',
  });
  const onOtherDisk = makeReplica('r3', 'vol', { nodeID: 'node-2', diskID: 'b' });
  const flagged = makeReplica('r4', 'vol', { nodeID: 'node-3', evicting: true });
  const plain = makeReplica('r5', 'vol', { nodeID: 'node-3' });
  const unscheduled = makeReplica('r6', 'vol');
  const unknownNode = makeReplica('r7', 'vol', { nodeID: 'node-9' });
  assert.equal(placementEvicting(onEvictingNode, nodes), true);
  assert.equal(placementEvicting(onEvictingDisk, nodes), true);
  assert.equal(placementEvicting(onEvictingDiskByPath, nodes), true);
  assert.equal(placementEvicting(onOtherDisk, nodes), false, 'another disk of that node stays');
  assert.equal(placementEvicting(flagged, nodes), false, 'its own flag is not its placement');
  assert.equal(isEvicting(flagged, nodes), true);
  assert.equal(isEvicting(plain, nodes), false);
  assert.equal(isEvicting(unscheduled, nodes), false);
  assert.equal(isEvicting(unknownNode, nodes), false);
});

test('no replica evicted: nothing to do', () => {
  const replicas = ['a', 'b', 'c'].map((name, index) =>
    makeReplica(name, 'vol', { nodeID: `node-${index}` }),
  );
  const plan = evictionPlan(
    replicas,
    3,
    () => false,
    () => true,
  );
  assert.deepEqual(plan, { evicting: [], needsReplacement: false, deletable: undefined });
});

test('an evicted replica needs a replacement while fewer than numberOfReplicas stay', () => {
  const a = makeReplica('a', 'vol', { nodeID: 'node-1', evicting: true });
  const b = makeReplica('b', 'vol', { nodeID: 'node-2' });
  const c = makeReplica('c', 'vol', { nodeID: 'node-3' });
  const evicting = (replica: Replica) => replica.spec.evictionRequested;
  const plan = evictionPlan([a, b, c], 3, evicting, () => true);
  assert.deepEqual(names(plan.evicting), ['a']);
  assert.equal(plan.needsReplacement, true);
  assert.equal(plan.deletable, undefined, 'never before the replacement exists');
});

test('the evicted replica stays while its replacement rebuilds, and goes once it is whole', () => {
  const a = makeReplica('a', 'vol', { nodeID: 'node-1', evicting: true });
  const b = makeReplica('b', 'vol', { nodeID: 'node-2' });
  const c = makeReplica('c', 'vol', { nodeID: 'node-3' });
  const d = makeReplica('d', 'vol', { nodeID: 'node-4' });
  const evicting = (replica: Replica) => replica.spec.evictionRequested;
  const rebuilding = evictionPlan([a, b, c, d], 3, evicting, (replica) => replica !== d);
  assert.equal(rebuilding.needsReplacement, false, 'one replacement at a time');
  assert.equal(rebuilding.deletable, undefined, 'the replacement is not whole yet');
  const rebuilt = evictionPlan([a, b, c, d], 3, evicting, () => true);
  assert.equal(rebuilt.needsReplacement, false);
  assert.equal(rebuilt.deletable?.metadata.name, 'a');
});

test('a degraded volume keeps its evicted replica until numberOfReplicas whole ones stay', () => {
  // b was lost (not usable); a is evicted; c and d stay: the redundancy would drop without a.
  const a = makeReplica('a', 'vol', { nodeID: 'node-1', evicting: true });
  const c = makeReplica('c', 'vol', { nodeID: 'node-3' });
  const d = makeReplica('d', 'vol', { nodeID: 'node-4' });
  const plan = evictionPlan(
    [a, c, d],
    3,
    (replica) => replica.spec.evictionRequested,
    () => true,
  );
  assert.equal(plan.needsReplacement, true);
  assert.equal(plan.deletable, undefined);
});

test('two evicted replicas: replaced, and deleted, one at a time', () => {
  const a = makeReplica('a', 'vol', { nodeID: 'node-1', evicting: true });
  const b = makeReplica('b', 'vol', { nodeID: 'node-1', evicting: true });
  const c = makeReplica('c', 'vol', { nodeID: 'node-3' });
  const d = makeReplica('d', 'vol', { nodeID: 'node-4' });
  const evicting = (replica: Replica) => replica.spec.evictionRequested;
  const first = evictionPlan([a, b, c], 2, evicting, () => true);
  assert.equal(first.needsReplacement, true);
  assert.equal(first.deletable, undefined, 'only one replica stays');
  const second = evictionPlan([a, b, c, d], 2, evicting, () => true);
  assert.equal(second.needsReplacement, false);
  assert.equal(second.deletable?.metadata.name, 'a');
  const third = evictionPlan([b, c, d], 2, evicting, () => true);
  assert.equal(third.deletable?.metadata.name, 'b');
});
