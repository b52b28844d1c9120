/**
 * Every mutation against an embedded store: the resources it writes (what the controllers
 * act on), and the coded errors it answers with.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  PURGE_REQUESTED_ANNOTATION,
  REVERT_SNAPSHOT_ANNOTATION,
} from '../../../src/graphql/mutations/snapshot.ts';
import { API_TICKET_ID } from '../../../src/graphql/mutations/volume.ts';
import { findResource, type Kind } from '../../../src/resources/index.ts';
import { type Harness, startHarness } from './harness.ts';

let harness: Harness;

before(async () => {
  harness = await startHarness();
  for (const name of ['node-1', 'node-2']) {
    await harness.store.create({
      kind: 'Node',
      metadata: { name, namespace: harness.namespace },
      spec: { disks: { 'disk-1': { path: `/srv/${name}/disk-1` } } },
    });
  }
});
after(async () => {
  await harness.close();
});

function get<K extends Kind>(kind: K, name: string) {
  return findResource(harness.store, { kind, namespace: harness.namespace, name });
}

/** Runs a mutation with `token` (write by default) and returns its payload. */
async function mutate(
  field: string,
  query: string,
  variables?: Record<string, unknown>,
  token = harness.tokens.write,
) {
  const { body } = await harness.request(query, { variables, token });
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  return body.data?.[field];
}

const VOLUME_FIELDS =
  'volume { name size numberOfReplicas dataLocality frontend nodeID } errors { code message field }';

async function createVolume(name: string, extra = '') {
  return mutate(
    'createVolume',
    `mutation { createVolume(input: { name: "${name}", size: "2Gi" ${extra} }) { ${VOLUME_FIELDS} } }`,
  );
}

async function setVolumeStatus(name: string, status: Record<string, unknown>) {
  const volume = await harness.store.get({ kind: 'Volume', namespace: harness.namespace, name });
  await harness.store.updateStatus({ ...volume, status: { ...volume.status, ...status } });
}

async function createEngine(volume: string) {
  return harness.store.create({
    kind: 'Engine',
    metadata: { name: `${volume}-e-0`, namespace: harness.namespace },
    spec: { volumeName: volume, volumeSize: '2Gi' },
  });
}

