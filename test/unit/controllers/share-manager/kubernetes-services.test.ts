/**
 * The share managers' stable address in Kubernetes mode (kubernetes-services.ts) over HTTP
 * against test/helpers/kubernetes-service-server.ts: listen ports allocated once and distinct,
 * the Service made once (its ClusterIP kept), the EndpointSlice replaced only when the target
 * changes (and repaired after a resync when deleted behind the controller's back), a
 * foreign Service refused with SHARE_MANAGER_SERVICE_INVALID, remove idempotent; and the
 * embedded implementation unchanged (the reported endpoint, no API).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { parseServiceNetwork } from '../../../../src/controllers/share-manager/decisions.ts';
import {
  clusterEndpoint,
  kubernetesShareManagerServices,
  shareManagerServiceName,
} from '../../../../src/controllers/share-manager/kubernetes-services.ts';
import {
  embeddedShareManagerServices,
  LISTEN_PORT_ANNOTATION,
  listenPortFor,
} from '../../../../src/controllers/share-manager/services.ts';
import { AddressAllocator } from '../../../../src/controllers/share-manager/world.ts';
import { isHornbillError } from '../../../../src/errors.ts';
import type { ShareManager } from '../../../../src/resources/index.ts';
import { openEmbeddedStore } from '../../../../src/resources/store/embedded.ts';
import { startKubernetesServiceServer } from '../../../helpers/kubernetes-service-server.ts';
import { tempDirectory } from '../../../helpers/temp.ts';

const namespace = 'hornbill-system';

test('listen ports: hashed into the range, the next free one, exhausted is coded', () => {
  const range = { first: 30000, last: 30002 };
  const first = listenPortFor('vol', range, new Set());
  assert.ok(first >= 30000 && first <= 30002);
  assert.notEqual(listenPortFor('vol', range, new Set([first])), first);
  assert.throws(
    () => listenPortFor('vol', range, new Set([30000, 30001, 30002])),
    (error) => isHornbillError(error, 'SHARE_MANAGER_PORT_EXHAUSTED'),
  );
  assert.throws(
    () => shareManagerServiceName('v'.repeat(50)),
    (error) => isHornbillError(error, 'SHARE_MANAGER_SERVICE_INVALID'),
  );
  assert.equal(clusterEndpoint('fd00::10', 'vol'), 'nfs://[fd00::10]/vol');
});

test('Kubernetes services: Service once, EndpointSlice follows the target, foreign Service refused, remove idempotent', async (t) => {
  const directory = tempDirectory(t, 'hornbill-sm-services-');
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  t.after(() => store.close());
  const server = await startKubernetesServiceServer();
  t.after(() => server.close());
  const services = kubernetesShareManagerServices(server.kubeConfig, {
    namespace,
    store,
    listenPorts: { first: 20490, last: 20491 },
    resyncMs: 60_000,
  });
  const make = async (volume: string) => {
    const { annotations } = await services.allocate(volume);
    return (await store.create({
      kind: 'ShareManager',
      metadata: { name: volume, namespace, annotations },
      spec: { volumeName: volume },
    })) as ShareManager;
  };
  const one = await make('one');
  const two = await make('two');
  const ports = [one, two].map((item) => Number(item.metadata.annotations?.[LISTEN_PORT_ANNOTATION]));
  assert.deepEqual([...ports].sort(), [20490, 20491], 'distinct listen ports');
  assert.deepEqual(await services.allocate('one'), {
    annotations: { [LISTEN_PORT_ANNOTATION]: String(ports[0]) },
    description: `behind Service ${namespace}/share-manager-one:2049 (listening on port ${ports[0]} of its node)`,
  });
  await assert.rejects(services.allocate('three'), (error) =>
    isHornbillError(error, 'SHARE_MANAGER_PORT_EXHAUSTED'),
  );
  assert.equal(services.allocated(one), true);
  assert.deepEqual(services.listenAddress({ ...one, status: { nodeID: 'node-1' } }, '10.0.0.1'), {
    address: '10.0.0.1',
    port: ports[0],
  });
  assert.throws(
    () => services.listenAddress({ ...one, status: { nodeID: 'node-1' } }, undefined),
    (error) => isHornbillError(error, 'INSTANCE_MANAGER_UNREACHABLE'),
  );

  const target = {
    nodeID: 'node-1',
    address: '10.0.0.1',
    port: ports[0],
    endpoint: 'nfs://10.0.0.1:20490/one',
  };
  const first = await services.ensure(one, target);
  const service = server.services.get(`${namespace}/share-manager-one`);
  assert.equal(first.address, service?.spec.clusterIP);
  assert.equal(first.endpoint, `nfs://${first.address}/one`);
  const sliceVersion = server.endpointSlices.get(`${namespace}/share-manager-one`)?.metadata.resourceVersion;
  // The same target within the resync period: no request.
  const before = server.requests.length;
  assert.deepEqual(await services.ensure(one, target), first);
  assert.equal(server.requests.length, before);
  // A new target: the EndpointSlice is replaced, the Service is kept.
  const moved = await services.ensure(one, { ...target, nodeID: 'node-2', address: '10.0.0.2' });
  assert.deepEqual(moved, first, 'the ClusterIP endpoint stays');
  const slice = server.endpointSlices.get(`${namespace}/share-manager-one`);
  assert.notEqual(slice?.metadata.resourceVersion, sliceVersion);
  assert.deepEqual(slice?.endpoints[0].addresses, ['10.0.0.2']);
  assert.equal(server.services.get(`${namespace}/share-manager-one`)?.metadata.uid, service?.metadata.uid);
  assert.deepEqual(
    server.requests.slice(before).filter((request) => !request.startsWith('GET')),
    [`PUT /apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices/share-manager-one`],
  );

  // Deleted behind the controller's back: made again after a resync (resyncMs 0 here).
  const eager = kubernetesShareManagerServices(server.kubeConfig, { namespace, store, resyncMs: 0 });
  server.endpointSlices.clear();
  await eager.ensure(one, target);
  assert.deepEqual(server.endpointSlices.get(`${namespace}/share-manager-one`)?.endpoints[0].addresses, [
    '10.0.0.1',
  ]);

  // A Service of the same name with a selector is not this controller's.
  server.services.set(`${namespace}/share-manager-two`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'share-manager-two', namespace, resourceVersion: '1' },
    spec: { clusterIP: '10.96.9.9', selector: { app: 'x' }, ports: [{ name: 'nfs', port: 2049 }] },
  });
  await assert.rejects(eager.ensure(two, { ...target, port: ports[1] }), (error) =>
    isHornbillError(error, 'SHARE_MANAGER_SERVICE_INVALID'),
  );

  await services.remove('one');
  await services.remove('one');
  assert.equal(server.services.has(`${namespace}/share-manager-one`), false);
  assert.equal(server.endpointSlices.has(`${namespace}/share-manager-one`), false);
});

test('embedded services: the loopback address, the reported endpoint, nothing to remove', async (t) => {
  const directory = tempDirectory(t, 'hornbill-sm-services-');
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  t.after(() => store.close());
  const services = embeddedShareManagerServices({
    allocator: new AddressAllocator({ network: parseServiceNetwork('127.202.0.0/16'), store, namespace }),
    nfsPort: 2049,
  });
  const { annotations } = await services.allocate('vol');
  const address = annotations['hornbill.io/service-address'];
  assert.match(address, /^127\.202\./);
  const shareManager = { metadata: { name: 'vol', annotations } } as unknown as ShareManager;
  assert.deepEqual(services.listenAddress(shareManager, '10.0.0.1'), { address, port: 2049 });
  const endpoint = `nfs://${address}:2049/vol`;
  assert.deepEqual(await services.ensure(shareManager, { nodeID: 'node-1', address, port: 2049, endpoint }), {
    address,
    endpoint,
  });
  await services.remove('vol');
});
