/**
 * The volume controller's other features on one 3-node cluster: best-effort data locality
 * (a replica follows the engine), expansion while attached and while detached, and
 * snapshots taken and deleted through the engine.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
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

test('data locality, expansion and snapshots', { timeout: 300_000 }, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    // Independent of how full the host's disk is (every node's disk folder shares it).
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { store, namespace } = cluster;

  // Best-effort locality: the single replica moves to the engine's node.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'local', namespace },
    spec: { size: '32Mi', frontend: 'nbd', numberOfReplicas: 1, dataLocality: 'best-effort' },
  });
  const { replicas: placed } = await waitForVolume(
    cluster,
    'local',
    'one replica',
    (volume, list) => volume.status?.state === 'detached' && list.length === 1,
  );
  const away = cluster.nodes.find((node) => node.name !== placed[0].spec.nodeID)!.name;
  await patchVolumeSpec(cluster, 'local', { nodeID: away });
  const { volume: local } = await waitForVolume(
    cluster,
    'local',
    `attached on ${away} with its replica there`,
    (volume, list) =>
      isAttached(volume, away) &&
      volume.status?.robustness === 'healthy' &&
      list.length === 1 &&
      list[0].spec.nodeID === away,
  );
  assert.ok(local.status?.endpoint);

  // Strict-local: the one replica waits for the node, then goes there.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'strict', namespace },
    spec: { size: '32Mi', frontend: 'nbd', numberOfReplicas: 1, dataLocality: 'strict-local' },
  });
  const { volume: unset } = await waitForVolume(
    cluster,
    'strict',
    'Scheduled False',
    (volume) =>
      volume.status?.conditions?.some(
        (condition) => condition.type === 'Scheduled' && condition.status === 'False',
      ) === true,
  );
  assert.equal(
    unset.status?.conditions?.find((condition) => condition.type === 'Scheduled')?.reason,
    'StrictLocalNodeUnset',
  );
  await patchVolumeSpec(cluster, 'strict', { nodeID: 'node-3' });
  const { volume: strict, replicas: strictReplicas } = await waitForVolume(
    cluster,
    'strict',
    'attached on node-3 with its replica there',
    (volume, list) =>
      isAttached(volume, 'node-3') &&
      volume.status?.robustness === 'healthy' &&
      list.length === 1 &&
      list[0].spec.nodeID === 'node-3',
  );
  // Strict-local: the engine runs in its replica's thread and reaches it in memory.
  const onNode3 = (await instancesByNode(cluster)).get('node-3') ?? [];
  const strictEngine = onNode3.find(
    (instance) => instance.kind === 'engine' && instance.volume_name === 'strict',
  );
  assert.equal(strictEngine?.engine?.lane_host_replica, strictReplicas[0].metadata.name);
  const strictClient = await openNbd(strict.status!.endpoint!);
  await writeBlock(strictClient, MiB, pattern(31, 65_536));
  assert.ok((await readBlock(strictClient, MiB, 65_536)).equals(pattern(31, 65_536)));
  strictClient.close();

  // Attachment tickets: the highest priority decides where; no ticket and no nodeID: detached.
  await patchVolumeSpec(cluster, 'local', { nodeID: '' });
  await waitForVolume(cluster, 'local', 'detached', (volume) => volume.status?.state === 'detached');
  const ticket = (id: string, type: 'csi-attacher' | 'api', nodeID: string) => ({
    id,
    type,
    nodeID,
    parameters: {},
    generation: 1,
  });
  // The volume controller made the volume's VolumeAttachment; tickets are added to it.
  const attachment = await store.get({ kind: 'VolumeAttachment', namespace, name: 'local' });
  assert.deepEqual(attachment.spec, { volume: 'local', attachmentTickets: {} });
  await store.update({
    ...attachment,
    spec: { ...attachment.spec, attachmentTickets: { 'csi-a': ticket('csi-a', 'csi-attacher', 'node-1') } },
  });
  await waitForVolume(cluster, 'local', 'attached on node-1 by the csi ticket', (volume) =>
    isAttached(volume, 'node-1'),
  );
  await waitFor(async () => {
    const current = await store.get({ kind: 'VolumeAttachment', namespace, name: 'local' });
    assert.equal(current.status?.attachmentTicketStatuses?.['csi-a']?.satisfied, true);
  });
  let current = await store.get({ kind: 'VolumeAttachment', namespace, name: 'local' });
  await store.update({
    ...current,
    spec: {
      ...current.spec,
      attachmentTickets: { ...current.spec.attachmentTickets, 'api-b': ticket('api-b', 'api', 'node-3') },
    },
  });
  await waitForVolume(cluster, 'local', 'moved to node-3 by the api ticket', (volume) =>
    isAttached(volume, 'node-3'),
  );
  await waitFor(async () => {
    const statuses = (await store.get({ kind: 'VolumeAttachment', namespace, name: 'local' })).status
      ?.attachmentTicketStatuses;
    assert.equal(statuses?.['api-b']?.satisfied, true);
    assert.equal(statuses?.['csi-a']?.satisfied, false);
  });
  current = await store.get({ kind: 'VolumeAttachment', namespace, name: attachment.metadata.name });
  await store.update({ ...current, spec: { ...current.spec, attachmentTickets: {} } });
  await waitForVolume(
    cluster,
    'local',
    'detached without tickets',
    (volume) => volume.status?.state === 'detached',
  );

  // Expansion while attached, then while detached.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'grow', namespace },
    spec: { size: '32Mi', frontend: 'nbd', nodeID: 'node-1' },
  });
  await waitForVolume(
    cluster,
    'grow',
    'attached',
    (volume) => isAttached(volume, 'node-1') && volume.status?.robustness === 'healthy',
  );
  await patchVolumeSpec(cluster, 'grow', { size: '64Mi' });
  await waitFor(async () => {
    const engine = await store.get({ kind: 'Engine', namespace, name: 'grow-e-0' });
    assert.equal(engine.status?.currentSize, String(64 * MiB));
  });
  const { volume: grown } = await waitForVolume(
    cluster,
    'grow',
    'replicas at the new size',
    (_volume, list) => list.every((replica) => replica.spec.volumeSize === String(64 * MiB)),
  );
  let client = await openNbd(grown.status!.endpoint!);
  assert.equal(client.sizeBytes, 64 * MiB, 'the frontend shows the new size');
  const tail = pattern(5, MiB);
  await writeBlock(client, 63 * MiB, tail);
  await client.close();

  // Snapshots through the engine.
  await store.create({ kind: 'Snapshot', metadata: { name: 'snap1', namespace }, spec: { volume: 'grow' } });
  await waitFor(async () => {
    const snapshot = await store.get({ kind: 'Snapshot', namespace, name: 'snap1' });
    assert.equal(snapshot.status?.readyToUse, true, JSON.stringify(snapshot.status));
    assert.ok(snapshot.status?.creationTime);
    assert.equal(snapshot.status?.restoreSize, 64 * MiB);
  });
  await store.delete({ kind: 'Snapshot', namespace, name: 'snap1' });
  await waitFor(async () => {
    await assert.rejects(store.get({ kind: 'Snapshot', namespace, name: 'snap1' }), {
      code: 'RESOURCE_NOT_FOUND',
    });
  });

  await patchVolumeSpec(cluster, 'grow', { nodeID: '' });
  await waitForVolume(cluster, 'grow', 'detached', (volume) => volume.status?.state === 'detached');
  await patchVolumeSpec(cluster, 'grow', { size: '96Mi' });
  await waitForVolume(
    cluster,
    'grow',
    'expansionRequired',
    (volume) => volume.status?.expansionRequired === true,
  );
  await patchVolumeSpec(cluster, 'grow', { nodeID: 'node-3' });
  const { volume: again } = await waitForVolume(
    cluster,
    'grow',
    'attached at 96 MiB',
    (volume, list) =>
      isAttached(volume, 'node-3') &&
      volume.status?.expansionRequired === false &&
      list.every((replica) => replica.spec.volumeSize === String(96 * MiB)),
  );
  client = await openNbd(again.status!.endpoint!);
  assert.equal(client.sizeBytes, 96 * MiB);
  assert.ok(
    (await readBlock(client, 63 * MiB, MiB)).equals(tail),
    'data written before both expansions is there',
  );
  await client.close();
});