describe('volume mutations', () => {
  test('createVolume writes the Volume, with the replica count and locality of the settings', async () => {
    await harness.store.create({
      kind: 'Setting',
      metadata: { name: 'default-replica-count', namespace: harness.namespace },
      spec: { value: '2' },
    });
    const payload = await createVolume(
      'vol-a',
      ', frontend: NBD, labels: [{ key: "team", value: "storage" }]',
    );
    assert.deepEqual(payload.errors, []);
    assert.equal(payload.volume.name, 'vol-a');
    const stored = await get('Volume', 'vol-a');
    assert.equal(stored?.spec.size, '2Gi');
    assert.equal(stored?.spec.numberOfReplicas, 2);
    assert.equal(stored?.spec.dataLocality, 'disabled');
    assert.equal(stored?.spec.frontend, 'nbd');
    assert.deepEqual(stored?.metadata.labels, { team: 'storage' });
  });

  test('createVolume refuses bad input with a code and the argument at fault', async () => {
    const cases: [string, string, string, string][] = [
      ['vol-b', 'size: "3"', 'RESOURCE_INVALID', 'input.size'],
      ['vol-b', 'size: "2Gi", numberOfReplicas: 21', 'RESOURCE_INVALID', 'input.numberOfReplicas'],
      [
        'vol-b',
        'size: "2Gi", dataLocality: STRICT_LOCAL, numberOfReplicas: 3',
        'RESOURCE_INVALID',
        'input.numberOfReplicas',
      ],
      ['Bad_Name', 'size: "2Gi"', 'INVALID_ARGUMENT', 'input.name'],
      ['vol-a', 'size: "2Gi"', 'RESOURCE_ALREADY_EXISTS', 'input.name'],
    ];
    for (const [name, fields, code, field] of cases) {
      const payload = await mutate(
        'createVolume',
        `mutation { createVolume(input: { name: "${name}", ${fields} }) { ${VOLUME_FIELDS} } }`,
      );
      assert.equal(payload.volume, null);
      assert.equal(payload.errors[0].code, code, `${fields}: ${JSON.stringify(payload.errors)}`);
      if (code !== 'RESOURCE_ALREADY_EXISTS') assert.equal(payload.errors[0].field, field, fields);
    }
    assert.equal(await get('Volume', 'vol-b'), undefined);
  });

  test('attachVolume adds an api ticket and sets spec.nodeID and frontend; detachVolume takes them back', async () => {
    const payload = await mutate(
      'attachVolume',
      `mutation { attachVolume(name: "vol-a", node: "node-1", frontend: ISCSI) { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(payload.errors, []);
    assert.equal(payload.volume.nodeID, 'node-1');
    const attachment = await get('VolumeAttachment', 'vol-a');
    assert.equal(attachment?.spec.volume, 'vol-a');
    const ticket = attachment?.spec.attachmentTickets[API_TICKET_ID];
    assert.equal(ticket?.type, 'api');
    assert.equal(ticket?.nodeID, 'node-1');
    assert.deepEqual(ticket?.parameters, {});
    const volume = await get('Volume', 'vol-a');
    assert.equal(volume?.spec.nodeID, 'node-1');
    assert.equal(volume?.spec.frontend, 'iscsi');

    const detached = await mutate(
      'detachVolume',
      `mutation { detachVolume(name: "vol-a") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(detached.errors, []);
    assert.equal((await get('Volume', 'vol-a'))?.spec.nodeID, '');
    assert.deepEqual((await get('VolumeAttachment', 'vol-a'))?.spec.attachmentTickets, {});
  });

  test('attachVolume refuses an unknown node, and a volume attached elsewhere', async () => {
    const unknown = await mutate(
      'attachVolume',
      `mutation { attachVolume(name: "vol-a", node: "node-9") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(unknown.errors, [
      { code: 'RESOURCE_NOT_FOUND', message: 'node node-9 does not exist', field: 'node' },
    ]);
    await setVolumeStatus('vol-a', { state: 'attached', currentNodeID: 'node-2' });
    const elsewhere = await mutate(
      'attachVolume',
      `mutation { attachVolume(name: "vol-a", node: "node-1") { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(elsewhere.errors[0].code, 'GRAPHQL_PRECONDITION_FAILED');
    assert.equal((await get('Volume', 'vol-a'))?.spec.nodeID, '');
    await setVolumeStatus('vol-a', { state: 'detached', currentNodeID: undefined });
  });

  test('expandVolume grows spec.size and refuses to shrink', async () => {
    const grown = await mutate(
      'expandVolume',
      `mutation { expandVolume(name: "vol-a", size: "4Gi") { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(grown.volume.size, '4Gi');
    assert.equal((await get('Volume', 'vol-a'))?.spec.size, '4Gi');
    const shrunk = await mutate(
      'expandVolume',
      `mutation { expandVolume(name: "vol-a", size: "1Gi") { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(shrunk.errors[0].code, 'RESOURCE_INVALID');
    assert.equal(shrunk.errors[0].field, 'size');
    assert.equal((await get('Volume', 'vol-a'))?.spec.size, '4Gi');
  });

  test('updateReplicaCount and updateDataLocality write the spec', async () => {
    const count = await mutate(
      'updateReplicaCount',
      `mutation { updateReplicaCount(name: "vol-a", replicaCount: 1) { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(count.volume.numberOfReplicas, 1);
    const bad = await mutate(
      'updateReplicaCount',
      `mutation { updateReplicaCount(name: "vol-a", replicaCount: 0) { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual([bad.errors[0].code, bad.errors[0].field], ['RESOURCE_INVALID', 'replicaCount']);
    const locality = await mutate(
      'updateDataLocality',
      `mutation { updateDataLocality(name: "vol-a", dataLocality: STRICT_LOCAL) { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(locality.volume.dataLocality, 'STRICT_LOCAL');
    const stored = await get('Volume', 'vol-a');
    assert.equal(stored?.spec.numberOfReplicas, 1);
    assert.equal(stored?.spec.dataLocality, 'strict-local');
  });

  test('salvageVolume sets the Engine spec.salvageRequested (and needs an engine)', async () => {
    const none = await mutate(
      'salvageVolume',
      `mutation { salvageVolume(name: "vol-a") { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(none.errors[0].code, 'GRAPHQL_PRECONDITION_FAILED');
    await createEngine('vol-a');
    const salvaged = await mutate(
      'salvageVolume',
      `mutation { salvageVolume(name: "vol-a") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(salvaged.errors, []);
    assert.equal((await get('Engine', 'vol-a-e-0'))?.spec.salvageRequested, true);
  });

  test('deleteReplica deletes a replica of the volume only', async () => {
    for (const [name, volume] of [
      ['vol-a-r-1', 'vol-a'],
      ['vol-x-r-1', 'vol-x'],
    ]) {
      await harness.store.create({
        kind: 'Replica',
        metadata: { name, namespace: harness.namespace },
        spec: { volumeName: volume, volumeSize: '2Gi' },
      });
    }
    const wrong = await mutate(
      'deleteReplica',
      `mutation { deleteReplica(volume: "vol-a", replica: "vol-x-r-1") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual([wrong.errors[0].code, wrong.errors[0].field], ['RESOURCE_NOT_FOUND', 'replica']);
    assert.notEqual(await get('Replica', 'vol-x-r-1'), undefined);
    const deleted = await mutate(
      'deleteReplica',
      `mutation { deleteReplica(volume: "vol-a", replica: "vol-a-r-1") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(deleted.errors, []);
    assert.equal(await get('Replica', 'vol-a-r-1'), undefined);
  });
});

describe('snapshot mutations', () => {
  const SNAPSHOT_FIELDS =
    'snapshot { name volumeName hasResource labels { key value } } errors { code message field }';

  test('createSnapshot writes a Snapshot owned by its volume; a name is generated when absent', async () => {
    await createVolume('vol-s');
    const named = await mutate(
      'createSnapshot',
      `mutation { createSnapshot(volume: "vol-s", name: "snap-1", labels: [{ key: "k", value: "v" }]) { ${SNAPSHOT_FIELDS} } }`,
    );
    assert.deepEqual(named.errors, []);
    assert.deepEqual(named.snapshot, {
      name: 'snap-1',
      volumeName: 'vol-s',
      hasResource: true,
      labels: [{ key: 'k', value: 'v' }],
    });
    const stored = await get('Snapshot', 'snap-1');
    const volume = await get('Volume', 'vol-s');
    assert.equal(stored?.spec.volume, 'vol-s');
    assert.deepEqual(stored?.spec.labels, { k: 'v' });
    assert.equal(stored?.metadata.ownerReferences?.[0]?.uid, volume?.metadata.uid);
    const generated = await mutate(
      'createSnapshot',
      `mutation { createSnapshot(volume: "vol-s") { ${SNAPSHOT_FIELDS} } }`,
    );
    assert.match(generated.snapshot.name, /^vol-s-snap-[a-z0-9]{5}$/);
    assert.notEqual(await get('Snapshot', generated.snapshot.name), undefined);
    const missing = await mutate(
      'createSnapshot',
      `mutation { createSnapshot(volume: "vol-none") { ${SNAPSHOT_FIELDS} } }`,
    );
    assert.deepEqual([missing.errors[0].code, missing.errors[0].field], ['RESOURCE_NOT_FOUND', 'volume']);
  });

  test('deleteSnapshot deletes the Snapshot resource', async () => {
    const payload = await mutate(
      'deleteSnapshot',
      `mutation { deleteSnapshot(volume: "vol-s", name: "snap-1") { ${SNAPSHOT_FIELDS} } }`,
    );
    assert.deepEqual(payload.errors, []);
    assert.equal(await get('Snapshot', 'snap-1'), undefined);
    const again = await mutate(
      'deleteSnapshot',
      `mutation { deleteSnapshot(volume: "vol-s", name: "snap-1") { ${SNAPSHOT_FIELDS} } }`,
    );
    assert.equal(again.errors[0].code, 'RESOURCE_NOT_FOUND');
  });

  test('revertSnapshot needs the volume attached without a frontend, then annotates the Engine', async () => {
    await mutate(
      'createSnapshot',
      `mutation { createSnapshot(volume: "vol-s", name: "snap-2") { ${SNAPSHOT_FIELDS} } }`,
    );
    await createEngine('vol-s');
    const detached = await mutate(
      'revertSnapshot',
      `mutation { revertSnapshot(volume: "vol-s", name: "snap-2") { ${VOLUME_FIELDS} } }`,
    );
    assert.equal(detached.errors[0].code, 'GRAPHQL_PRECONDITION_FAILED');
    await setVolumeStatus('vol-s', { state: 'attached', currentNodeID: 'node-1' });
    const withFrontend = await mutate(
      'revertSnapshot',
      `mutation { revertSnapshot(volume: "vol-s", name: "snap-2") { ${VOLUME_FIELDS} } }`,
    );
    assert.match(withFrontend.errors[0].message, /without a frontend/);
    await setVolumeStatus('vol-s', { frontendDisabled: true });
    const unknown = await mutate(
      'revertSnapshot',
      `mutation { revertSnapshot(volume: "vol-s", name: "snap-9") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual([unknown.errors[0].code, unknown.errors[0].field], ['RESOURCE_NOT_FOUND', 'name']);
    const reverted = await mutate(
      'revertSnapshot',
      `mutation { revertSnapshot(volume: "vol-s", name: "snap-2") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(reverted.errors, []);
    assert.equal(
      (await get('Engine', 'vol-s-e-0'))?.metadata.annotations?.[REVERT_SNAPSHOT_ANNOTATION],
      'snap-2',
    );
  });

  test('purgeSnapshots annotates the Engine of an attached volume', async () => {
    const payload = await mutate(
      'purgeSnapshots',
      `mutation { purgeSnapshots(volume: "vol-s") { ${VOLUME_FIELDS} } }`,
    );
    assert.deepEqual(payload.errors, []);
    const annotation = (await get('Engine', 'vol-s-e-0'))?.metadata.annotations?.[PURGE_REQUESTED_ANNOTATION];
    assert.match(annotation ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });
});

describe('node, disk and setting mutations (scope admin)', () => {
  const NODE_FIELDS =
    'node { name allowScheduling evictionRequested tags disks { name path allowScheduling tags storageReserved } } errors { code message field }';

  test('they are refused to a write token', async () => {
    const { status, body } = await harness.request(
      `mutation { updateNode(name: "node-1", allowScheduling: false) { ${NODE_FIELDS} } }`,
      { token: harness.tokens.write },
    );
    assert.equal(status, 403);
    assert.equal(body.errors?.[0]?.extensions?.code, 'GRAPHQL_FORBIDDEN');
    assert.equal((await get('Node', 'node-1'))?.spec.allowScheduling, true);
  });

  test('updateNode changes scheduling, eviction and tags', async () => {
    const payload = await mutate(
      'updateNode',
      `mutation { updateNode(name: "node-1", allowScheduling: false, evictionRequested: true, tags: ["ssd", "fast"]) { ${NODE_FIELDS} } }`,
      undefined,
      harness.tokens.admin,
    );
    assert.deepEqual(payload.errors, []);
    const node = await get('Node', 'node-1');
    assert.equal(node?.spec.allowScheduling, false);
    assert.equal(node?.spec.evictionRequested, true);
    assert.deepEqual(node?.spec.tags, ['ssd', 'fast']);
    const missing = await mutate(
      'updateNode',
      `mutation { updateNode(name: "node-9", allowScheduling: false) { ${NODE_FIELDS} } }`,
      undefined,
      harness.tokens.admin,
    );
    assert.deepEqual([missing.errors[0].code, missing.errors[0].field], ['RESOURCE_NOT_FOUND', 'name']);
  });

  test('addDisk, updateDisk and removeDisk edit spec.disks', async () => {
    const admin = harness.tokens.admin;
    const added = await mutate(
      'addDisk',
      `mutation { addDisk(node: "node-2", name: "disk-2", path: "/srv/node-2/disk-2", storageReserved: "10Gi", tags: ["nvme"]) { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual(added.errors, []);
    assert.deepEqual((await get('Node', 'node-2'))?.spec.disks['disk-2'], {
      path: '/srv/node-2/disk-2',
      allowScheduling: true,
      evictionRequested: false,
      storageReserved: '10Gi',
      tags: ['nvme'],
      diskType: 'filesystem',
    });
    const duplicate = await mutate(
      'addDisk',
      `mutation { addDisk(node: "node-2", name: "disk-2", path: "/srv/other") { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual(
      [duplicate.errors[0].code, duplicate.errors[0].field],
      ['RESOURCE_ALREADY_EXISTS', 'name'],
    );
    const samePath = await mutate(
      'addDisk',
      `mutation { addDisk(node: "node-2", name: "disk-3", path: "/srv/node-2/disk-2") { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual([samePath.errors[0].code, samePath.errors[0].field], ['RESOURCE_INVALID', 'path']);

    const inUse = await mutate(
      'removeDisk',
      `mutation { removeDisk(node: "node-2", name: "disk-2") { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.equal(inUse.errors[0].code, 'GRAPHQL_PRECONDITION_FAILED');
    const updated = await mutate(
      'updateDisk',
      `mutation { updateDisk(node: "node-2", name: "disk-2", allowScheduling: false, tags: []) { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual(updated.errors, []);
    assert.equal((await get('Node', 'node-2'))?.spec.disks['disk-2']?.allowScheduling, false);
    assert.deepEqual((await get('Node', 'node-2'))?.spec.disks['disk-2']?.tags, []);

    await harness.store.create({
      kind: 'Replica',
      metadata: { name: 'vol-d-r-1', namespace: harness.namespace },
      spec: { volumeName: 'vol-d', volumeSize: '1Gi', nodeID: 'node-2', diskID: 'disk-2' },
    });
    const holding = await mutate(
      'removeDisk',
      `mutation { removeDisk(node: "node-2", name: "disk-2") { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.match(holding.errors[0].message, /vol-d-r-1/);
    await harness.store.delete({ kind: 'Replica', namespace: harness.namespace, name: 'vol-d-r-1' });
    const removed = await mutate(
      'removeDisk',
      `mutation { removeDisk(node: "node-2", name: "disk-2") { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual(removed.errors, []);
    assert.deepEqual(Object.keys((await get('Node', 'node-2'))?.spec.disks ?? {}), ['disk-1']);
    const gone = await mutate(
      'updateDisk',
      `mutation { updateDisk(node: "node-2", name: "disk-2", allowScheduling: true) { ${NODE_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual([gone.errors[0].code, gone.errors[0].field], ['RESOURCE_NOT_FOUND', 'name']);
  });

  test('updateSetting creates, then updates the Setting, and checks the value', async () => {
    const SETTING_FIELDS = 'setting { name value isSet default } errors { code message field }';
    const admin = harness.tokens.admin;
    const created = await mutate(
      'updateSetting',
      `mutation { updateSetting(name: "auto-salvage", value: "false") { ${SETTING_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual(created.setting, { name: 'auto-salvage', value: 'false', isSet: true, default: 'true' });
    assert.equal((await get('Setting', 'auto-salvage'))?.spec.value, 'false');
    await mutate(
      'updateSetting',
      `mutation { updateSetting(name: "auto-salvage", value: "true") { ${SETTING_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.equal((await get('Setting', 'auto-salvage'))?.spec.value, 'true');
    const bad = await mutate(
      'updateSetting',
      `mutation { updateSetting(name: "auto-salvage", value: "maybe") { ${SETTING_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual([bad.errors[0].code, bad.errors[0].field], ['RESOURCE_INVALID', 'value']);
    const unknown = await mutate(
      'updateSetting',
      `mutation { updateSetting(name: "no-such-setting", value: "1") { ${SETTING_FIELDS} } }`,
      undefined,
      admin,
    );
    assert.deepEqual([unknown.errors[0].code, unknown.errors[0].field], ['INVALID_ARGUMENT', 'name']);
    assert.equal((await get('Setting', 'auto-salvage'))?.spec.value, 'true');
  });
});

test('deleteVolume deletes the Volume (and what it owns)', async () => {
  await createVolume('vol-gone');
  await mutate(
    'attachVolume',
    `mutation { attachVolume(name: "vol-gone", node: "node-1") { ${VOLUME_FIELDS} } }`,
  );
  const payload = await mutate(
    'deleteVolume',
    `mutation { deleteVolume(name: "vol-gone") { ${VOLUME_FIELDS} } }`,
  );
  assert.deepEqual(payload.errors, []);
  assert.equal(await get('Volume', 'vol-gone'), undefined);
  assert.equal(await get('VolumeAttachment', 'vol-gone'), undefined);
  const again = await mutate(
    'deleteVolume',
    `mutation { deleteVolume(name: "vol-gone") { ${VOLUME_FIELDS} } }`,
  );
  assert.deepEqual(again.errors, [
    { code: 'RESOURCE_NOT_FOUND', message: 'volume vol-gone does not exist', field: 'name' },
  ]);
});
