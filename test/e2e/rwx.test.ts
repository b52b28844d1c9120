/**
 * RWX end to end (issue 8, must-hold 3) against a real cluster (test/e2e/helpers/cluster.ts):
 * an rwx volume gets a ShareManager that runs on a node with an endpoint at a stable service
 * address; two userspace NFS clients (libnfs-utils) write and read each other's files; the
 * hosting node's instance manager is killed (SIGKILL) → the share manager moves to another
 * node at the same address, and the clients continue after re-mounting (each nfs-* run is a
 * fresh mount). The failover time is measured (diagnostic; docs/rwx.md).
 *
 * On this machine the export is a directory on the share manager's node, not the replicated
 * volume (no kernel iSCSI initiator): files written before the failover stay on the dead
 * node, and the test asserts exactly that, next to new writes working.
 *
 * Until the lead registers the ShareManager controller in startControllers, the test starts it
 * itself next to the cluster, over the harness's HTTP store.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { parseServiceNetwork, serviceAddressFor } from '../../src/controllers/share-manager/decisions.ts';
import { startShareManagerController } from '../../src/controllers/share-manager/index.ts';
import { LAST_FAILOVER_SECONDS_ANNOTATION } from '../../src/controllers/share-manager/world.ts';
import type { ShareManager } from '../../src/resources/index.ts';
import {
  eventually,
  nfsCopy,
  nfsList,
  nfsRead,
  nfsUrl,
  requireShareTools,
} from '../integration/share-manager/nfs-helpers.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';
import { patchVolumeSpec } from './volume-helpers.ts';

async function freePort(address: string): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 40_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = net.createServer();
      server.once('error', () => resolve(false));
      server.listen({ host: address, port, exclusive: true }, () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

test('rwx: two NFS clients share a volume; the share manager fails over to another node', {
  timeout: 300_000,
}, async (t) => {
  if (!requireShareTools(t)) return;
  const cluster = await startCluster({
    t,
    nodes: 3,
    settings: {
      // The default node-down-timeout (30 s): the volume follows its share manager as soon as
      // the lease expired (fast failover), not when the node is declared down.
      'replica-replenishment-wait-interval': '600',
      'storage-minimal-available-percentage': '0',
    },
  });
  const { store, namespace } = cluster;
  // Service addresses in the upper half of this cluster's loopback block (nodes are .11+).
  const block = cluster.nodes[0].address.split('.').slice(0, 3).join('.');
  const serviceNetwork = `${block}.128/25`;
  const serviceAddress = serviceAddressFor('shared', parseServiceNetwork(serviceNetwork), new Set());
  const nfsPort = await freePort(serviceAddress);
  const records: Record<string, unknown>[] = [];
  const registered = cluster
    .logs('manager')
    .some((line) => line.includes('share manager controller started'));
  const controller = registered
    ? undefined
    : await startShareManagerController({
        store,
        namespace,
        log: (record) => records.push(record),
        instanceManagers: cluster.nodes.map((node) => ({ nodeID: node.name, grpcAddress: node.grpcAddress })),
        leaseDirectory: path.join(cluster.dataDirectory, 'share-manager-leases'),
        serviceNetwork,
        nfsPort,
        leaseDurationSeconds: 3,
        nfsOptions: 'min-version=4.0',
        pollIntervalMs: 500,
      });
  t.after(() => controller?.stop());
  if (registered) t.diagnostic('the manager runs the ShareManager controller itself; using its settings');

  await store.create({
    kind: 'Volume',
    metadata: { name: 'shared', namespace },
    spec: { size: '32Mi', frontend: 'nbd', accessMode: 'rwx', numberOfReplicas: 3 },
  });
  const getShareManager = () => store.get({ kind: 'ShareManager', namespace, name: 'shared' });
  const first = await waitFor(async () => {
    const shareManager = await getShareManager();
    assert.equal(shareManager.status?.state, 'running', JSON.stringify(shareManager.status));
    return shareManager;
  }, 120_000);
  const endpoint = first.status!.endpoint!;
  const hostNode = first.status!.nodeID!;
  const address = new URL(endpoint).hostname;
  const port = Number(new URL(endpoint).port);
  if (!registered) assert.equal(endpoint, `nfs://${serviceAddress}:${nfsPort}/shared`);
  const dataSource = first.status?.conditions?.find((condition) => condition.type === 'DataSource');
  assert.equal(dataSource?.status, 'False');
  assert.equal(dataSource?.reason, 'DirectoryExport');
  const volume = await store.get({ kind: 'Volume', namespace, name: 'shared' });
  assert.equal(volume.status?.shareEndpoint, endpoint);
  assert.equal(volume.status?.shareState, 'running');
  assert.equal(volume.status?.currentNodeID, hostNode, 'the volume is attached where its share manager runs');
  const attachment = await store.get({ kind: 'VolumeAttachment', namespace, name: 'shared' });
  assert.deepEqual(
    Object.values(attachment.spec.attachmentTickets).map((ticket) => [ticket.type, ticket.nodeID]),
    [['share-manager', hostNode]],
  );
  t.diagnostic(`share manager running on ${hostNode} at ${endpoint}`);

  // Two clients write, each reads the other's file.
  const scratch = path.join(cluster.dataDirectory, 'clients');
  fs.mkdirSync(scratch, { recursive: true });
  const local = (name: string, text: string) => {
    const file = path.join(scratch, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const url = (file: string) => nfsUrl(address, port, `/shared/${file}`);
  await nfsCopy(local('a.txt', 'client A before failover\n'), url('from-a.txt'));
  await nfsCopy(local('b.txt', 'client B before failover\n'), url('from-b.txt'));
  assert.equal(await nfsRead(url('from-a.txt')), 'client A before failover\n');
  assert.equal(await nfsRead(url('from-b.txt')), 'client B before failover\n');

  // The hosting node dies.
  const victim = cluster.nodes.find((node) => node.name === hostNode)!;
  const killedAtMs = Date.now();
  await victim.kill('SIGKILL');
  let moveDecidedMs: number | undefined;
  const moved = await waitFor(
    async () => {
      const shareManager: ShareManager = await getShareManager();
      if (moveDecidedMs === undefined && (shareManager.status?.nodeID ?? hostNode) !== hostNode)
        moveDecidedMs = Date.now() - killedAtMs;
      assert.equal(shareManager.status?.state, 'running');
      assert.notEqual(shareManager.status?.nodeID, hostNode);
      return shareManager;
    },
    180_000,
    100,
  );
  const runningAgainMs = Date.now() - killedAtMs;
  assert.equal(moved.status?.endpoint, endpoint, 'the same service address after the move');
  // Fast failover: the volume was attached on the new node before its old node was declared
  // down (Ready False needs node-down-timeout, 30 s here; the lease expires after 15 s).
  const victimNode = await store.get({ kind: 'Node', namespace, name: hostNode });
  assert.notEqual(
    victimNode.status?.conditions?.find((condition) => condition.type === 'Ready')?.status,
    'False',
    'the share manager serves again before the old node is marked down',
  );
  // Clients re-mount (a fresh nfs-ls) until the export answers.
  await eventually(
    async () => {
      const listing = await nfsList(nfsUrl(address, port, '/shared'));
      if (listing.code !== 0) throw new Error(listing.stderr);
    },
    30_000,
    100,
  );
  const clientsBackMs = Date.now() - killedAtMs;
  const measured = await waitFor(async () => {
    const value = (await getShareManager()).metadata.annotations?.[LAST_FAILOVER_SECONDS_ANNOTATION];
    assert.ok(value !== undefined);
    return value;
  }, 10_000);
  t.diagnostic(
    `failover ${hostNode} → ${moved.status?.nodeID}: share manager running again ${(runningAgainMs / 1000).toFixed(1)} s after SIGKILL; ` +
      `clients served again after ${(clientsBackMs / 1000).toFixed(1)} s; controller measured ${measured} s (last healthy → serving); ` +
      `the move was decided (lease expired) after ${((moveDecidedMs ?? 0) / 1000).toFixed(1)} s`,
  );
  const failoverEvents = (
    await store.listEvents({ namespace, involvedObject: { kind: 'ShareManager', name: 'shared' } })
  ).filter((event) => event.reason === 'ShareManagerFailover');
  assert.equal(failoverEvents.length, 1);

  // The clients continue: new writes, each reads the other's.
  await nfsCopy(local('a2.txt', 'client A after failover\n'), url('after-a.txt'));
  await nfsCopy(local('b2.txt', 'client B after failover\n'), url('after-b.txt'));
  assert.equal(await nfsRead(url('after-a.txt')), 'client A after failover\n');
  assert.equal(await nfsRead(url('after-b.txt')), 'client B after failover\n');
  // Directory export: what was written before the failover stayed on the dead node.
  await assert.rejects(nfsRead(url('from-a.txt')), /failed/);
  const volumeAfter = await store.get({ kind: 'Volume', namespace, name: 'shared' });
  assert.equal(volumeAfter.status?.currentNodeID, moved.status?.nodeID);
  assert.equal(volumeAfter.status?.shareEndpoint, endpoint);

  // A second rwx volume changed to rwo: its share manager, ticket and share status go.
  await store.create({
    kind: 'Volume',
    metadata: { name: 'switch', namespace },
    spec: { size: '16Mi', frontend: 'nbd', accessMode: 'rwx', numberOfReplicas: 2 },
  });
  const switchEndpoint = await waitFor(async () => {
    const shareManager = await store.get({ kind: 'ShareManager', namespace, name: 'switch' });
    assert.equal(shareManager.status?.state, 'running');
    return shareManager.status!.endpoint!;
  }, 120_000);
  assert.notEqual(new URL(switchEndpoint).hostname, address, 'another service address');
  await patchVolumeSpec(cluster, 'switch', { accessMode: 'rwo' });
  await waitFor(async () => {
    const { items } = await store.list('ShareManager', { namespace });
    assert.deepEqual(
      items.map((item) => item.metadata.name),
      ['shared'],
    );
    const attachment = await store.get({ kind: 'VolumeAttachment', namespace, name: 'switch' });
    assert.deepEqual(attachment.spec.attachmentTickets, {});
    const switched = await store.get({ kind: 'Volume', namespace, name: 'switch' });
    assert.equal(switched.status?.shareEndpoint, undefined);
    assert.equal(switched.status?.shareState, undefined);
  }, 60_000);

  // Deleting the volume removes the share manager, its process and its ticket.
  await store.delete({ kind: 'Volume', namespace, name: 'shared' });
  await waitFor(async () => {
    const { items } = await store.list('ShareManager', { namespace });
    assert.equal(items.length, 0);
  }, 60_000);
  await eventually(
    async () => {
      const listing = await nfsList(nfsUrl(address, port, '/shared'));
      assert.notEqual(listing.code, 0, 'the export is gone');
    },
    30_000,
    200,
  );
});
