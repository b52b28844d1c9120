/**
 * ControllerPublish/Unpublish through attach tickets, with the test playing the volume
 * controller (controller-stand-in.ts): the ticket, the wait, publish_context, ABORTED while
 * the volume cannot attach, DEADLINE_EXCEEDED when it does not in time, FAILED_PRECONDITION
 * for a second node, and idempotent unpublish.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CsiClient } from '../../../src/csi/client.ts';
import { attachTicketId } from '../../../src/csi/names.ts';
import { rejectsWith } from './assertions.ts';
import { endpointFor } from './controller-stand-in.ts';
import { addNode, MOUNT_CAPABILITY, NAMESPACE, NODE_ID, RWX_CAPABILITY, startHarness } from './harness.ts';

async function createDetached(
  csi: CsiClient,
  store: import('../../../src/resources/store/types.ts').ResourceStore,
  name: string,
) {
  await csi.call('Controller', 'CreateVolume', { name, volume_capabilities: [MOUNT_CAPABILITY] });
  for (let i = 0; i < 200; i++) {
    if ((await store.get({ kind: 'Volume', namespace: NAMESPACE, name })).status?.state === 'detached')
      return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${name} never became detached`);
}

test('ControllerPublishVolume validates, adds a csi-attacher ticket, waits for the attach and returns the endpoint', async (t) => {
  const { csi, store } = await startHarness(t, { standIn: { attachDelayMs: 150 } });
  const publish = {
    volume_id: 'pvc-1',
    node_id: NODE_ID,
    volume_capability: MOUNT_CAPABILITY,
    readonly: false,
  };
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_id: '' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, node_id: '' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_capability: null }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', publish),
    'NOT_FOUND',
    'CSI_VOLUME_NOT_FOUND',
  );
  await createDetached(csi, store, 'pvc-1');
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, node_id: 'node-9' }),
    'NOT_FOUND',
    'CSI_NODE_NOT_FOUND',
  );
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_capability: RWX_CAPABILITY }),
    'INVALID_ARGUMENT',
  );

  const started = Date.now();
  const answer = await csi.call('Controller', 'ControllerPublishVolume', publish);
  assert.ok(Date.now() - started >= 100, 'waited for the controller');
  assert.equal(answer.publish_context.endpoint, endpointFor('pvc-1'));
  const attachment = await store.get({ kind: 'VolumeAttachment', namespace: NAMESPACE, name: 'pvc-1' });
  const id = attachTicketId('pvc-1', NODE_ID);
  assert.deepEqual(Object.keys(attachment.spec.attachmentTickets), [id]);
  assert.equal(attachment.spec.attachmentTickets[id].type, 'csi-attacher');
  assert.equal(attachment.metadata.ownerReferences?.[0].name, 'pvc-1');
  // Again: same answer, no second ticket.
  assert.deepEqual(await csi.call('Controller', 'ControllerPublishVolume', publish), answer);
  const listed = await csi.call('Controller', 'ListVolumes', {});
  assert.deepEqual(listed.entries[0].status.published_node_ids, [NODE_ID]);

  // A single-node volume cannot go to a second node.
  await addNode(store, 'node-2');
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, node_id: 'node-2' }),
    'FAILED_PRECONDITION',
    'CSI_VOLUME_PUBLISHED_ELSEWHERE',
  );

  await rejectsWith(
    csi.call('Controller', 'ControllerUnpublishVolume', { node_id: NODE_ID }),
    'INVALID_ARGUMENT',
  );
  await csi.call('Controller', 'ControllerUnpublishVolume', { volume_id: 'pvc-1', node_id: NODE_ID });
  const after = await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'pvc-1' });
  assert.equal(after.status?.state, 'detached');
  assert.deepEqual(
    (await store.get({ kind: 'VolumeAttachment', namespace: NAMESPACE, name: 'pvc-1' })).spec
      .attachmentTickets,
    {},
  );
  await csi.call('Controller', 'ControllerUnpublishVolume', { volume_id: 'pvc-1', node_id: NODE_ID });
  await csi.call('Controller', 'ControllerUnpublishVolume', { volume_id: 'gone', node_id: NODE_ID });
});

test('ControllerPublishVolume: ABORTED while the volume is being created, DEADLINE_EXCEEDED when the attach takes too long', async (t) => {
  // No controller at all: the volume has no status yet, as before the volume controller saw it.
  const idle = await startHarness(t, { standIn: false });
  await idle.csi.call('Controller', 'CreateVolume', {
    name: 'fresh',
    volume_capabilities: [MOUNT_CAPABILITY],
  });
  const publish = { volume_id: 'fresh', node_id: NODE_ID, volume_capability: MOUNT_CAPABILITY };
  await rejectsWith(
    idle.csi.call('Controller', 'ControllerPublishVolume', publish),
    'ABORTED',
    'CSI_VOLUME_NOT_READY',
  );

  const stuck = new Set<string>();
  const { csi, store } = await startHarness(t, { standIn: { stuck }, attachWaitMs: 400 });
  await createDetached(csi, store, 'slow');
  stuck.add('slow');
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_id: 'slow' }),
    'DEADLINE_EXCEEDED',
    'CSI_OPERATION_TIMEOUT',
  );
  // The call's own deadline is honoured: the driver answers before the client gives up.
  const stuckCall = csi.call(
    'Controller',
    'ControllerPublishVolume',
    { ...publish, volume_id: 'slow' },
    { deadlineMs: 300 },
  );
  await rejectsWith(stuckCall, 'DEADLINE_EXCEEDED', 'CSI_OPERATION_TIMEOUT');
  // A second call for the same volume while one runs is ABORTED (operation pending).
  const first = csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_id: 'slow' });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_id: 'slow' }),
    'ABORTED',
    'CSI_OPERATION_PENDING',
  );
  await rejectsWith(first, 'DEADLINE_EXCEEDED');
  // The ticket stays, so that the retry resumes.
  const attachment = await store.get({ kind: 'VolumeAttachment', namespace: NAMESPACE, name: 'slow' });
  assert.equal(Object.keys(attachment.spec.attachmentTickets).length, 1);
  stuck.delete('slow');
  const answer = await csi.call('Controller', 'ControllerPublishVolume', { ...publish, volume_id: 'slow' });
  assert.equal(answer.publish_context.endpoint, endpointFor('slow'));
});

test('ControllerPublishVolume of an RWX volume waits for its share manager', async (t) => {
  const { csi, store } = await startHarness(t);
  await csi.call('Controller', 'CreateVolume', { name: 'shared', volume_capabilities: [RWX_CAPABILITY] });
  const publish = { volume_id: 'shared', node_id: NODE_ID, volume_capability: RWX_CAPABILITY };
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', publish),
    'ABORTED',
    'CSI_VOLUME_NOT_READY',
  );
  const volume = await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'shared' });
  await store.updateStatus({
    ...volume,
    status: { ...volume.status, shareState: 'running', shareEndpoint: 'nfs://10.43.0.7/shared' },
  });
  const answer = await csi.call('Controller', 'ControllerPublishVolume', publish);
  assert.equal(answer.publish_context.shareEndpoint, 'nfs://10.43.0.7/shared');
  await csi.call('Controller', 'ControllerUnpublishVolume', { volume_id: 'shared', node_id: NODE_ID });
});
