/**
 * Must-hold 2 of issue 8 in one table: the error cases kubernetes-csi's csi-sanity checks,
 * each with the gRPC status the CSI specification names (OK where it asks for success).
 * The other tests cover the success paths and idempotency around them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rejectsWith } from './assertions.ts';
import { addNode, GiB, MOUNT_CAPABILITY, NODE_ID, startHarness } from './harness.ts';

type Expected =
  | 'OK'
  | 'INVALID_ARGUMENT'
  | 'NOT_FOUND'
  | 'ALREADY_EXISTS'
  | 'ABORTED'
  | 'FAILED_PRECONDITION';
const CAP = MOUNT_CAPABILITY;
const STAGE = '/var/lib/kubelet/plugins/kubernetes.io/csi/driver.hornbill.io/x/globalmount';
const TARGET = '/var/lib/kubelet/pods/p/volumes/kubernetes.io~csi/v/mount';

const CASES: [string, 'Controller' | 'Node', string, Record<string, unknown>, Expected][] = [
  [
    'CreateVolume without a name',
    'Controller',
    'CreateVolume',
    { volume_capabilities: [CAP] },
    'INVALID_ARGUMENT',
  ],
  ['CreateVolume without capabilities', 'Controller', 'CreateVolume', { name: 'n1' }, 'INVALID_ARGUMENT'],
  [
    'CreateVolume with an existing name and another size',
    'Controller',
    'CreateVolume',
    { name: 'existing', capacity_range: { required_bytes: 8 * GiB }, volume_capabilities: [CAP] },
    'ALREADY_EXISTS',
  ],
  [
    'CreateVolume from a snapshot that does not exist',
    'Controller',
    'CreateVolume',
    {
      name: 'n2',
      volume_capabilities: [CAP],
      volume_content_source: { snapshot: { snapshot_id: 'snap://existing/none' } },
    },
    'NOT_FOUND',
  ],
  [
    'CreateVolume from a volume that does not exist',
    'Controller',
    'CreateVolume',
    { name: 'n3', volume_capabilities: [CAP], volume_content_source: { volume: { volume_id: 'none' } } },
    'NOT_FOUND',
  ],
  ['DeleteVolume without an id', 'Controller', 'DeleteVolume', {}, 'INVALID_ARGUMENT'],
  ['DeleteVolume of a volume that does not exist', 'Controller', 'DeleteVolume', { volume_id: 'none' }, 'OK'],
  [
    'ValidateVolumeCapabilities without an id',
    'Controller',
    'ValidateVolumeCapabilities',
    { volume_capabilities: [CAP] },
    'INVALID_ARGUMENT',
  ],
  [
    'ValidateVolumeCapabilities without capabilities',
    'Controller',
    'ValidateVolumeCapabilities',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'ValidateVolumeCapabilities of a volume that does not exist',
    'Controller',
    'ValidateVolumeCapabilities',
    { volume_id: 'none', volume_capabilities: [CAP] },
    'NOT_FOUND',
  ],
  [
    'ControllerPublishVolume without a volume id',
    'Controller',
    'ControllerPublishVolume',
    { node_id: NODE_ID, volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerPublishVolume without a node id',
    'Controller',
    'ControllerPublishVolume',
    { volume_id: 'existing', volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerPublishVolume without a capability',
    'Controller',
    'ControllerPublishVolume',
    { volume_id: 'existing', node_id: NODE_ID },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerPublishVolume of a volume that does not exist',
    'Controller',
    'ControllerPublishVolume',
    { volume_id: 'none', node_id: NODE_ID, volume_capability: CAP },
    'NOT_FOUND',
  ],
  [
    'ControllerPublishVolume to a node that does not exist',
    'Controller',
    'ControllerPublishVolume',
    { volume_id: 'existing', node_id: 'no-such-node', volume_capability: CAP },
    'NOT_FOUND',
  ],
  [
    'ControllerPublishVolume of a single-node volume to a second node',
    'Controller',
    'ControllerPublishVolume',
    { volume_id: 'published', node_id: 'node-2', volume_capability: CAP },
    'FAILED_PRECONDITION',
  ],
  [
    'ControllerUnpublishVolume without a volume id',
    'Controller',
    'ControllerUnpublishVolume',
    { node_id: NODE_ID },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerUnpublishVolume of a volume that does not exist',
    'Controller',
    'ControllerUnpublishVolume',
    { volume_id: 'none', node_id: NODE_ID },
    'OK',
  ],
  [
    'ListVolumes with a token the driver did not issue',
    'Controller',
    'ListVolumes',
    { starting_token: 'invalid-token' },
    'ABORTED',
  ],
  [
    'CreateSnapshot without a name',
    'Controller',
    'CreateSnapshot',
    { source_volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'CreateSnapshot without a source volume',
    'Controller',
    'CreateSnapshot',
    { name: 's1' },
    'INVALID_ARGUMENT',
  ],
  [
    'CreateSnapshot of a volume that does not exist',
    'Controller',
    'CreateSnapshot',
    { name: 's2', source_volume_id: 'none' },
    'NOT_FOUND',
  ],
  [
    'CreateSnapshot with an existing name and another source',
    'Controller',
    'CreateSnapshot',
    { name: 'snapshot-of-existing', source_volume_id: 'published' },
    'ALREADY_EXISTS',
  ],
  ['DeleteSnapshot without an id', 'Controller', 'DeleteSnapshot', {}, 'INVALID_ARGUMENT'],
  [
    'DeleteSnapshot of a snapshot that does not exist',
    'Controller',
    'DeleteSnapshot',
    { snapshot_id: 'snap://existing/none' },
    'OK',
  ],
  [
    'ListSnapshots of a snapshot id that does not exist',
    'Controller',
    'ListSnapshots',
    { snapshot_id: 'snap://existing/none' },
    'OK',
  ],
  [
    'ControllerExpandVolume without a volume id',
    'Controller',
    'ControllerExpandVolume',
    { capacity_range: { required_bytes: GiB } },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerExpandVolume without a capacity range',
    'Controller',
    'ControllerExpandVolume',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'ControllerExpandVolume of a volume that does not exist',
    'Controller',
    'ControllerExpandVolume',
    { volume_id: 'none', capacity_range: { required_bytes: GiB } },
    'NOT_FOUND',
  ],
  [
    'NodeStageVolume without a volume id',
    'Node',
    'NodeStageVolume',
    { staging_target_path: STAGE, volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeStageVolume without a staging path',
    'Node',
    'NodeStageVolume',
    { volume_id: 'existing', volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeStageVolume without a capability',
    'Node',
    'NodeStageVolume',
    { volume_id: 'existing', staging_target_path: STAGE },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeUnstageVolume without a volume id',
    'Node',
    'NodeUnstageVolume',
    { staging_target_path: STAGE },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeUnstageVolume without a staging path',
    'Node',
    'NodeUnstageVolume',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'NodePublishVolume without a volume id',
    'Node',
    'NodePublishVolume',
    { staging_target_path: STAGE, target_path: TARGET, volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'NodePublishVolume without a target path',
    'Node',
    'NodePublishVolume',
    { volume_id: 'existing', staging_target_path: STAGE, volume_capability: CAP },
    'INVALID_ARGUMENT',
  ],
  [
    'NodePublishVolume without a capability',
    'Node',
    'NodePublishVolume',
    { volume_id: 'existing', staging_target_path: STAGE, target_path: TARGET },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeUnpublishVolume without a volume id',
    'Node',
    'NodeUnpublishVolume',
    { target_path: TARGET },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeUnpublishVolume without a target path',
    'Node',
    'NodeUnpublishVolume',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeGetVolumeStats without a volume id',
    'Node',
    'NodeGetVolumeStats',
    { volume_path: STAGE },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeGetVolumeStats without a volume path',
    'Node',
    'NodeGetVolumeStats',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeGetVolumeStats of a path where nothing is',
    'Node',
    'NodeGetVolumeStats',
    { volume_id: 'existing', volume_path: '/nothing/here' },
    'NOT_FOUND',
  ],
  [
    'NodeExpandVolume without a volume id',
    'Node',
    'NodeExpandVolume',
    { volume_path: STAGE },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeExpandVolume without a volume path',
    'Node',
    'NodeExpandVolume',
    { volume_id: 'existing' },
    'INVALID_ARGUMENT',
  ],
  [
    'NodeExpandVolume of a path where nothing is',
    'Node',
    'NodeExpandVolume',
    { volume_id: 'existing', volume_path: '/nothing/here' },
    'NOT_FOUND',
  ],
];

test('csi-sanity error cases answer the codes the CSI specification names', async (t) => {
  const { csi, store } = await startHarness(t);
  await addNode(store, 'node-2');
  await csi.call('Controller', 'CreateVolume', {
    name: 'existing',
    capacity_range: { required_bytes: GiB },
    volume_capabilities: [CAP],
  });
  await csi.call('Controller', 'CreateVolume', {
    name: 'published',
    capacity_range: { required_bytes: GiB },
    volume_capabilities: [CAP],
  });
  for (let i = 0; i < 200; i++) {
    try {
      await csi.call('Controller', 'ControllerPublishVolume', {
        volume_id: 'published',
        node_id: NODE_ID,
        volume_capability: CAP,
      });
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
  await csi.call('Controller', 'CreateSnapshot', {
    name: 'snapshot-of-existing',
    source_volume_id: 'existing',
  });
  for (const [description, service, method, request, expected] of CASES) {
    await t.test(description, async () => {
      const call = csi.call(service, method, request);
      if (expected === 'OK') assert.ok(await call);
      else await rejectsWith(call, expected);
    });
  }
});
