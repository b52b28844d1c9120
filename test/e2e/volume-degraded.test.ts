/**
 * Must-hold 3 of issue 5 on one 4-node cluster: an instance manager holding a replica is
 * killed (SIGKILL) while a writer keeps writing through the frontend. The volume keeps
 * serving and goes degraded.
 * (a) The node comes back within replica-replenishment-wait-interval: the same replica is
 *     reused (its rebuild held while concurrent-replica-rebuild-per-node-limit is 0) and
 *     re-syncs only what changed (the rebuild transfers a fraction of the data).
 * (b) The node stays away: after the wait interval (and node-down-timeout) a new replica is
 *     built on the free fourth node.
 * Either way the volume returns to healthy by itself, and every block reads back as last written.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NbdClient } from '../../src/bench/nbd-client.ts';
import { InstanceManagerClient } from '../../src/dataplane/instance-manager/grpc-client.ts';
import type { Cluster } from './helpers/cluster.ts';
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
const BLOCK = 64 * 1024;
const VOLUME_BYTES = 64 * MiB;

/** Writes blocks in a loop; remembers the last content of each block; counts failures. */
class Writer {
  readonly model = new Map<number, Buffer>();
  failures: unknown[] = [];
  writes = 0;
  private running = true;
  private readonly done: Promise<void>;
  constructor(client: NbdClient, firstBlock: number, blocks: number, seed: number) {
    this.done = (async () => {
      let index = 0;
      while (this.running) {
        const block = firstBlock + ((index * 7) % blocks);
        const data = pattern(seed * 1_000_000 + index, BLOCK);
        try {
          await writeBlock(client, block * BLOCK, data);
          this.model.set(block, data);
          this.writes++;
        } catch (error) {
          this.failures.push(error);
        }
        index++;
        await sleep(5);
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
  }
}

async function engineRebuild(cluster: Cluster, nodeName: string, engine: string) {
  const node = cluster.nodes.find((entry) => entry.name === nodeName)!;
  const client = new InstanceManagerClient(node.grpcAddress, { deadlineMs: 10_000 });
  try {
    return (await client.call('GetEngineStatus', { name: engine })).rebuild;
  } finally {
    client.close();
  }
}

async function setSetting(cluster: Cluster, name: string, value: string): Promise<void> {
  const setting = await cluster.store.get({ kind: 'Setting', namespace: cluster.namespace, name });
  await cluster.store.update({ ...setting, spec: { value } });
}

test('a killed replica node: degraded under I/O, then healthy by reuse or by a new replica', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 4,
    // Independent of how full the host's disk is (every node's disk folder shares it).
    settings: {
      'replica-replenishment-wait-interval': '120',
      'node-down-timeout': '30',
      'storage-minimal-available-percentage': '0',
    },
  });
  const { store, namespace } = cluster;
  await store.create({
    kind: 'Volume',
    metadata: { name: 'vol', namespace },
    spec: { size: String(VOLUME_BYTES), frontend: 'nbd', nodeID: 'node-1', numberOfReplicas: 3 },
  });
  const { volume, replicas } = await waitForVolume(
    cluster,
    'vol',
    'attached and healthy',
    (entry) => isAttached(entry, 'node-1') && entry.status?.robustness === 'healthy',
  );
  const client = await openNbd(volume.status!.endpoint!);
  t.after(() => client.close());
  // 16 MiB of data before anything fails.
  const model = new Map<number, Buffer>();
  for (let block = 0; block < 256; block++) {
    const data = pattern(block + 1, BLOCK);
    await writeBlock(client, block * BLOCK, data);
    model.set(block, data);
  }

  // (a) Kill a node holding a replica (not the engine's), write meanwhile, bring it back.
  const victim = replicas.find((replica) => replica.spec.nodeID !== 'node-1')!;
  const victimNode = cluster.nodes.find((node) => node.name === victim.spec.nodeID)!;
  // A failed assertion must not leave a writer looping (the test process would not end).
  const writers: Writer[] = [];
  t.after(() => Promise.all(writers.map((entry) => entry.stop())));
  let writer = new Writer(client, 0, 16, 1);
  writers.push(writer);
  await sleep(300);
  await victimNode.kill('SIGKILL');
  await waitForVolume(cluster, 'vol', 'degraded', (entry) => entry.status?.robustness === 'degraded', 30_000);
  // With concurrent-replica-rebuild-per-node-limit 0 no rebuild starts, even once the node is back.
  await setSetting(cluster, 'concurrent-replica-rebuild-per-node-limit', '0');
  await sleep(1000);
  await victimNode.start();
  await waitFor(async () => {
    const reused = await store.listEvents({ namespace, involvedObject: { kind: 'Volume', name: 'vol' } });
    assert.ok(
      reused.some((event) => event.reason === 'ReplicaReused'),
      'the returning replica is reused',
    );
  }, 30_000);
  await sleep(3000);
  const held = await store.get({ kind: 'Engine', namespace, name: 'vol-e-0' });
  assert.ok(
    !(victim.metadata.name in held.spec.replicaAddressMap),
    'the rebuild waits for the per-node limit',
  );
  assert.equal((await store.get({ kind: 'Volume', namespace, name: 'vol' })).status?.robustness, 'degraded');
  await setSetting(cluster, 'concurrent-replica-rebuild-per-node-limit', '5');
  await waitForVolume(
    cluster,
    'vol',
    'healthy again with the same replicas',
    (entry, list) =>
      entry.status?.robustness === 'healthy' &&
      list.length === 3 &&
      list.some(
        (replica) => replica.metadata.name === victim.metadata.name && replica.spec.failedAt === undefined,
      ),
    60_000,
  );
  await writer.stop();
  assert.deepEqual(writer.failures, [], 'every write succeeded while the node was away');
  assert.ok(writer.writes > 0);
  for (const [block, data] of writer.model) model.set(block, data);
  const names = (await store.list('Replica', { namespace })).items
    .map((replica) => replica.metadata.name)
    .sort();
  assert.deepEqual(
    names,
    replicas.map((replica) => replica.metadata.name).sort(),
    'no replica was added: the old one was reused',
  );
  const rebuild = await engineRebuild(cluster, 'node-1', 'vol-e-0');
  assert.ok(rebuild !== undefined && rebuild !== null, 'the engine reports the rebuild');
  assert.equal(rebuild.state, 'done');
  t.diagnostic(
    `returning replica: ${rebuild.transferred_bytes} bytes sent, ${rebuild.done_bytes} of ${rebuild.total_bytes} checked`,
  );
  assert.ok(
    Number(rebuild.transferred_bytes) < 8 * MiB,
    `the returning replica re-synced only what changed: ${rebuild.transferred_bytes} bytes sent of ${rebuild.total_bytes}`,
  );
  const events = await store.listEvents({ namespace, involvedObject: { kind: 'Volume', name: 'vol' } });
  assert.ok(
    events.some((event) => event.reason === 'ReplicaReused'),
    'ReplicaReused event',
  );

  // (b) Kill another replica node and keep it away: a new replica goes to the free node.
  await setSetting(cluster, 'replica-replenishment-wait-interval', '2');
  await setSetting(cluster, 'node-down-timeout', '5');
  const current = (await store.list('Replica', { namespace })).items;
  const used = new Set(current.map((replica) => replica.spec.nodeID));
  const freeNode = cluster.nodes.find((node) => !used.has(node.name))!.name;
  const second = current.find((replica) => replica.spec.nodeID !== 'node-1')!;
  const secondNode = cluster.nodes.find((node) => node.name === second.spec.nodeID)!;
  writer = new Writer(client, 32, 16, 2);
  writers.push(writer);
  await sleep(300);
  await secondNode.kill('SIGKILL');
  await waitForVolume(cluster, 'vol', 'degraded', (entry) => entry.status?.robustness === 'degraded', 30_000);
  const { replicas: after } = await waitForVolume(
    cluster,
    'vol',
    `healthy with a replica on ${freeNode}`,
    (entry, list) =>
      entry.status?.robustness === 'healthy' &&
      list.some((replica) => replica.spec.nodeID === freeNode && replica.spec.failedAt === undefined),
    90_000,
  );
  await writer.stop();
  assert.deepEqual(writer.failures, [], 'every write succeeded while the second node was away');
  for (const [block, data] of writer.model) model.set(block, data);
  const failed = after.find((replica) => replica.metadata.name === second.metadata.name);
  assert.ok(failed?.spec.failedAt !== undefined, 'the replica on the dead node is marked failed');
  await waitFor(async () => {
    const node = await store.get({ kind: 'Node', namespace, name: secondNode.name });
    const ready = node.status?.conditions?.find((condition) => condition.type === 'Ready');
    assert.equal(ready?.status, 'False', 'the dead node is marked down after node-down-timeout');
    assert.equal(ready?.reason, 'InstanceManagerUnreachable');
  }, 30_000);

  // Every block reads back as last written.
  for (const [block, data] of model) {
    assert.ok((await readBlock(client, block * BLOCK, BLOCK)).equals(data), `block ${block} reads back`);
  }
  await client.close();
  await patchVolumeSpec(cluster, 'vol', { nodeID: '' });
  await waitForVolume(cluster, 'vol', 'detached', (entry) => entry.status?.state === 'detached');

  // Deleted while a node is down: the resources go at once; the folder left on the dead
  // node is removed when it comes back.
  const leftBehind = path.join(second.spec.diskPath, 'replicas', second.spec.dataDirectoryName);
  assert.ok(fs.existsSync(leftBehind), `${leftBehind} is still on the dead node's disk`);
  await store.delete({ kind: 'Volume', namespace, name: 'vol' });
  await waitFor(async () => {
    assert.equal((await store.list('Replica', { namespace })).items.length, 0);
    await assert.rejects(store.get({ kind: 'Volume', namespace, name: 'vol' }), {
      code: 'RESOURCE_NOT_FOUND',
    });
  });
  const replicaEvents = await store.listEvents({
    namespace,
    involvedObject: { kind: 'Replica', name: second.metadata.name },
  });
  assert.ok(
    replicaEvents.some((event) => event.reason === 'DataLeftOnDownNode'),
    'DataLeftOnDownNode event',
  );
  await secondNode.start();
  await waitFor(
    async () => assert.ok(!fs.existsSync(leftBehind), `${leftBehind} removed once its node is back`),
    30_000,
  );
  for (const node of cluster.nodes) {
    const root = path.join(node.disk, 'replicas');
    assert.deepEqual(
      fs.existsSync(root) ? fs.readdirSync(root) : [],
      [],
      `no replica folder left on ${node.name}`,
    );
  }
});
