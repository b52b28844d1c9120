/**
 * Kubernetes mode whole, with the share manager in a Pod of its own (kubernetes-pods.ts):
 * Lease objects, the Service and EndpointSlice, and the Pod `share-manager-<volume>`, each over
 * HTTP against a stand-in of its API endpoints (test/helpers/kubernetes-*-server.ts); the test
 * plays the kubelet and the node controller (Pod phase and Ready). The Pod is made on node-1
 * once the volume is attached there — host network, privileged, the instance manager's
 * arguments, owned by the ShareManager; running when Ready; a Failed Pod is replaced; when
 * node-1 is lost (its Pod not Ready) and the lease expires, the Pod is deleted there and made
 * on node-2, the EndpointSlice follows; teardown deletes the Pod. And the Pod's arguments are
 * the ones the instance manager passes for the same request (directory and device sources).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { instanceManagerHosting } from '../../../../src/controllers/share-manager/hosting.ts';
import { createShareManagerRequest } from '../../../../src/controllers/share-manager/index.ts';
import {
  HEALTH_PORT_OFFSET,
  kubernetesPodHosting,
} from '../../../../src/controllers/share-manager/kubernetes-pods.ts';
import { kubernetesShareManagerServices } from '../../../../src/controllers/share-manager/kubernetes-services.ts';
import { reconcileShareManager } from '../../../../src/controllers/share-manager/reconcile.ts';
import { LISTEN_PORT_ANNOTATION } from '../../../../src/controllers/share-manager/services.ts';
import {
  LAST_FAILOVER_SECONDS_ANNOTATION,
  LeaseWatch,
  type ShareManagerWorld,
} from '../../../../src/controllers/share-manager/world.ts';
import type { HostOperations } from '../../../../src/csi/host/types.ts';
import { ShareManagerHost } from '../../../../src/dataplane/instance-manager/share-manager-host.ts';
import { shareManagerSpecInput } from '../../../../src/dataplane/instance-manager/share-manager-spec.ts';
import type { ShareManager } from '../../../../src/resources/index.ts';
import { openEmbeddedStore } from '../../../../src/resources/store/embedded.ts';
import { kubernetesLeaseLocation } from '../../../../src/share-manager/index.ts';
import { kubernetesShareManagerLeases } from '../../../../src/share-manager/kubernetes-leases.ts';
import { startKubernetesLeaseServer } from '../../../helpers/kubernetes-lease-server.ts';
import { startKubernetesPodServer } from '../../../helpers/kubernetes-pod-server.ts';
import { startKubernetesServiceServer } from '../../../helpers/kubernetes-service-server.ts';
import { tempDirectory } from '../../../helpers/temp.ts';
import { FakeInstanceManager, namespace, setAttached, setNodeReady } from './fixtures.ts';

// biome-ignore lint/suspicious/noExplicitAny: objects as the stand-in API servers stored them
type StoredObject = Record<string, any>;

const nodeAddresses: Record<string, string> = { 'node-1': '10.0.0.1', 'node-2': '10.0.0.2' };
const IMAGE = 'hornbill/hornbill:test';
const POD = `${namespace}/share-manager-vol`;

test('share manager in Kubernetes mode as a Pod: made on the node, running when Ready, replaced when Failed, moved on lease expiry, deleted on teardown', async (t) => {
  const directory = tempDirectory(t, 'hornbill-sm-pods-');
  const leaseServer = await startKubernetesLeaseServer();
  const serviceServer = await startKubernetesServiceServer();
  const podServer = await startKubernetesPodServer({ namespace });
  t.after(() => Promise.all([leaseServer.close(), serviceServer.close(), podServer.close()]));
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  t.after(() => store.close());
  const backend = kubernetesShareManagerLeases(leaseServer.kubeConfig, { namespace });
  const leases = new LeaseWatch(backend);
  const services = kubernetesShareManagerServices(serviceServer.kubeConfig, {
    namespace,
    store,
    resyncMs: 0,
  });
  const hosting = kubernetesPodHosting(podServer.kubeConfig, { namespace, image: IMAGE });
  // The instance managers exist (Hornbill nodes) but are never asked to host a share manager.
  const managers = new Map(['node-1', 'node-2'].map((node) => [node, new FakeInstanceManager(node)]));
  let nowMs = Date.now();
  let healthyAt: number | undefined;
  const events: string[] = [];
  const world: ShareManagerWorld = {
    store,
    namespace,
    nfsPort: 2049,
    pollIntervalMs: 1000,
    hasInstanceManager: (node) => managers.has(node),
    hosting,
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
    createRequest: (volume, shareManager, deviceEndpoint) =>
      createShareManagerRequest({
        volume: volume.metadata.name,
        listen: services.listenAddress(shareManager, nodeAddresses[shareManager.status?.nodeID ?? '']),
        deviceEndpoint,
        nfsOptions: '',
        lease: leases.location(volume.metadata.name),
        leaseDurationSeconds: 3,
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
  const pod = () => podServer.pods.get(POD);
  const creations = () => podServer.requests.filter((request) => request.startsWith('POST')).length;

  // Created, node-1 chosen, ticket; no Pod before the volume is attached there.
  await reconcile();
  await reconcile();
  await reconcile();
  let current = await shareManager();
  assert.equal(current.status?.nodeID, 'node-1');
  const listenPort = Number(current.metadata.annotations?.[LISTEN_PORT_ANNOTATION]);
  assert.equal(pod(), undefined, 'no Pod before the volume is attached');

  // Attached → the Pod is made on node-1, as the spec says; starting until the kubelet says Ready.
  await setAttached(store, 'node-1');
  await reconcile();
  assertPod(pod(), 'node-1', '10.0.0.1', listenPort, await shareManager());
  assert.equal((await shareManager()).status?.state, 'starting');
  assert.equal(serviceServer.endpointSlices.size, 0, 'no EndpointSlice before it runs');
  podServer.setPodStatus('share-manager-vol', { phase: 'Pending' });
  await reconcile();
  assert.equal((await shareManager()).status?.state, 'starting');
  assert.equal(creations(), 1, 'a Pending Pod is waited for, not made again');
  assert.ok(
    managers.get('node-1')!.calls.every((call) => call !== 'CreateShareManager'),
    'the instance manager is not asked',
  );

  podServer.setPodStatus('share-manager-vol', { phase: 'Running', ready: true });
  await reconcile();
  current = await shareManager();
  assert.equal(current.status?.state, 'running');
  const clusterIP = serviceServer.services.get(POD)?.spec.clusterIP;
  assert.match(clusterIP, /^10\.96\.0\.\d+$/);
  assert.equal(current.status?.endpoint, `nfs://${clusterIP}/vol`);
  assertEndpointSlice(serviceServer.endpointSlices.get(POD), 'node-1', '10.0.0.1', listenPort);
  const dataSource = current.status?.conditions?.find((condition) => condition.type === 'DataSource');
  assert.equal(dataSource?.reason, 'DirectoryExport', 'an nbd frontend: the directory source');

  // The share manager exits (Failed; restartPolicy Never): replaced in place by a new Pod.
  const firstUid = pod()!.metadata.uid;
  podServer.setPodStatus('share-manager-vol', { phase: 'Failed', exitCode: 1 });
  await reconcile();
  assert.notEqual(pod()!.metadata.uid, firstUid, 'a new Pod');
  assert.equal(pod()!.spec.nodeName, 'node-1');
  assert.equal((await shareManager()).status?.state, 'starting');
  podServer.setPodStatus('share-manager-vol', { phase: 'Running', ready: true });
  await reconcile();
  assert.equal((await shareManager()).status?.state, 'running');

  // node-1 is lost: the node controller marks its Pod not Ready; the lease is fresh → wait.
  await backend.client('vol').create({
    holderIdentity: 'node-1/share-manager-vol',
    leaseDurationSeconds: 3,
    leaseTransitions: 0,
    renewTimeMs: nowMs,
  });
  podServer.setPodStatus('share-manager-vol', { phase: 'Running', ready: false });
  await reconcile();
  current = await shareManager();
  assert.equal(current.status?.nodeID, 'node-1');
  assert.equal(
    current.status?.conditions?.find((condition) => condition.type === 'Ready')?.status,
    'Unknown',
  );

  // The lease expires → moved to node-2: the Pod on node-1 is deleted without waiting for its kubelet.
  nowMs += 3_100;
  await reconcile();
  assert.equal((await shareManager()).status?.nodeID, 'node-2');
  assert.ok(events.includes('ShareManagerMoving'));
  await reconcile();
  assert.equal(pod(), undefined, 'the Pod on node-1 is gone');
  assert.ok(
    podServer.requests.some((request) => /^DELETE .*share-manager-vol\?.*gracePeriodSeconds=0/.test(request)),
    'force-deleted (gracePeriodSeconds=0)',
  );
  await setAttached(store, 'node-2');
  nowMs += 1_000;
  await reconcile();
  assertPod(pod(), 'node-2', '10.0.0.2', listenPort, await shareManager());
  podServer.setPodStatus('share-manager-vol', { phase: 'Running', ready: true });
  await reconcile();
  current = await shareManager();
  assert.equal(current.status?.state, 'running');
  assert.equal(current.status?.endpoint, `nfs://${clusterIP}/vol`, 'the same endpoint');
  assertEndpointSlice(serviceServer.endpointSlices.get(POD), 'node-2', '10.0.0.2', listenPort);
  assert.ok(current.metadata.annotations?.[LAST_FAILOVER_SECONDS_ANNOTATION] !== undefined);
  assert.ok(events.includes('ShareManagerFailover'));

  // rwo: torn down; the running Pod is deleted gracefully (its share manager unmounts, releases).
  let volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  await store.update({ ...volume, spec: { ...volume.spec, accessMode: 'rwo' } });
  await reconcile();
  assert.equal((await store.list('ShareManager', { namespace })).items.length, 0);
  assert.ok(pod()?.metadata.deletionTimestamp !== undefined, 'the Pod is being deleted');
  podServer.finishDeletion('share-manager-vol');
  assert.equal(serviceServer.services.size, 0);
  assert.equal(serviceServer.endpointSlices.size, 0);
  assert.equal(await backend.client('vol').get(), undefined, 'the Lease deleted');
  volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  assert.equal(volume.status?.shareEndpoint, undefined);
});

function assertPod(
  pod: StoredObject | undefined,
  node: string,
  address: string,
  port: number,
  owner: ShareManager,
) {
  assert.ok(pod !== undefined, 'the Pod exists');
  assert.equal(pod.spec.nodeName, node);
  assert.equal(pod.spec.hostNetwork, true);
  assert.equal(pod.spec.restartPolicy, 'Never');
  assert.equal(pod.spec.serviceAccountName, 'hornbill-share-manager');
  assert.equal(pod.metadata.labels['app.kubernetes.io/component'], 'share-manager');
  assert.equal(pod.metadata.labels['hornbill.io/volume'], 'vol');
  assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'ShareManager');
  assert.equal(pod.metadata.ownerReferences?.[0]?.uid, owner.metadata.uid);
  assert.ok(owner.metadata.uid);
  const container = pod.spec.containers[0];
  assert.equal(container.image, IMAGE);
  assert.equal(container.securityContext?.privileged, true);
  const args: string[] = container.args;
  const flag = (name: string) => args[args.indexOf(name) + 1];
  assert.equal(args[0], 'share-manager');
  assert.equal(flag('--lease'), 'kubernetes');
  assert.equal(flag('--lease-namespace'), namespace);
  assert.equal(flag('--address'), address);
  assert.equal(flag('--port'), String(port));
  assert.equal(flag('--health-port'), String(port + HEALTH_PORT_OFFSET));
  assert.equal(container.readinessProbe?.httpGet?.port, port + HEALTH_PORT_OFFSET);
  assert.equal(flag('--export-dir'), '/var/lib/hornbill/share-exports/vol');
  const mounts = Object.fromEntries(
    pod.spec.volumes.map((volume: { name: string; hostPath: { path: string } }) => [
      volume.name,
      volume.hostPath.path,
    ]),
  );
  assert.deepEqual(mounts, { data: '/var/lib/hornbill', dev: '/dev' });
}

function assertEndpointSlice(slice: StoredObject | undefined, node: string, address: string, port: number) {
  assert.ok(slice !== undefined, 'the EndpointSlice exists');
  assert.deepEqual(slice.endpoints, [{ addresses: [address], conditions: { ready: true }, nodeName: node }]);
  assert.deepEqual(slice.ports, [{ name: 'nfs', port, protocol: 'TCP' }]);
}

for (const source of ['directory', 'device'] as const) {
  test(`the Pod's arguments are the instance manager's for the same request (${source} source)`, async (t) => {
    const disk = tempDirectory(t, 'hornbill-sm-arguments-');
    const deviceEndpoint = source === 'device' ? 'iscsi://10.0.0.1:3260/iqn.2019-10.io.hornbill:vol/1' : '';
    const request = createShareManagerRequest({
      volume: 'vol',
      listen: { address: '10.0.0.1', port: 20777 },
      deviceEndpoint,
      nfsOptions: 'min-version=4.1,lease-lifetime=30',
      lease: kubernetesLeaseLocation(namespace, 'vol'),
      leaseDurationSeconds: 9,
    });
    // The instance manager path: its argv, captured by a launcher that never starts anything.
    let argv: string[] = [];
    const deviceHost = {
      iscsiLogin: async () => {},
      iscsiLogout: async () => {},
      findDevice: async () => '/dev/sdx',
      filesystemType: async () => 'ext4',
      makeFilesystem: async () => {},
    } as unknown as HostOperations;
    const host = new ShareManagerHost({
      nodeName: 'node-1',
      disks: [disk],
      command: ['hornbill', 'share-manager'],
      deviceHost,
      launcher: (command) => {
        argv = command;
        const exit = { code: 1, signal: null };
        return {
          pid: 1,
          ready: Promise.reject(new Error('not started in this test')),
          exited: Promise.resolve(exit),
          stop: async () => exit,
        };
      },
    });
    t.after(() => host.close());
    await assert.rejects(host.create(shareManagerSpecInput(request)));
    assert.equal(argv[0], 'hornbill');
    // The Pod path, through the stand-in API server.
    const server = await startKubernetesPodServer({ namespace });
    t.after(() => server.close());
    const hosting = kubernetesPodHosting(server.kubeConfig, { namespace, image: IMAGE, diskPath: disk });
    const owner = {
      apiVersion: 'hornbill.io/v1beta1',
      kind: 'ShareManager',
      metadata: { name: 'vol', uid: 'u-1' },
    };
    await hosting.start('node-1', request, owner as unknown as ShareManager);
    const args: string[] = server.pods.get(POD)!.spec.containers[0].args;
    const expected = argv.slice(1);
    if (source === 'device') {
      const at = expected.indexOf('--device');
      assert.equal(expected[at + 1], '/dev/sdx');
      expected.splice(at, 2, '--iscsi-target', deviceEndpoint, '--host-namespaces');
    }
    assert.deepEqual(args, [...expected, '--health-port', String(20777 + HEALTH_PORT_OFFSET)]);
    assert.equal(server.pods.get(POD)!.spec.hostPID, source === 'device', 'hostPID only for nsenter');
    // The instance-manager hosting still speaks CreateShareManager with the same request.
    const manager = new FakeInstanceManager('node-1');
    await instanceManagerHosting(() => manager.client()).start(
      'node-1',
      request,
      owner as unknown as ShareManager,
    );
    assert.deepEqual(manager.requests, [request]);
  });
}
