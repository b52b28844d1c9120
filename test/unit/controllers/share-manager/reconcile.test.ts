/**
 * The ShareManager reconcile against a real store (embedded, Kubernetes semantics) with fake
 * instance managers and a controlled clock: create → node chosen → ticket → wait for attach →
 * CreateShareManager → running (endpoint, DataSource False, Volume share status); a failed
 * share manager is started again in place; an unreachable node is waited for until the lease
 * expires, then the lease is broken and the share manager moves (ticket, annotations, the
 * ShareManagerFailover Event); accessMode changed away from rwx tears it down without waiting
 * for a node that is down, deleting the lease. Run on both lease backends: files (embedded
 * mode) and Lease objects over HTTP (Kubernetes mode, test/helpers/kubernetes-lease-server.ts);
 * and in Kubernetes mode whole — Lease objects plus the stable address as a Service and an
 * EndpointSlice over HTTP (test/helpers/kubernetes-service-server.ts): the share manager
 * listens on its node's address and allocated port, the EndpointSlice follows it from node-1
 * to node-2, the endpoint stays nfs://<ClusterIP>/vol, teardown deletes both objects.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import {
  inServiceNetwork,
  parseServiceNetwork,
} from '../../../../src/controllers/share-manager/decisions.ts';
import { instanceManagerHosting } from '../../../../src/controllers/share-manager/hosting.ts';
import { leaseRequestFields } from '../../../../src/controllers/share-manager/index.ts';
import { kubernetesShareManagerServices } from '../../../../src/controllers/share-manager/kubernetes-services.ts';
import { reconcileShareManager } from '../../../../src/controllers/share-manager/reconcile.ts';
import {
  embeddedShareManagerServices,
  LISTEN_PORT_ANNOTATION,
  type ShareManagerServices,
} from '../../../../src/controllers/share-manager/services.ts';
import {
  ADDRESS_ANNOTATION,
  AddressAllocator,
  LAST_FAILOVER_SECONDS_ANNOTATION,
  LeaseWatch,
  PREVIOUS_NODES_ANNOTATION,
  type ShareManagerWorld,
} from '../../../../src/controllers/share-manager/world.ts';
import { openEmbeddedStore } from '../../../../src/resources/store/embedded.ts';
import { fileShareManagerLeases, type ShareManagerLeases } from '../../../../src/share-manager/index.ts';
import { kubernetesShareManagerLeases } from '../../../../src/share-manager/kubernetes-leases.ts';
import { startKubernetesLeaseServer } from '../../../helpers/kubernetes-lease-server.ts';
import {
  type KubernetesServiceServer,
  startKubernetesServiceServer,
} from '../../../helpers/kubernetes-service-server.ts';
import { tempDirectory } from '../../../helpers/temp.ts';
import { FakeInstanceManager, namespace, setAttached, setNodeReady } from './fixtures.ts';

const backends: Record<string, (t: TestContext, directory: string) => Promise<ShareManagerLeases>> = {
  file: async (_t, directory) => fileShareManagerLeases(path.join(directory, 'leases')),
  kubernetes: async (t) => {
    const server = await startKubernetesLeaseServer();
    t.after(() => server.close());
    return kubernetesShareManagerLeases(server.kubeConfig, { namespace });
  },
};

for (const [backend, openLeases] of Object.entries(backends)) {
  test(`share manager reconcile (${backend} leases): start, restart in place, fail over on lease expiry, tear down`, async (t) => {
    await scenario(t, openLeases, false);
  });
}

test('share manager reconcile in Kubernetes mode (Lease objects, Service and EndpointSlice): the EndpointSlice follows the share manager, the ClusterIP endpoint stays', async (t) => {
  await scenario(t, backends.kubernetes, true);
});

const nodeAddresses: Record<string, string> = { 'node-1': '10.0.0.1', 'node-2': '10.0.0.2' };

async function scenario(
  t: TestContext,
  openLeases: (t: TestContext, directory: string) => Promise<ShareManagerLeases>,
  kubernetesServices: boolean,
): Promise<void> {
  const directory = tempDirectory(t, 'hornbill-sm-reconcile-');
  const backend = await openLeases(t, directory);
  const lease = backend.client('vol');
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  t.after(() => store.close());
  let nowMs = Date.now();
  const managers = new Map(['node-1', 'node-2'].map((node) => [node, new FakeInstanceManager(node)]));
  const leases = new LeaseWatch(backend);
  const network = parseServiceNetwork('127.201.0.0/16');
  let apiServer: KubernetesServiceServer | undefined;
  let services: ShareManagerServices;
  if (kubernetesServices) {
    const server = await startKubernetesServiceServer();
    t.after(() => server.close());
    apiServer = server;
    // resyncMs 0: every running pass checks the objects (the test reads them in between).
    services = kubernetesShareManagerServices(server.kubeConfig, { namespace, store, resyncMs: 0 });
  } else {
    services = embeddedShareManagerServices({
      allocator: new AddressAllocator({ network, store, namespace }),
      nfsPort: 2049,
    });
  }
  const events: string[] = [];
  let healthyAt: number | undefined;
  const world: ShareManagerWorld = {
    store,
    namespace,
    nfsPort: 2049,
    pollIntervalMs: 1000,
    hasInstanceManager: (node) => managers.has(node),
    hosting: instanceManagerHosting((node) => managers.get(node)?.client()),
    nodeAddress: (node) => nodeAddresses[node],
    services,
    leaseLocation: (volume) => leases.location(volume),
    removeLease: (volume) => leases.remove(volume),
    leaseState: (volume) => leases.state(volume, nowMs),
    breakLease: (volume) => leases.breakExpired(volume, nowMs),
    markHealthy: () => {
      healthyAt = nowMs;
    },
    lastHealthyMs: () => healthyAt,
    forget: (volume) => leases.forget(volume),
    createRequest: (volume, shareManager) => ({
      name: `share-manager-${volume.metadata.name}`,
      volume_name: volume.metadata.name,
      ...services.listenAddress(shareManager, nodeAddresses[shareManager.status?.nodeID ?? '']),
      ...leaseRequestFields(leases.location(volume.metadata.name)),
    }),
    event: async (_object, _type, reason) => {
      events.push(reason);
    },
  };
  for (const name of managers.keys()) {
    await store.create({ kind: 'Node', metadata: { name, namespace }, spec: {} });
    await setNodeReady(store, name, 'True');
  }
  await store.create({
    kind: 'Volume',
    metadata: { name: 'vol', namespace },
    spec: { size: '16Mi', accessMode: 'rwx' },
  });
  await store.create({
    kind: 'VolumeAttachment',
    metadata: { name: 'vol', namespace },
    spec: { volume: 'vol' },
  });
  const shareManager = () => store.get({ kind: 'ShareManager', namespace, name: 'vol' });
  const reconcile = () => reconcileShareManager(world, 'vol');

  // Created with an address of the network (embedded) or a listen port (Kubernetes); a node
  // is chosen; the ticket names it.
  await reconcile();
  const annotations = (await shareManager()).metadata.annotations ?? {};
  const address = annotations[ADDRESS_ANNOTATION] ?? '';
  const listenPort = Number(annotations[LISTEN_PORT_ANNOTATION]);
  if (kubernetesServices) {
    assert.equal(address, '', 'no loopback address in Kubernetes mode');
    assert.ok(listenPort >= 20490 && listenPort <= 21489, `listen port ${listenPort}`);
  } else assert.ok(inServiceNetwork(network, address), address);
  await reconcile();
  assert.deepEqual((await shareManager()).status?.nodeID, 'node-1');
  await reconcile();
  const attachment = await store.get({ kind: 'VolumeAttachment', namespace, name: 'vol' });
  assert.equal(attachment.spec.attachmentTickets['share-manager-vol']?.nodeID, 'node-1');
  assert.equal(attachment.spec.attachmentTickets['share-manager-vol']?.type, 'share-manager');
  assert.equal((await shareManager()).status?.state, 'starting');
  assert.ok(
    !managers.get('node-1')!.calls.includes('CreateShareManager'),
    'not before the volume is attached',
  );

  // Attached there → started → running.
  await setAttached(store, 'node-1');
  await reconcile();
  let current = await shareManager();
  assert.equal(current.status?.state, 'running');
  let expectedEndpoint = `nfs://${address}:2049/vol`;
  let clusterIP = '';
  if (apiServer !== undefined) {
    const request = managers.get('node-1')!.requests[0];
    assert.equal(request.address, '10.0.0.1', 'the share manager listens on its node address');
    assert.equal(request.port, listenPort);
    const service = apiServer.services.get(`${namespace}/share-manager-vol`);
    assert.ok(service !== undefined, 'the Service exists');
    assert.deepEqual(
      service.spec.ports.map((port: { name: string; port: number; protocol: string }) => [
        port.name,
        port.port,
        port.protocol,
      ]),
      [['nfs', 2049, 'TCP']],
    );
    assert.equal(service.spec.selector, undefined, "no selector: the EndpointSlice is the controller's");
    assert.equal(
      service.metadata.ownerReferences?.[0]?.uid,
      current.metadata.uid,
      'owned by the ShareManager',
    );
    assert.ok(current.metadata.uid, 'the ShareManager has a uid');
    clusterIP = service.spec.clusterIP;
    assert.match(clusterIP, /^10\.96\.0\.\d+$/);
    assertEndpointSlice(apiServer, 'node-1', '10.0.0.1', listenPort, current.metadata.uid);
    expectedEndpoint = `nfs://${clusterIP}/vol`;
  }
  assert.equal(current.status?.endpoint, expectedEndpoint);
  const dataSource = current.status?.conditions?.find((condition) => condition.type === 'DataSource');
  assert.equal(dataSource?.status, 'False');
  assert.equal(dataSource?.reason, 'DirectoryExport');
  const leaseFields = managers.get('node-1')!.requests[0];
  assert.equal(
    leaseFields.lease_backend,
    backend.backend,
    'the share manager gets the lease the controller reads',
  );
  if (backend.backend === 'kubernetes') assert.equal(leaseFields.lease_namespace, namespace);
  else assert.equal(leaseFields.lease_file, path.join(directory, 'leases', 'vol.json'));
  let volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.equal(volume.status?.shareEndpoint, expectedEndpoint);
  assert.equal(volume.status?.shareState, 'running');

  // Failed in place → started again there.
  managers.get('node-1')!.shares.get('share-manager-vol')!.state = 'error';
  await reconcile();
  assert.equal(managers.get('node-1')!.calls.filter((call) => call === 'CreateShareManager').length, 2);

  // Node 1 stops answering while its lease is fresh: wait, still running, Ready Unknown.
  await lease.create({
    holderIdentity: 'node-1/share-manager-vol',
    leaseDurationSeconds: 3,
    leaseTransitions: 0,
    renewTimeMs: nowMs,
  });
  managers.get('node-1')!.reachable = false;
  const result = await reconcile();
  current = await shareManager();
  assert.equal(current.status?.state, 'running');
  assert.equal(current.status?.nodeID, 'node-1');
  assert.equal(
    current.status?.conditions?.find((condition) => condition.type === 'Ready')?.status,
    'Unknown',
  );
  assert.ok((result.requeueAfterMs ?? 0) > 0);

  // The lease expires by the controller's clock → broken, moved to node 2.
  nowMs += 3_100;
  await reconcile();
  current = await shareManager();
  assert.equal(current.status?.nodeID, 'node-2');
  assert.equal(current.status?.state, 'starting');
  assert.equal(current.metadata.annotations?.[PREVIOUS_NODES_ANNOTATION], 'node-1');
  assert.equal((await lease.get())?.holderIdentity, '', 'lease broken');
  assert.ok(events.includes('ShareManagerMoving'));
  await reconcile(); // ticket moves
  assert.equal(
    (await store.get({ kind: 'VolumeAttachment', namespace, name: 'vol' })).spec.attachmentTickets[
      'share-manager-vol'
    ]?.nodeID,
    'node-2',
  );
  await setAttached(store, 'node-2');
  nowMs += 1_000;
  await reconcile();
  current = await shareManager();
  assert.equal(current.status?.state, 'running');
  assert.equal(current.status?.endpoint, expectedEndpoint, 'the same endpoint on the new node');
  volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.equal(volume.status?.shareEndpoint, expectedEndpoint);
  if (apiServer !== undefined) {
    const request = managers.get('node-2')!.requests[0];
    assert.equal(request.address, '10.0.0.2');
    assert.equal(request.port, listenPort, 'the same listen port on every node');
    assert.equal(apiServer.services.get(`${namespace}/share-manager-vol`)?.spec.clusterIP, clusterIP);
    assertEndpointSlice(apiServer, 'node-2', '10.0.0.2', listenPort, current.metadata.uid);
  }
  assert.ok(current.metadata.annotations?.[LAST_FAILOVER_SECONDS_ANNOTATION] !== undefined);
  assert.ok(events.includes('ShareManagerFailover'));

  // rwo: torn down; node 1 is down, so it is not waited for.
  await setNodeReady(store, 'node-1', 'False');
  volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  await store.update({ ...volume, spec: { ...volume.spec, accessMode: 'rwo' } });
  await reconcile();
  assert.equal((await store.list('ShareManager', { namespace })).items.length, 0);
  assert.equal(managers.get('node-2')!.shares.size, 0);
  assert.deepEqual(
    (await store.get({ kind: 'VolumeAttachment', namespace, name: 'vol' })).spec.attachmentTickets,
    {},
  );
  volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.equal(volume.status?.shareEndpoint, undefined);
  assert.equal(volume.status?.shareState, undefined);
  assert.equal(await lease.get(), undefined, 'the lease deleted');
  if (apiServer !== undefined) {
    assert.equal(apiServer.services.size, 0, 'the Service deleted');
    assert.equal(apiServer.endpointSlices.size, 0, 'the EndpointSlice deleted');
  }
}

function assertEndpointSlice(
  server: KubernetesServiceServer,
  node: string,
  address: string,
  port: number,
  ownerUid: string | undefined,
): void {
  const slice = server.endpointSlices.get(`${namespace}/share-manager-vol`);
  assert.ok(slice !== undefined, 'the EndpointSlice exists');
  assert.equal(slice.metadata.labels['kubernetes.io/service-name'], 'share-manager-vol');
  assert.equal(slice.addressType, 'IPv4');
  assert.deepEqual(slice.endpoints, [{ addresses: [address], conditions: { ready: true }, nodeName: node }]);
  assert.deepEqual(slice.ports, [{ name: 'nfs', port, protocol: 'TCP' }]);
  assert.equal(slice.metadata.ownerReferences?.[0]?.uid, ownerUid);
}
