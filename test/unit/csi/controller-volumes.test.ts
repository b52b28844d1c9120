/**
 * The identity service and the controller's volume calls over a real gRPC client on the
 * unix socket, against an embedded store: csi-sanity's checks of idempotency, required
 * arguments, NOT_FOUND / ALREADY_EXISTS / OUT_OF_RANGE, capacity, expansion and pagination.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWith } from './assertions.ts';
import {
  BLOCK_CAPABILITY,
  GiB,
  MiB,
  MOUNT_CAPABILITY,
  NAMESPACE,
  NODE_ID,
  RWX_CAPABILITY,
  startHarness,
} from './harness.ts';

test('identity: plugin info, capabilities, probe', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  const info = await csi.call('Identity', 'GetPluginInfo');
  assert.equal(info.name, 'driver.hornbill.io');
  assert.equal(info.vendor_version, '0.1.0');
  const { capabilities } = await csi.call('Identity', 'GetPluginCapabilities');
  const names = capabilities.map(
    (item: { service?: { type: string }; volume_expansion?: { type: string } }) =>
      item.service ? item.service.type : `expansion:${item.volume_expansion?.type}`,
  );
  assert.deepEqual(names, ['CONTROLLER_SERVICE', 'VOLUME_ACCESSIBILITY_CONSTRAINTS', 'expansion:ONLINE']);
  assert.deepEqual((await csi.call('Identity', 'Probe')).ready, { value: true });
  const controller = await csi.call('Controller', 'ControllerGetCapabilities');
  const types = controller.capabilities.map((item: { rpc: { type: string } }) => item.rpc.type);
  for (const wanted of [
    'CREATE_DELETE_VOLUME',
    'PUBLISH_UNPUBLISH_VOLUME',
    'LIST_VOLUMES',
    'GET_CAPACITY',
    'CREATE_DELETE_SNAPSHOT',
    'LIST_SNAPSHOTS',
    'CLONE_VOLUME',
    'EXPAND_VOLUME',
  ])
    assert.ok(types.includes(wanted), wanted);
});

test('CreateVolume validates its arguments before creating anything', async (t) => {
  const { csi, store } = await startHarness(t, { standIn: false });
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', { volume_capabilities: [MOUNT_CAPABILITY] }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(csi.call('Controller', 'CreateVolume', { name: 'pvc-a' }), 'INVALID_ARGUMENT');
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      name: 'pvc-a',
      volume_capabilities: [{ mount: {}, access_mode: { mode: 'UNKNOWN' } }],
    }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      name: 'pvc-a',
      volume_capabilities: [{ block: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }],
    }),
    'INVALID_ARGUMENT',
    'CSI_CAPABILITY_UNSUPPORTED',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      name: 'pvc-a',
      volume_capabilities: [MOUNT_CAPABILITY],
      parameters: { numberOfReplica: '3' },
    }),
    'INVALID_ARGUMENT',
    'CSI_PARAMETER_INVALID',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      name: 'pvc-a',
      volume_capabilities: [MOUNT_CAPABILITY],
      parameters: { numberOfReplicas: '0' },
    }),
    'INVALID_ARGUMENT',
    'CSI_PARAMETER_INVALID',
  );
  assert.equal((await store.list('Volume', { namespace: NAMESPACE })).items.length, 0);
});

test('CreateVolume rounds up to 2 MiB, takes the StorageClass parameters, and is idempotent by name', async (t) => {
  const { csi, store } = await startHarness(t, { standIn: false });
  const request = {
    name: 'pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33',
    capacity_range: { required_bytes: GiB + 1 },
    volume_capabilities: [MOUNT_CAPABILITY],
    parameters: {
      numberOfReplicas: '2',
      staleReplicaTimeout: '30',
      dataLocality: 'best-effort',
      diskSelector: 'ssd',
      fsType: 'xfs',
      mkfsParams: '-K',
      fromBackup: '',
      'csi.storage.k8s.io/pvc/name': 'data',
      'csi.storage.k8s.io/pvc/namespace': 'my-app',
    },
  };
  const { volume } = await csi.call('Controller', 'CreateVolume', request);
  assert.equal(volume.volume_id, request.name);
  assert.equal(volume.capacity_bytes, GiB + 2 * MiB);
  assert.deepEqual(volume.volume_context, { accessMode: 'rwo', fsType: 'xfs', mkfsParams: '-K' });
  const stored = await store.get({ kind: 'Volume', namespace: NAMESPACE, name: request.name });
  assert.equal(stored.spec.size, '1026Mi');
  assert.equal(stored.spec.numberOfReplicas, 2);
  assert.equal(stored.spec.staleReplicaTimeout, 30);
  assert.equal(stored.spec.dataLocality, 'best-effort');
  assert.deepEqual(stored.spec.diskSelector, ['ssd']);
  assert.equal(stored.metadata.annotations?.['csi.hornbill.io/pvc-name'], 'data');

  const again = await csi.call('Controller', 'CreateVolume', request);
  assert.deepEqual(again.volume, volume);
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', { ...request, capacity_range: { required_bytes: 4 * GiB } }),
    'ALREADY_EXISTS',
    'CSI_VOLUME_INCOMPATIBLE',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', { ...request, volume_capabilities: [RWX_CAPABILITY] }),
    'ALREADY_EXISTS',
  );

  // A name that is no DNS label maps to a stable derived one.
  const odd = await csi.call('Controller', 'CreateVolume', {
    name: 'Sanity_Volume/1',
    volume_capabilities: [BLOCK_CAPABILITY],
  });
  assert.match(odd.volume.volume_id, /^sanity-volume-1-[0-9a-f]{16}$/);
  assert.equal(
    (
      await csi.call('Controller', 'CreateVolume', {
        name: 'Sanity_Volume/1',
        volume_capabilities: [BLOCK_CAPABILITY],
      })
    ).volume.volume_id,
    odd.volume.volume_id,
  );
  assert.equal(odd.volume.capacity_bytes, 2 * GiB, 'no range: the default size');
});

test('CreateVolume capacity ranges: OUT_OF_RANGE when no 2 MiB multiple fits', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  const base = { volume_capabilities: [MOUNT_CAPABILITY] };
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'r1',
      capacity_range: { required_bytes: 3 * MiB, limit_bytes: 3 * MiB },
    }),
    'OUT_OF_RANGE',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'r2',
      capacity_range: { required_bytes: 2 * GiB, limit_bytes: GiB },
    }),
    'OUT_OF_RANGE',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'r3',
      capacity_range: { required_bytes: 64 * 1024 * GiB },
    }),
    'OUT_OF_RANGE',
  );
  const within = await csi.call('Controller', 'CreateVolume', {
    ...base,
    name: 'r4',
    capacity_range: { required_bytes: 3 * MiB, limit_bytes: 5 * MiB },
  });
  assert.equal(within.volume.capacity_bytes, 4 * MiB);
  const limitOnly = await csi.call('Controller', 'CreateVolume', {
    ...base,
    name: 'r5',
    capacity_range: { limit_bytes: 100 * MiB },
  });
  assert.equal(limitOnly.volume.capacity_bytes, 100 * MiB);
});

test('CreateVolume from a missing source is NOT_FOUND; a clone records vol://', async (t) => {
  const { csi, store } = await startHarness(t, { standIn: false });
  const base = { volume_capabilities: [MOUNT_CAPABILITY], capacity_range: { required_bytes: GiB } };
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'c1',
      volume_content_source: { snapshot: { snapshot_id: 'snap://nope/none' } },
    }),
    'NOT_FOUND',
    'CSI_SNAPSHOT_NOT_FOUND',
  );
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'c1',
      volume_content_source: { volume: { volume_id: 'nope' } },
    }),
    'NOT_FOUND',
    'CSI_VOLUME_NOT_FOUND',
  );
  await csi.call('Controller', 'CreateVolume', { ...base, name: 'source' });
  await rejectsWith(
    csi.call('Controller', 'CreateVolume', {
      ...base,
      name: 'c2',
      capacity_range: { required_bytes: 10 * MiB, limit_bytes: 10 * MiB },
      volume_content_source: { volume: { volume_id: 'source' } },
    }),
    'OUT_OF_RANGE',
  );
  const clone = await csi.call('Controller', 'CreateVolume', {
    ...base,
    name: 'c3',
    volume_content_source: { volume: { volume_id: 'source' } },
  });
  assert.deepEqual(clone.volume.content_source.volume, { volume_id: 'source' });
  assert.equal(
    (await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'c3' })).spec.dataSource,
    'vol://source',
  );
});

test('DeleteVolume is idempotent', async (t) => {
  const { csi, store } = await startHarness(t, { standIn: false });
  await rejectsWith(csi.call('Controller', 'DeleteVolume', {}), 'INVALID_ARGUMENT');
  await csi.call('Controller', 'DeleteVolume', { volume_id: 'never-existed' });
  await csi.call('Controller', 'DeleteVolume', { volume_id: 'Not A Name' });
  await csi.call('Controller', 'CreateVolume', { name: 'doomed', volume_capabilities: [MOUNT_CAPABILITY] });
  await csi.call('Controller', 'DeleteVolume', { volume_id: 'doomed' });
  await csi.call('Controller', 'DeleteVolume', { volume_id: 'doomed' });
  assert.equal((await store.list('Volume', { namespace: NAMESPACE })).items.length, 0);
});

test('ValidateVolumeCapabilities confirms what the volume serves', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  await rejectsWith(
    csi.call('Controller', 'ValidateVolumeCapabilities', { volume_capabilities: [MOUNT_CAPABILITY] }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ValidateVolumeCapabilities', { volume_id: 'v' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ValidateVolumeCapabilities', {
      volume_id: 'v',
      volume_capabilities: [MOUNT_CAPABILITY],
    }),
    'NOT_FOUND',
  );
  await csi.call('Controller', 'CreateVolume', { name: 'v', volume_capabilities: [MOUNT_CAPABILITY] });
  await csi.call('Controller', 'CreateVolume', { name: 'shared', volume_capabilities: [RWX_CAPABILITY] });
  const yes = await csi.call('Controller', 'ValidateVolumeCapabilities', {
    volume_id: 'v',
    volume_capabilities: [MOUNT_CAPABILITY, BLOCK_CAPABILITY],
  });
  assert.equal(yes.confirmed.volume_capabilities.length, 2);
  const no = await csi.call('Controller', 'ValidateVolumeCapabilities', {
    volume_id: 'v',
    volume_capabilities: [RWX_CAPABILITY],
  });
  assert.equal(no.confirmed, null);
  assert.match(no.message, /cannot serve/);
  const rwx = await csi.call('Controller', 'ValidateVolumeCapabilities', {
    volume_id: 'shared',
    volume_capabilities: [RWX_CAPABILITY],
  });
  assert.ok(rwx.confirmed);
});

test('ListVolumes pages with tokens; a foreign token is ABORTED', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  for (const name of ['v1', 'v2', 'v3', 'v4', 'v5'])
    await csi.call('Controller', 'CreateVolume', { name, volume_capabilities: [MOUNT_CAPABILITY] });
  const seen: string[] = [];
  let token = '';
  for (let page = 0; page < 10; page++) {
    const answer = await csi.call('Controller', 'ListVolumes', { max_entries: 2, starting_token: token });
    assert.ok(answer.entries.length <= 2);
    seen.push(...answer.entries.map((entry: { volume: { volume_id: string } }) => entry.volume.volume_id));
    token = answer.next_token;
    if (token === '') break;
  }
  assert.deepEqual(seen, ['v1', 'v2', 'v3', 'v4', 'v5']);
  assert.equal((await csi.call('Controller', 'ListVolumes', {})).entries.length, 5);
  await rejectsWith(
    csi.call('Controller', 'ListVolumes', { starting_token: 'garbage' }),
    'ABORTED',
    'CSI_PAGINATION_TOKEN_INVALID',
  );
  await rejectsWith(csi.call('Controller', 'ListVolumes', { max_entries: -1 }), 'INVALID_ARGUMENT');
  const one = await csi.call('Controller', 'ControllerGetVolume', { volume_id: 'v3' });
  assert.equal(one.volume.volume_id, 'v3');
  assert.deepEqual(one.status.published_node_ids, []);
  await rejectsWith(csi.call('Controller', 'ControllerGetVolume', { volume_id: 'v9' }), 'NOT_FOUND');
});

test('GetCapacity: the largest space one matching disk takes, per topology segment', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  const all = await csi.call('Controller', 'GetCapacity', {});
  // 100 GiB disk: available 100 GiB − 25 % minimal available = 75 GiB.
  assert.equal(all.available_capacity, 75 * GiB);
  assert.ok(all.maximum_volume_size.value > 0);
  const here = await csi.call('Controller', 'GetCapacity', {
    accessible_topology: { segments: { 'kubernetes.io/hostname': NODE_ID } },
  });
  assert.equal(here.available_capacity, 75 * GiB);
  const zone = await csi.call('Controller', 'GetCapacity', {
    accessible_topology: { segments: { 'topology.kubernetes.io/zone': 'zone-b' } },
  });
  assert.equal(zone.available_capacity, 0);
  const tagged = await csi.call('Controller', 'GetCapacity', { parameters: { diskSelector: 'nvme' } });
  assert.equal(tagged.available_capacity, 0);
  await rejectsWith(
    csi.call('Controller', 'GetCapacity', { parameters: { bogus: '1' } }),
    'INVALID_ARGUMENT',
  );
});

test('ControllerExpandVolume grows to 2 MiB multiples and says when the node must grow the filesystem', async (t) => {
  const { csi, store } = await startHarness(t);
  await rejectsWith(csi.call('Controller', 'ControllerExpandVolume', { volume_id: 'x' }), 'INVALID_ARGUMENT');
  await rejectsWith(
    csi.call('Controller', 'ControllerExpandVolume', { capacity_range: { required_bytes: GiB } }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ControllerExpandVolume', {
      volume_id: 'x',
      capacity_range: { required_bytes: GiB },
    }),
    'NOT_FOUND',
  );
  await csi.call('Controller', 'CreateVolume', {
    name: 'grow',
    capacity_range: { required_bytes: GiB },
    volume_capabilities: [MOUNT_CAPABILITY],
  });
  // The stand-in controller makes it detached first.
  for (
    let i = 0;
    i < 100 &&
    (await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'grow' })).status?.state !== 'detached';
    i++
  )
    await new Promise((resolve) => setTimeout(resolve, 20));
  const grown = await csi.call('Controller', 'ControllerExpandVolume', {
    volume_id: 'grow',
    capacity_range: { required_bytes: 2 * GiB + 1 },
    volume_capability: MOUNT_CAPABILITY,
  });
  assert.equal(grown.capacity_bytes, 2 * GiB + 2 * MiB);
  assert.equal(grown.node_expansion_required, true);
  assert.equal((await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'grow' })).spec.size, '2050Mi');
  const block = await csi.call('Controller', 'ControllerExpandVolume', {
    volume_id: 'grow',
    capacity_range: { required_bytes: GiB },
    volume_capability: BLOCK_CAPABILITY,
  });
  assert.deepEqual(block, { capacity_bytes: 2 * GiB + 2 * MiB, node_expansion_required: false });
  await rejectsWith(
    csi.call('Controller', 'ControllerExpandVolume', {
      volume_id: 'grow',
      capacity_range: { required_bytes: 4 * GiB, limit_bytes: 3 * GiB },
    }),
    'OUT_OF_RANGE',
  );
});
