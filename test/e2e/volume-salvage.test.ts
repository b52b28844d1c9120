/**
 * Must-hold 5 of issue 5: every replica failed → the volume is faulted; auto-salvage
 * brings it back from the replica with the newest data (highest revision counter), and the
 * others are re-synced from it. Then the salvage action: with auto-salvage off the volume
 * stays faulted until the Engine's spec.salvageRequested is set.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from './helpers/cluster.ts';
import { startCluster } from './helpers/cluster.ts';
import { isAttached, openNbd, pattern, readBlock, waitForVolume, writeBlock } from './volume-helpers.ts';

const MiB = 1024 * 1024;

/** Kills the two replica-only nodes, writes `data` (only node-1's replica gets it), kills node-1; waits for faulted. */
async function failEveryReplica(cluster: Cluster, data: Buffer, offset: number): Promise<void> {
  const [node1, node2, node3] = cluster.nodes;
  await node2.kill('SIGKILL');
  await node3.kill('SIGKILL');
  const { volume } = await waitForVolume(
    cluster,
    'vol',
    'degraded on node-1',
    (entry) => entry.status?.robustness === 'degraded' && isAttached(entry, 'node-1'),
  );
  const client = await openNbd(volume.status!.endpoint!);
  await writeBlock(client, offset, data);
  await client.close();
  await node1.kill('SIGKILL');
  await waitForVolume(
    cluster,
    'vol',
    'faulted',
    (entry, replicas) =>
      entry.status?.robustness === 'faulted' &&
      replicas.every((replica) => replica.spec.failedAt !== undefined),
  );
}

async function restartAll(cluster: Cluster): Promise<void> {
  for (const node of cluster.nodes) await node.start();
}

async function readsBack(cluster: Cluster, expected: [number, Buffer][]): Promise<void> {
  const { volume } = await waitForVolume(
    cluster,
    'vol',
    'attached and healthy again',
    (entry) => isAttached(entry, 'node-1') && entry.status?.robustness === 'healthy',
    120_000,
  );
  const client = await openNbd(volume.status!.endpoint!);
  try {
    for (const [offset, data] of expected)
      assert.ok(
        (await readBlock(client, offset, data.length)).equals(data),
        `data at ${offset} is the newest`,
      );
  } finally {
    await client.close();
  }
}

test('faulted volume: auto-salvage from the newest replica, then salvage on request', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    // Independent of how full the host's disk is (every node's disk folder shares it).
    settings: {
      'node-down-timeout': '5',
      'replica-replenishment-wait-interval': '600',
      'storage-minimal-available-percentage': '0',
    },
  });
  const { store, namespace } = cluster;
  await store.create({
    kind: 'Volume',
    metadata: { name: 'vol', namespace },
    spec: { size: '32Mi', frontend: 'nbd', nodeID: 'node-1' },
  });
  const { volume } = await waitForVolume(
    cluster,
    'vol',
    'attached and healthy',
    (entry) => isAttached(entry, 'node-1') && entry.status?.robustness === 'healthy',
  );
  const first = pattern(11, MiB);
  let client = await openNbd(volume.status!.endpoint!);
  await writeBlock(client, 0, first);
  await client.close();

  // Auto-salvage.
  const newest = pattern(12, MiB);
  await failEveryReplica(cluster, newest, 0);
  await restartAll(cluster);
  await readsBack(cluster, [[0, newest]]);
  const salvaged = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.ok(salvaged.status?.lastAutoSalvagedAt !== undefined, 'lastAutoSalvagedAt is set');
  const events = await store.listEvents({ namespace, involvedObject: { kind: 'Volume', name: 'vol' } });
  const event = events.find((entry) => entry.reason === 'AutoSalvaged');
  assert.ok(event !== undefined, 'an AutoSalvaged event');
  const replicaOnNode1 = (await store.list('Replica', { namespace })).items.find(
    (replica) => replica.spec.nodeID === 'node-1',
  )!;
  assert.match(
    event.message,
    new RegExp(`replica\\(s\\) ${replicaOnNode1.metadata.name} at`),
    'salvaged from node-1, the only one with the newest write',
  );
  assert.ok(
    events.some((entry) => entry.reason === 'Faulted'),
    'a Faulted event',
  );

  // Salvage on request.
  const setting = await store.get({ kind: 'Setting', namespace, name: 'auto-salvage' });
  await store.update({ ...setting, spec: { value: 'false' } });
  const latest = pattern(13, MiB);
  await failEveryReplica(cluster, latest, MiB);
  await restartAll(cluster);
  await sleep(4000);
  const stuck = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.equal(stuck.status?.robustness, 'faulted', 'without auto-salvage the volume stays faulted');
  const engine = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
  await store.update({ ...engine, spec: { ...engine.spec, salvageRequested: true } });
  await readsBack(cluster, [
    [0, newest],
    [MiB, latest],
  ]);
  const after = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
  assert.equal(after.spec.salvageRequested, false, 'the request is cleared');
  assert.equal(after.status?.salvageExecuted, true);
  client = undefined as never;
});
