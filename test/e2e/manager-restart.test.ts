/**
 * Must-hold 4 of issue 5: the manager is killed (SIGKILL) in the middle of creating
 * volumes, of attaching one and of deleting one, and started again; and once while a
 * volume is attached and healthy, which must change nothing an operator sees. Reconciliation resumes
 * from the stored state: every volume ends with exactly its replicas, the attach completes
 * and the data written is there, the delete completes, and the instance managers run no
 * process and hold no folder that no resource accounts for.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from './helpers/cluster.ts';
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

/** Polls (quickly) until `check` holds, then kills the manager at once and starts it again. */
async function killManagerWhen(cluster: Cluster, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (await check().catch(() => false)) break;
    if (Date.now() > deadline) assert.fail(`gave up waiting for ${what}`);
    await sleep(20);
  }
  await cluster.manager.kill('SIGKILL');
  await cluster.manager.start();
}

/** Every folder under each node's disk/replicas/. */
function replicaFolders(cluster: Cluster): Set<string> {
  const folders = new Set<string>();
  for (const node of cluster.nodes) {
    const root = path.join(node.disk, 'replicas');
    if (!fs.existsSync(root)) continue;
    for (const entry of fs.readdirSync(root)) folders.add(path.join(root, entry));
  }
  return folders;
}

test('the manager killed mid-create, mid-attach and mid-delete resumes without loss or duplicates', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    // Independent of how full the host's disk is (every node's disk folder shares it).
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { store, namespace } = cluster;
  const volumes = ['vol-a', 'vol-b', 'vol-c'];

  // Mid-create: as soon as the first replica exists.
  for (const name of volumes) {
    await store.create({
      kind: 'Volume',
      metadata: { name, namespace },
      spec: { size: '32Mi', frontend: 'nbd' },
    });
  }
  await killManagerWhen(
    cluster,
    'a first replica',
    async () => (await store.list('Replica', { namespace })).items.length > 0,
  );
  for (const name of volumes) {
    await waitForVolume(
      cluster,
      name,
      'detached and healthy with 3 replicas',
      (volume, replicas) =>
        volume.status?.state === 'detached' &&
        volume.status.robustness === 'healthy' &&
        replicas.length === 3,
    );
  }
  const replicas = (await store.list('Replica', { namespace })).items;
  assert.equal(replicas.length, 9, 'three replicas per volume, none twice');
  for (const name of volumes) {
    const nodes = replicas
      .filter((replica) => replica.spec.volumeName === name)
      .map((replica) => replica.spec.nodeID);
    assert.equal(new Set(nodes).size, 3, `${name}: one replica per node`);
  }

  // Mid-attach: as soon as the engine is asked to run.
  await patchVolumeSpec(cluster, 'vol-a', { nodeID: 'node-2' });
  await killManagerWhen(cluster, 'vol-a attaching', async () => {
    const replicasOfA = (await store.list('Replica', { namespace })).items.filter(
      (replica) => replica.spec.volumeName === 'vol-a',
    );
    return replicasOfA.some((replica) => replica.spec.desireState === 'running');
  });
  const { volume } = await waitForVolume(
    cluster,
    'vol-a',
    'attached on node-2',
    (entry) => isAttached(entry, 'node-2') && entry.status?.robustness === 'healthy',
  );
  const data = pattern(7, 256 * 1024);
  const client = await openNbd(volume.status!.endpoint!);
  await writeBlock(client, 4096 * 16, data);
  assert.ok((await readBlock(client, 4096 * 16, data.length)).equals(data));
  await client.close();

  // A restart while attached and healthy changes nothing an operator sees.
  const counts = async () => {
    const events = await store.listEvents({ namespace, involvedObject: { kind: 'Volume', name: 'vol-a' } });
    const watched = ['Attaching', 'Detaching', 'Degraded', 'Faulted', 'Unknown', 'ReplicaFailed'];
    return Object.fromEntries(
      watched.map((reason) => [
        reason,
        events.filter((event) => event.reason === reason).reduce((sum, event) => sum + event.count, 0),
      ]),
    );
  };
  const before = await counts();
  await cluster.manager.kill('SIGKILL');
  await cluster.manager.start();
  await sleep(4000);
  const steady = await store.get({ kind: 'Volume', namespace, name: 'vol-a' });
  assert.equal(steady.status?.state, 'attached');
  assert.equal(steady.status?.robustness, 'healthy');
  assert.deepEqual(await counts(), before, 'no state flapped across the restart');

  // Mid-delete: as soon as the volume is being deleted.
  await store.delete({ kind: 'Volume', namespace, name: 'vol-a' });
  await killManagerWhen(cluster, 'vol-a deleting', async () => {
    const engines = (await store.list('Engine', { namespace })).items;
    return !engines.some(
      (engine) => engine.spec.volumeName === 'vol-a' && engine.metadata.deletionTimestamp === undefined,
    );
  });
  await waitFor(async () => {
    const left = (await store.list('Replica', { namespace })).items.filter(
      (replica) => replica.spec.volumeName === 'vol-a',
    );
    assert.equal(left.length, 0, 'vol-a replicas gone');
    await assert.rejects(store.get({ kind: 'Volume', namespace, name: 'vol-a' }), {
      code: 'RESOURCE_NOT_FOUND',
    });
  });

  // Nothing runs and nothing is stored that no resource accounts for.
  const remaining = (await store.list('Replica', { namespace })).items;
  assert.equal(remaining.length, 6);
  await waitFor(async () => {
    const expectedFolders = new Set(
      remaining.map((replica) =>
        path.join(replica.spec.diskPath, 'replicas', replica.spec.dataDirectoryName),
      ),
    );
    for (const folder of replicaFolders(cluster))
      assert.ok(expectedFolders.has(folder), `folder ${folder} belongs to a replica`);
    const names = new Set(remaining.map((replica) => replica.metadata.name));
    for (const [node, instances] of await instancesByNode(cluster)) {
      for (const instance of instances) {
        assert.ok(
          names.has(instance.name),
          `instance ${instance.name} on ${node} belongs to a replica resource`,
        );
      }
    }
  }, 30_000);
  const engines = (await store.list('Engine', { namespace })).items
    .map((engine) => engine.metadata.name)
    .sort();
  assert.deepEqual(engines, ['vol-b-e-0', 'vol-c-e-0']);
});
