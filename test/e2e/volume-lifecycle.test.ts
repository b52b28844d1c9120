/**
 * Must-holds 1, 2, 6 and 7 of issue 5 on one 3-node cluster: scheduling (3 replicas on 3
 * nodes; a 4th fails with hard anti-affinity and succeeds with soft; back down to 3),
 * attach / write / detach / attach elsewhere / read back through NBD, delete leaving no
 * process, folder or resource, and invalid specs refused with clear errors.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { type HornbillError, isHornbillError } from '../../src/errors.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';
import {
  instancesByNode,
  isAttached,
  openNbd,
  patchVolumeSpec,
  pattern,
  readBlock,
  waitForVolume,
  writeBlock,
} from './volume-helpers.ts';

const MiB = 1024 * 1024;

test('volume lifecycle: schedule, attach, write, move, read, delete, refuse bad specs', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    // Independent of how full the host's disk is (every node's disk folder shares it).
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { store, namespace } = cluster;

  // 7. Invalid specs are refused with the field that is wrong.
  const invalid: [string, Record<string, unknown>, string][] = [
    ['size-zero', { size: '0' }, 'spec.size'],
    ['bad-access', { size: '64Mi', accessMode: 'rwz' }, 'spec.accessMode'],
    ['zero-replicas', { size: '64Mi', numberOfReplicas: 0 }, 'spec.numberOfReplicas'],
    ['hundred-replicas', { size: '64Mi', numberOfReplicas: 100 }, 'spec.numberOfReplicas'],
    ['Not_A_Label', { size: '64Mi' }, 'metadata.name'],
  ];
  for (const [name, spec, field] of invalid) {
    await assert.rejects(
      store.create({ kind: 'Volume', metadata: { name, namespace }, spec: spec as { size: string } }),
      (error: HornbillError) => {
        assert.ok(isHornbillError(error, 'RESOURCE_INVALID'), `${name}: ${error.code} ${error.message}`);
        assert.equal(error.details.field, field, `${name}: ${error.message}`);
        return true;
      },
    );
  }
  // A selector no node matches: accepted, but never scheduled, with the reason.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'unplaceable', namespace },
    spec: { size: '64Mi', nodeSelector: ['ssd'] },
  });
  const { volume: unplaceable, replicas: none } = await waitForVolume(
    cluster,
    'unplaceable',
    'Scheduled False because no node matches',
    // Until the nodes are Ready the reason is NoSchedulableNode; the scheduler retries.
    (volume) =>
      volume.status?.conditions?.some(
        (condition) =>
          condition.type === 'Scheduled' &&
          condition.status === 'False' &&
          condition.reason === 'NoNodeMatchesSelector',
      ) === true,
  );
  assert.equal(none.length, 0);
  const condition = unplaceable.status?.conditions?.find((entry) => entry.type === 'Scheduled');
  assert.equal(condition?.reason, 'NoNodeMatchesSelector', condition?.message);

  // 1. Three replicas on three nodes; a fourth needs soft anti-affinity.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'vol1', namespace },
    spec: { size: '64Mi', frontend: 'nbd' },
  });
  const { replicas } = await waitForVolume(
    cluster,
    'vol1',
    'detached with 3 replicas',
    (volume, list) =>
      volume.status?.state === 'detached' && volume.status.robustness === 'healthy' && list.length === 3,
  );
  assert.equal(new Set(replicas.map((replica) => replica.spec.nodeID)).size, 3, 'one replica per node');
  await patchVolumeSpec(cluster, 'vol1', { numberOfReplicas: 4 });
  const { volume: crowded, replicas: stillThree } = await waitForVolume(
    cluster,
    'vol1',
    'Scheduled False',
    (volume) =>
      volume.status?.conditions?.some((entry) => entry.type === 'Scheduled' && entry.status === 'False') ===
      true,
  );
  assert.equal(stillThree.length, 3);
  assert.equal(
    crowded.status?.conditions?.find((entry) => entry.type === 'Scheduled')?.reason,
    'HardNodeAntiAffinity',
  );
  await patchVolumeSpec(cluster, 'vol1', { replicaSoftAntiAffinity: 'enabled' });
  await waitForVolume(
    cluster,
    'vol1',
    '4 replicas, Scheduled True',
    (volume, list) =>
      list.length === 4 &&
      volume.status?.conditions?.some((entry) => entry.type === 'Scheduled' && entry.status === 'True') ===
        true,
  );
  await patchVolumeSpec(cluster, 'vol1', { numberOfReplicas: 3, replicaSoftAntiAffinity: 'ignored' });
  const { replicas: three } = await waitForVolume(
    cluster,
    'vol1',
    'back to 3 replicas',
    (_volume, list) => list.length === 3,
  );
  assert.equal(
    new Set(three.map((replica) => replica.spec.nodeID)).size,
    3,
    'the replica sharing a node went',
  );

  // 2. Attach on node-1, write, detach, attach on node-2, read back.
  await patchVolumeSpec(cluster, 'vol1', { nodeID: 'node-1' });
  const { volume: attached } = await waitForVolume(cluster, 'vol1', 'attached on node-1', (volume) =>
    isAttached(volume, 'node-1'),
  );
  assert.match(attached.status?.endpoint ?? '', /^nbd:\/\//);
  const written = [pattern(1, MiB), pattern(2, 64 * 1024)];
  let client = await openNbd(attached.status!.endpoint!);
  await writeBlock(client, 0, written[0]);
  await writeBlock(client, 40 * MiB, written[1]);
  await client.close();
  await patchVolumeSpec(cluster, 'vol1', { nodeID: '' });
  await waitForVolume(
    cluster,
    'vol1',
    'detached',
    (volume) => volume.status?.state === 'detached' && volume.status.currentNodeID === undefined,
  );
  await patchVolumeSpec(cluster, 'vol1', { nodeID: 'node-2' });
  const { volume: moved } = await waitForVolume(cluster, 'vol1', 'attached on node-2', (volume) =>
    isAttached(volume, 'node-2'),
  );
  assert.equal(moved.status?.robustness, 'healthy');
  client = await openNbd(moved.status!.endpoint!);
  assert.ok((await readBlock(client, 0, MiB)).equals(written[0]), 'first range read back on node-2');
  assert.ok(
    (await readBlock(client, 40 * MiB, 64 * 1024)).equals(written[1]),
    'second range read back on node-2',
  );
  await client.close();

  // 6. Delete: no resource, no process, no folder left.
  const folders = three.map((replica) =>
    path.join(replica.spec.diskPath, 'replicas', replica.spec.dataDirectoryName),
  );
  for (const folder of folders) assert.ok(fs.existsSync(folder), `${folder} exists before the delete`);
  await store.delete({ kind: 'Volume', namespace, name: 'vol1' });
  await store.delete({ kind: 'Volume', namespace, name: 'unplaceable' });
  await waitFor(async () => {
    const volumes = (await store.list('Volume', { namespace })).items;
    const engines = (await store.list('Engine', { namespace })).items;
    const left = (await store.list('Replica', { namespace })).items;
    assert.deepEqual(
      [volumes.length, engines.length, left.length],
      [0, 0, 0],
      'no volume, engine or replica resource',
    );
  }, 60_000);
  for (const [node, instances] of await instancesByNode(cluster)) {
    assert.deepEqual(
      instances.filter((instance) => instance.volume_name === 'vol1'),
      [],
      `no instance of vol1 on ${node}`,
    );
  }
  for (const folder of folders) assert.ok(!fs.existsSync(folder), `${folder} removed`);
  const events = await store.listEvents({ namespace, involvedObject: { kind: 'Volume', name: 'vol1' } });
  for (const reason of [
    'Created',
    'ReplicaScheduled',
    'FailedScheduling',
    'Attached',
    'Detached',
    'Deleted',
  ]) {
    assert.ok(
      events.some((event) => event.reason === reason),
      `an Event ${reason} was recorded`,
    );
  }
});
