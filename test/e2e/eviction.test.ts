/**
 * Replica eviction on a 4-node cluster: a 2-replica volume attached with NBD on node-1
 * holds data; a node holding one of its replicas (not the engine's) asks for eviction
 * (Node spec.evictionRequested). The replica is marked (spec.evictionRequested), a
 * replacement is built on a free node, and only then is the evicted replica deleted (Event
 * ReplicaEvicted): the volume ends healthy with 2 replicas, none on that node, and the data
 * reads back. Then a second eviction with no node left to take the replica: Event
 * EvictionBlocked, and the replica stays.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HornbillError } from '../../src/errors.ts';
import type { Node } from '../../src/resources/index.ts';
import type { Cluster } from './helpers/cluster.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';
import { isAttached, openNbd, pattern, readBlock, waitForVolume, writeBlock } from './volume-helpers.ts';

const MiB = 1024 * 1024;
const BLOCK = 64 * 1024;

async function patchNode(cluster: Cluster, name: string, spec: Partial<Node['spec']>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const node = await cluster.store.get({ kind: 'Node', namespace: cluster.namespace, name });
    try {
      await cluster.store.update({ ...node, spec: { ...node.spec, ...spec } });
      return;
    } catch (error) {
      if (attempt > 10 || (error as HornbillError).code !== 'RESOURCE_CONFLICT') throw error;
    }
  }
}

async function volumeEvents(cluster: Cluster, reason: string) {
  const events = await cluster.store.listEvents({
    namespace: cluster.namespace,
    involvedObject: { kind: 'Volume', name: 'vol' },
  });
  return events.filter((event) => event.reason === reason);
}

test('eviction moves a replica off a node without losing redundancy or data', {
  timeout: 120_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 4,
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { store, namespace } = cluster;
  await store.create({
    kind: 'Volume',
    metadata: { name: 'vol', namespace },
    spec: { size: String(32 * MiB), frontend: 'nbd', nodeID: 'node-1', numberOfReplicas: 2 },
  });
  const { volume, replicas } = await waitForVolume(
    cluster,
    'vol',
    'attached and healthy',
    (entry, list) =>
      isAttached(entry, 'node-1') && entry.status?.robustness === 'healthy' && list.length === 2,
  );
  const client = await openNbd(volume.status!.endpoint!);
  t.after(() => client.close());
  for (let block = 0; block < 64; block++) await writeBlock(client, block * BLOCK, pattern(block + 1, BLOCK));

  const victim = replicas.find((replica) => replica.spec.nodeID !== 'node-1') ?? replicas[0];
  const evictedNode = victim.spec.nodeID;
  await patchNode(cluster, evictedNode, { evictionRequested: true });

  // The replica shows the request while it waits for its replacement (or it is gone already).
  await waitFor(async () => {
    const current = (await store.list('Replica', { namespace })).items.find(
      (replica) => replica.metadata.name === victim.metadata.name,
    );
    assert.ok(current === undefined || current.spec.evictionRequested, 'replica marked evictionRequested');
  }, 20_000);

  const done = await waitForVolume(
    cluster,
    'vol',
    `no replica on ${evictedNode}, healthy with 2 replicas`,
    (entry, list) =>
      isAttached(entry, 'node-1') &&
      entry.status?.robustness === 'healthy' &&
      list.length === 2 &&
      list.every((replica) => replica.spec.nodeID !== evictedNode && replica.spec.failedAt === undefined),
    60_000,
  );
  assert.ok(!done.replicas.some((replica) => replica.metadata.name === victim.metadata.name));
  const evicted = await volumeEvents(cluster, 'ReplicaEvicted');
  assert.ok(
    evicted.some((event) => event.message.includes(victim.metadata.name)),
    'Event ReplicaEvicted names the replica',
  );
  for (let block = 0; block < 64; block++) {
    const data = await readBlock(client, block * BLOCK, BLOCK);
    assert.ok(data.equals(pattern(block + 1, BLOCK)), `block ${block} reads back`);
  }

  // No node can take a replica: the first evicted node still evicts, the free one does not
  // allow scheduling. The eviction is blocked and the replica kept.
  const holders = new Set(done.replicas.map((replica) => replica.spec.nodeID));
  const free = cluster.nodes
    .map((node) => node.name)
    .find((name) => name !== evictedNode && !holders.has(name))!;
  await patchNode(cluster, free, { allowScheduling: false });
  const second = done.replicas.find((replica) => replica.spec.nodeID !== 'node-1') ?? done.replicas[0];
  await patchNode(cluster, second.spec.nodeID, { evictionRequested: true });
  await waitFor(async () => {
    const blocked = await volumeEvents(cluster, 'EvictionBlocked');
    assert.ok(
      blocked.some((event) => event.type === 'Warning' && event.message.includes(second.metadata.name)),
      'Event EvictionBlocked',
    );
  }, 20_000);
  await sleep(1000);
  const kept = await waitForVolume(
    cluster,
    'vol',
    'still healthy with its replicas',
    (entry, list) => entry.status?.robustness === 'healthy' && list.length === 2,
  );
  assert.ok(
    kept.replicas.some((replica) => replica.metadata.name === second.metadata.name),
    'replica kept',
  );
  // Withdrawing the request clears the replica's mark.
  await patchNode(cluster, second.spec.nodeID, { evictionRequested: false });
  await waitFor(async () => {
    const current = await store.get({ kind: 'Replica', namespace, name: second.metadata.name });
    assert.equal(current.spec.evictionRequested, false);
  }, 20_000);
});
