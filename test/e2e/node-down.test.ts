/**
 * The node-down path of issue 5 (seed §4-4): the instance manager of the node a volume is
 * attached to is killed and stays away. After node-down-timeout the node is Ready False,
 * its replica is failed, and the volume is detached; attached on another node it serves
 * the data written before (degraded: 2 of 3). When the node returns, its replica is
 * re-synced and the volume is healthy again. Then the engine's own instance manager
 * crashes and returns at once: the volume comes back healthy with its data.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startCluster, waitFor } from './helpers/cluster.ts';
import {
  isAttached,
  openNbd,
  patchVolumeSpec,
  pattern,
  readBlock,
  waitForVolume,
  writeBlock,
} from './volume-helpers.ts';

const MiB = 1024 * 1024;

test('node down: the volume is detached and attachable elsewhere; the node returns', {
  timeout: 240_000,
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
    'attached on node-1',
    (entry) => isAttached(entry, 'node-1') && entry.status?.robustness === 'healthy',
  );
  const data = pattern(21, 2 * MiB);
  const client = await openNbd(volume.status!.endpoint!);
  await writeBlock(client, 4 * MiB, data);
  await client.close();

  await cluster.nodes[0].kill('SIGKILL');
  const { replicas } = await waitForVolume(
    cluster,
    'vol',
    'detached after node-1 went down',
    (entry, list) =>
      entry.status?.state === 'detached' &&
      entry.status.currentNodeID === undefined &&
      list.some((replica) => replica.spec.nodeID === 'node-1' && replica.spec.failedAt !== undefined),
  );
  assert.equal(
    replicas.filter((replica) => replica.spec.failedAt === undefined).length,
    2,
    'the other two replicas are usable',
  );
  const node = await store.get({ kind: 'Node', namespace, name: 'node-1' });
  const ready = node.status?.conditions?.find((condition) => condition.type === 'Ready');
  assert.equal(ready?.status, 'False');
  assert.equal(ready?.reason, 'InstanceManagerUnreachable');

  await patchVolumeSpec(cluster, 'vol', { nodeID: 'node-2' });
  const { volume: moved } = await waitForVolume(
    cluster,
    'vol',
    'attached on node-2, degraded',
    (entry) => isAttached(entry, 'node-2') && entry.status?.robustness === 'degraded',
  );
  const reader = await openNbd(moved.status!.endpoint!);
  assert.ok(
    (await readBlock(reader, 4 * MiB, data.length)).equals(data),
    'the data written on node-1 reads back on node-2',
  );
  await reader.close();

  await cluster.nodes[0].start();
  await waitForVolume(
    cluster,
    'vol',
    'healthy with node-1 back',
    (entry, list) =>
      isAttached(entry, 'node-2') &&
      entry.status?.robustness === 'healthy' &&
      list.length === 3 &&
      list.every((replica) => replica.spec.failedAt === undefined),
  );
  await waitFor(async () => {
    const back = await store.get({ kind: 'Node', namespace, name: 'node-1' });
    assert.equal(back.status?.conditions?.find((condition) => condition.type === 'Ready')?.status, 'True');
  });

  // The engine's instance manager crashes and comes back at once (before node-down-timeout):
  // the engine is started again over its replicas and the volume is healthy again.
  const engineStarts = async () =>
    (await store.listEvents({ namespace, involvedObject: { kind: 'Engine', name: 'vol-e-0' } }))
      .filter((event) => event.reason === 'Started')
      .reduce((sum, event) => sum + event.count, 0);
  const startsBefore = await engineStarts();
  await cluster.nodes[1].kill('SIGKILL');
  await cluster.nodes[1].start();
  await waitFor(async () => assert.ok((await engineStarts()) > startsBefore, 'the engine was started again'));
  const { volume: restarted } = await waitForVolume(
    cluster,
    'vol',
    'attached and healthy after the engine node restarted',
    (entry, list) =>
      isAttached(entry, 'node-2') &&
      entry.status?.robustness === 'healthy' &&
      list.every((replica) => replica.spec.failedAt === undefined),
  );
  const again = await openNbd(restarted.status!.endpoint!);
  assert.ok(
    (await readBlock(again, 4 * MiB, data.length)).equals(data),
    'the data reads back after the engine restarted',
  );
  await again.close();
});
