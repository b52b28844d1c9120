/**
 * The ShareManager controller's pure decisions: service address derivation and collisions,
 * node choice, and when a share manager is kept, started in place, waited for or moved.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  chooseShareManagerNode,
  healthDecision,
  inServiceNetwork,
  parseServiceNetwork,
  serviceAddressFor,
} from '../../../../src/controllers/share-manager/decisions.ts';
import { isHornbillError } from '../../../../src/errors.ts';

describe('service addresses', () => {
  const network = parseServiceNetwork('127.200.0.0/16');

  it('derives a stable address inside the network from the volume name', () => {
    const first = serviceAddressFor('pvc-1', network, new Set());
    assert.equal(serviceAddressFor('pvc-1', network, new Set()), first);
    assert.ok(inServiceNetwork(network, first), first);
    assert.match(first, /^127\.200\.\d{1,3}\.\d{1,3}$/);
    assert.notEqual(serviceAddressFor('pvc-2', network, new Set()), first);
  });

  it('steps past addresses other ShareManagers hold, never the network or broadcast address', () => {
    const small = parseServiceNetwork('127.9.9.0/30'); // hosts .1 and .2
    const first = serviceAddressFor('vol', small, new Set());
    const second = serviceAddressFor('vol', small, new Set([first]));
    assert.notEqual(second, first);
    assert.deepEqual(new Set([first, second]), new Set(['127.9.9.1', '127.9.9.2']));
    assert.throws(
      () => serviceAddressFor('vol', small, new Set([first, second])),
      (error) => isHornbillError(error, 'SHARE_MANAGER_ADDRESS_EXHAUSTED'),
    );
  });

  it('spreads many volumes without collisions once taken addresses are passed', () => {
    const taken = new Set<string>();
    for (let index = 0; index < 500; index++) taken.add(serviceAddressFor(`volume-${index}`, network, taken));
    assert.equal(taken.size, 500);
  });

  it('refuses malformed networks', () => {
    for (const text of [
      '127.200.0.0',
      '127.200.0.1/16',
      '127.200.0.0/31',
      '127.200.0.0/4',
      '300.0.0.0/8',
      'x/8',
    ])
      assert.throws(
        () => parseServiceNetwork(text),
        (error) => isHornbillError(error, 'INVALID_ARGUMENT'),
        text,
      );
  });
});

describe('node choice', () => {
  const nodes = [
    { name: 'node-1', ready: true, schedulable: true },
    { name: 'node-2', ready: true, schedulable: true },
    { name: 'node-3', ready: true, schedulable: true },
    { name: 'node-4', ready: false, schedulable: false },
    { name: 'node-5', ready: true, schedulable: false },
  ];

  it('prefers the attached node, then a replica node, then by name', () => {
    assert.equal(
      chooseShareManagerNode({ nodes, replicaNodes: new Set(['node-3']), attachedNode: 'node-2' }),
      'node-2',
    );
    assert.equal(chooseShareManagerNode({ nodes, replicaNodes: new Set(['node-3']) }), 'node-3');
    assert.equal(chooseShareManagerNode({ nodes, replicaNodes: new Set() }), 'node-1');
  });

  it('never picks a node that is not ready or not schedulable, or the node it fails over from', () => {
    assert.equal(chooseShareManagerNode({ nodes, replicaNodes: new Set(['node-4', 'node-5']) }), 'node-1');
    assert.equal(
      chooseShareManagerNode({
        nodes,
        replicaNodes: new Set(['node-1']),
        attachedNode: 'node-1',
        exclude: new Set(['node-1']),
      }),
      'node-2',
    );
    assert.equal(
      chooseShareManagerNode({ nodes: nodes.slice(3), replicaNodes: new Set() }),
      undefined,
      'no candidate',
    );
  });
});

describe('failover decision', () => {
  const healthy = {
    instanceManagerReachable: true,
    nodeReady: 'True' as const,
    instanceState: 'running',
    lease: { expired: false, remainingMs: 2_000 },
  };

  it('keeps a running share manager', () => {
    assert.deepEqual(healthDecision(healthy), { action: 'keep' });
    assert.deepEqual(healthDecision({ ...healthy, instanceState: 'starting' }), { action: 'keep' });
  });

  it('starts a missing, stopped or failed one in place while its node answers', () => {
    for (const instanceState of [undefined, 'stopped', 'error'])
      assert.equal(healthDecision({ ...healthy, instanceState }).action, 'start-in-place');
  });

  it('waits for the lease of an unreachable node before moving', () => {
    const decision = healthDecision({
      ...healthy,
      instanceManagerReachable: false,
      nodeReady: 'Unknown',
      instanceState: undefined,
    });
    assert.equal(decision.action, 'wait-for-lease');
    assert.equal(decision.action === 'wait-for-lease' && decision.retryAfterMs, 2_050);
  });

  it('moves once the lease expired, or when there is no lease at all', () => {
    const down = {
      ...healthy,
      instanceManagerReachable: false,
      nodeReady: 'False' as const,
      instanceState: undefined,
    };
    assert.equal(healthDecision({ ...down, lease: { expired: true, remainingMs: 0 } }).action, 'move');
    assert.equal(healthDecision({ ...down, lease: undefined }).action, 'move');
    // A node marked down whose instance manager still answers: the lease decides.
    assert.equal(healthDecision({ ...healthy, nodeReady: 'False' }).action, 'wait-for-lease');
  });
});
