/**
 * selectReplicasToRemove and localityNeedsReplicaOn: which replicas go first (unscheduled,
 * failed or ERR, evicting, rebuilding, then those sharing a node or zone, then non-local ones
 * under data locality, then the newest), and when data locality wants a replica on the
 * engine's node.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  localityNeedsReplicaOn,
  selectReplicasToRemove,
} from '../../../../src/controllers/scheduler/index.ts';
import type { ReplicaMode } from '../../../../src/resources/kinds/engine.ts';
import type { Node } from '../../../../src/resources/kinds/node.ts';
import type { Replica } from '../../../../src/resources/kinds/replica.ts';
import type { Volume } from '../../../../src/resources/kinds/volume.ts';
import { makeNode, makeReplica, makeSettings, makeVolume } from './cluster-builder.ts';

function remove(
  replicas: Replica[],
  count: number,
  options: {
    volume?: Volume;
    nodes?: Node[];
    engineNodeID?: string;
    replicaModes?: Record<string, ReplicaMode>;
  } = {},
): string[] {
  const chosen = selectReplicasToRemove({
    volume: options.volume ?? makeVolume('vol1'),
    volumeReplicas: replicas,
    allReplicas: replicas,
    nodes: options.nodes ?? ['node-1', 'node-2', 'node-3', 'node-4'].map((name) => makeNode(name)),
    settings: makeSettings(),
    count,
    engineNodeID: options.engineNodeID,
    replicaModes: options.replicaModes,
  });
  return chosen.map((replica) => replica.metadata.name);
}

describe('selectReplicasToRemove', () => {
  test('unscheduled, then failed or ERR, then evicting, then rebuilding, then healthy', () => {
    const replicas = [
      makeReplica('healthy', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:09Z' }),
      makeReplica('rebuilding', 'vol1', { nodeID: 'node-2', mode: 'WO' }),
      makeReplica('evicting', 'vol1', { nodeID: 'node-3', evicting: true }),
      makeReplica('error', 'vol1', { nodeID: 'node-4' }),
      makeReplica('failed', 'vol1', { nodeID: 'node-4', failed: true, created: '2026-01-01T00:00:01Z' }),
      makeReplica('unscheduled', 'vol1'),
    ];
    const order = remove(replicas, 6, { replicaModes: { error: 'ERR' } });
    assert.deepEqual(order.slice(0, 1), ['unscheduled']);
    assert.deepEqual(order.slice(1, 3).sort(), ['error', 'failed']);
    assert.deepEqual(order.slice(3), ['evicting', 'rebuilding', 'healthy']);
  });

  test("the engine's mode map wins over the replica's own status.mode", () => {
    const replicas = [
      makeReplica('a', 'vol1', { nodeID: 'node-1', mode: 'ERR', created: '2026-01-01T00:00:01Z' }),
      makeReplica('b', 'vol1', { nodeID: 'node-2', created: '2026-01-01T00:00:02Z' }),
    ];
    assert.deepEqual(remove(replicas, 1), ['a']);
    assert.deepEqual(remove(replicas, 1, { replicaModes: { a: 'RW' } }), ['b']);
  });

  test('among healthy replicas, one sharing a node with another goes first, and only one of the pair', () => {
    const replicas = [
      makeReplica('r1', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:01Z' }),
      makeReplica('r2', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:02Z' }),
      makeReplica('r3', 'vol1', { nodeID: 'node-2', created: '2026-01-01T00:00:09Z' }),
    ];
    assert.deepEqual(remove(replicas, 1), ['r2']);
    assert.deepEqual(remove(replicas, 2), ['r2', 'r3']);
  });

  test('then one sharing a zone', () => {
    const nodes = [
      makeNode('node-1', { zone: 'zone-a' }),
      makeNode('node-2', { zone: 'zone-a' }),
      makeNode('node-3', { zone: 'zone-b' }),
    ];
    const replicas = [
      makeReplica('r1', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:01Z' }),
      makeReplica('r2', 'vol1', { nodeID: 'node-2', created: '2026-01-01T00:00:02Z' }),
      makeReplica('r3', 'vol1', { nodeID: 'node-3', created: '2026-01-01T00:00:09Z' }),
    ];
    assert.deepEqual(remove(replicas, 1, { nodes }), ['r2']);
  });

  test("with best-effort locality, one away from the engine's node goes before a newer local one", () => {
    const replicas = [
      makeReplica('remote', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:01Z' }),
      makeReplica('local', 'vol1', { nodeID: 'node-2', created: '2026-01-01T00:00:09Z' }),
    ];
    const volume = makeVolume('vol1', { dataLocality: 'best-effort' });
    assert.deepEqual(remove(replicas, 1, { volume, engineNodeID: 'node-2' }), ['remote']);
    assert.deepEqual(
      remove(replicas, 1, { engineNodeID: 'node-2' }),
      ['local'],
      'locality disabled: the newest',
    );
  });

  test('the newest goes first, then the later name; replicas being deleted are never chosen', () => {
    const replicas = [
      makeReplica('r-a', 'vol1', { nodeID: 'node-1', created: '2026-01-01T00:00:05Z' }),
      makeReplica('r-b', 'vol1', { nodeID: 'node-2', created: '2026-01-01T00:00:05Z' }),
      makeReplica('r-c', 'vol1', { nodeID: 'node-3', created: '2026-01-01T00:00:01Z' }),
      makeReplica('r-d', 'vol1', { nodeID: 'node-4', failed: true, deleting: true }),
    ];
    assert.deepEqual(remove(replicas, 2), ['r-b', 'r-a']);
    assert.deepEqual(remove(replicas, 10), ['r-b', 'r-a', 'r-c']);
    assert.deepEqual(remove(replicas, 0), []);
  });
});

describe('localityNeedsReplicaOn', () => {
  const needs = (volume: Volume, replicas: Replica[], engineNodeID: string) =>
    localityNeedsReplicaOn({
      volume,
      volumeReplicas: replicas,
      allReplicas: replicas,
      nodes: [makeNode('node-1'), makeNode('node-2')],
      settings: makeSettings(),
      engineNodeID,
    });
  const bestEffort = makeVolume('vol1', { dataLocality: 'best-effort' });
  const remote = makeReplica('remote', 'vol1', { nodeID: 'node-1' });

  test("best-effort and strict-local want a replica on the engine's node; disabled does not", () => {
    assert.equal(needs(bestEffort, [remote], 'node-2'), true);
    assert.equal(needs(makeVolume('vol1', { dataLocality: 'strict-local' }), [remote], 'node-2'), true);
    assert.equal(needs(makeVolume('vol1'), [remote], 'node-2'), false);
    assert.equal(needs(bestEffort, [remote], ''), false, 'no engine node');
  });

  test('a replica there, failed or on its way there, is enough; one leaving is not', () => {
    assert.equal(needs(bestEffort, [remote], 'node-1'), false);
    assert.equal(
      needs(bestEffort, [makeReplica('f', 'vol1', { nodeID: 'node-2', failed: true })], 'node-2'),
      false,
    );
    assert.equal(
      needs(bestEffort, [makeReplica('p', 'vol1', { hardNodeAffinity: 'node-2' })], 'node-2'),
      false,
    );
    assert.equal(
      needs(bestEffort, [makeReplica('d', 'vol1', { nodeID: 'node-2', deleting: true })], 'node-2'),
      true,
    );
    assert.equal(
      needs(bestEffort, [makeReplica('e', 'vol1', { nodeID: 'node-2', evicting: true })], 'node-2'),
      true,
    );
  });
});
