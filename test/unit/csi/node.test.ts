/**
 * The node service with the recording host: staging (iSCSI login, mkfs only when empty,
 * mount), block and RWX staging, publish (bind, read-only), stats, expansion, info — and
 * the seed's §4-1 failures: a stale session logged out and in again, a device claimed by
 * multipathd or mounted elsewhere named in the error with its fix, missing host tools.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostConditions } from '../../../src/csi/host/requirements.ts';
import { parseIscsiEndpoint } from '../../../src/csi/host/types.ts';
import { rejectsWith } from './assertions.ts';
import { endpointFor } from './controller-stand-in.ts';
import {
  BLOCK_CAPABILITY,
  MOUNT_CAPABILITY,
  NAMESPACE,
  NODE_ID,
  RWX_CAPABILITY,
  startHarness,
} from './harness.ts';

const STAGING = '/var/lib/kubelet/plugins/kubernetes.io/csi/driver.hornbill.io/abc/globalmount';
const TARGET = '/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/v/mount';

function stage(volume: string, capability: object = MOUNT_CAPABILITY, context: Record<string, string> = {}) {
  return {
    volume_id: volume,
    publish_context: { endpoint: endpointFor(volume) },
    staging_target_path: STAGING,
    volume_capability: capability,
    volume_context: context,
  };
}

test('NodeStageVolume validates, logs in, formats only an empty device, mounts, and is idempotent', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...stage('v'), volume_id: '' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...stage('v'), staging_target_path: '' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...stage('v'), volume_capability: null }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...stage('v'), publish_context: {} }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...stage('v'), publish_context: { endpoint: 'nbd://x/y' } }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', stage('v', MOUNT_CAPABILITY, { mkfsParams: '-F /dev/sda' })),
    'INVALID_ARGUMENT',
    'CSI_PARAMETER_INVALID',
  );
  assert.equal(
    host.operations().filter((operation) => operation === 'iscsiLogin').length,
    0,
    'nothing done before validation',
  );

  await csi.call(
    'Node',
    'NodeStageVolume',
    stage('v', MOUNT_CAPABILITY, { mkfsParams: '-O ^metadata_csum' }),
  );
  const mkfs = host.calls.find((call) => call.operation === 'makeFilesystem');
  assert.deepEqual(mkfs?.arguments, ['/dev/sdb', 'ext4', ['-b', '4096', '-O', '^metadata_csum']]);
  assert.deepEqual(
    host.mountTable.map((entry) => [entry.mountPoint, entry.source, entry.fsType]),
    [[STAGING, '/dev/sdb', 'ext4']],
  );
  const before = host.calls.length;
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  assert.ok(
    !host.calls
      .slice(before)
      .some((call) => ['iscsiLogin', 'makeFilesystem', 'mount'].includes(call.operation)),
  );

  // Unstage, stage again: the filesystem is kept (no second mkfs).
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING });
  assert.equal(host.sessions.length, 0);
  assert.equal(host.mountTable.length, 0);
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING });
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  assert.equal(host.operations().filter((operation) => operation === 'makeFilesystem').length, 1);
  // xfs asked for an ext4 device: refused, not reformatted.
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING });
  await rejectsWith(
    csi.call(
      'Node',
      'NodeStageVolume',
      stage('v', { mount: { fs_type: 'xfs', mount_flags: [] }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }),
    ),
    'FAILED_PRECONDITION',
    'CSI_FILESYSTEM_MISMATCH',
  );
});

test('a stale iSCSI session is logged out and in again (seed §4-1)', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  const target = parseIscsiEndpoint(endpointFor('v'));
  assert.ok(target);
  host.staleSessionFor(target);
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  const operations = host.operations().filter((operation) => operation.startsWith('iscsi'));
  assert.deepEqual(operations.slice(0, 3), ['iscsiSessions', 'iscsiLogout', 'iscsiLogin']);
  assert.deepEqual(
    host.sessions.map((session) => session.sessionState),
    ['LOGGED_IN'],
  );
});

test('a device claimed by multipathd or mounted elsewhere is refused with the holder and the fix (seed §4-1)', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING });
  host.claimByMultipath('/dev/sdb', 'dm-3');
  await assert.rejects(csi.call('Node', 'NodeStageVolume', stage('v')), (error: Error) => {
    assert.match(error.message, /dm-3/);
    assert.match(error.message, /multipath -f dm-3/);
    assert.match(error.message, /blacklist/);
    return true;
  });
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', stage('v')),
    'FAILED_PRECONDITION',
    'CSI_DEVICE_BUSY',
  );
  host.disks.forEach((disk) => {
    disk.holders.length = 0;
  });
  host.mountElsewhere('/dev/sdb', '/mnt/leftover');
  await assert.rejects(csi.call('Node', 'NodeStageVolume', stage('v')), (error: Error) => {
    assert.match(error.message, /already mounted at \/mnt\/leftover/);
    assert.match(error.message, /umount \/mnt\/leftover/);
    return true;
  });
});

test('missing host tools fail with the package to install, and make RequiredPackages False', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  host.missingTools.add('iscsiadm');
  await assert.rejects(
    csi.call('Node', 'NodeStageVolume', stage('v')),
    (error: Error & { code?: string }) => {
      assert.match(error.message, /open-iscsi/);
      return true;
    },
  );
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', stage('v')),
    'FAILED_PRECONDITION',
    'CSI_HOST_TOOL_MISSING',
  );
  host.missingTools.add('mount.nfs4');
  host.multipathdRunning = true;
  const conditions = hostConditions(await host.checkTools());
  const byType = Object.fromEntries(conditions.map((condition) => [condition.type, condition]));
  assert.equal(byType.RequiredPackages.status, 'False');
  assert.match(byType.RequiredPackages.message, /open-iscsi \(iscsiadm\)/);
  assert.equal(byType.NFSClientInstalled.status, 'False');
  assert.equal(byType.Multipathd.status, 'True');
});

test('NodePublishVolume binds the staging mount (read-only when asked); NodeUnpublish removes it', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  const publish = {
    volume_id: 'v',
    staging_target_path: STAGING,
    target_path: TARGET,
    volume_capability: MOUNT_CAPABILITY,
    readonly: true,
    publish_context: { endpoint: endpointFor('v') },
  };
  await rejectsWith(
    csi.call('Node', 'NodePublishVolume', { ...publish, target_path: '' }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodePublishVolume', { ...publish, volume_capability: null }),
    'INVALID_ARGUMENT',
  );
  await rejectsWith(
    csi.call('Node', 'NodePublishVolume', { ...publish, staging_target_path: '' }),
    'FAILED_PRECONDITION',
    'CSI_NOT_STAGED',
  );
  await rejectsWith(csi.call('Node', 'NodePublishVolume', publish), 'FAILED_PRECONDITION', 'CSI_NOT_STAGED');
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  await csi.call('Node', 'NodePublishVolume', publish);
  await csi.call('Node', 'NodePublishVolume', publish);
  const mounts = host.mountTable.filter((entry) => entry.mountPoint === TARGET);
  assert.equal(mounts.length, 1);
  assert.ok(mounts[0].options.includes('ro'));
  // Unstaging while a pod still has it mounted is refused, naming the pod's mount.
  await rejectsWith(
    csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING }),
    'FAILED_PRECONDITION',
    'CSI_DEVICE_BUSY',
  );
  assert.ok(
    host.mountTable.some((entry) => entry.mountPoint === STAGING),
    'nothing was unmounted',
  );
  await rejectsWith(csi.call('Node', 'NodeUnpublishVolume', { volume_id: 'v' }), 'INVALID_ARGUMENT');
  await csi.call('Node', 'NodeUnpublishVolume', { volume_id: 'v', target_path: TARGET });
  await csi.call('Node', 'NodeUnpublishVolume', { volume_id: 'v', target_path: TARGET });
  assert.equal(host.paths.get(TARGET), undefined);
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'v', staging_target_path: STAGING });
  assert.equal(host.mountTable.length, 0);
});

test('block volumes: staged without a filesystem, published as the device, not logged out while published', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  await csi.call('Controller', 'CreateVolume', { name: 'b', volume_capabilities: [BLOCK_CAPABILITY] });
  await csi.call('Node', 'NodeStageVolume', stage('b', BLOCK_CAPABILITY));
  assert.ok(!host.operations().includes('makeFilesystem'));
  const target = '/var/lib/kubelet/plugins/kubernetes.io/csi/volumeDevices/publish/b/pod-1';
  const publish = {
    volume_id: 'b',
    staging_target_path: STAGING,
    target_path: target,
    volume_capability: BLOCK_CAPABILITY,
    publish_context: { endpoint: endpointFor('b') },
  };
  await csi.call('Node', 'NodePublishVolume', publish);
  assert.equal(host.paths.get(target), 'file');
  assert.equal(host.mountTable.find((entry) => entry.mountPoint === target)?.root, '/sdb');
  await csi.call('Node', 'NodeStageVolume', stage('b', BLOCK_CAPABILITY));
  await rejectsWith(
    csi.call('Node', 'NodeUnstageVolume', { volume_id: 'b', staging_target_path: STAGING }),
    'FAILED_PRECONDITION',
    'CSI_DEVICE_BUSY',
  );
  const stats = await csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'b', volume_path: target });
  assert.equal(stats.usage[0].total, host.diskSizeBytes);
  await csi.call('Node', 'NodeUnpublishVolume', { volume_id: 'b', target_path: target });
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 'b', staging_target_path: STAGING });
  assert.equal(host.sessions.length, 0);
});

test('RWX volumes mount the share over NFSv4 with Longhorn options unless nfsOptions says otherwise', async (t) => {
  const { csi, host } = await startHarness(t, { standIn: false });
  const request = {
    volume_id: 's',
    staging_target_path: STAGING,
    volume_capability: RWX_CAPABILITY,
    publish_context: { shareEndpoint: 'nfs://10.43.0.7/s' },
    volume_context: { accessMode: 'rwx' },
  };
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', { ...request, publish_context: {} }),
    'ABORTED',
    'CSI_VOLUME_NOT_READY',
  );
  await csi.call('Node', 'NodeStageVolume', request);
  await csi.call('Node', 'NodeStageVolume', request);
  const mount = host.calls.find((call) => call.operation === 'mount')?.arguments[0] as {
    source: string;
    fsType: string;
    options: string[];
  };
  assert.equal(mount.source, '10.43.0.7:/s');
  assert.equal(mount.fsType, 'nfs4');
  assert.deepEqual(mount.options, ['vers=4.1', 'noresvport', 'timeo=600', 'retrans=5', 'softerr']);
  assert.ok(!host.operations().includes('iscsiLogin'));
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 's', staging_target_path: STAGING });
  await csi.call('Node', 'NodeStageVolume', {
    ...request,
    volume_context: { accessMode: 'rwx', nfsOptions: 'vers=4.2,hard' },
  });
  assert.deepEqual(host.mountTable[0].options, ['vers=4.2', 'hard']);
  host.missingTools.add('mount.nfs4');
  await csi.call('Node', 'NodeUnstageVolume', { volume_id: 's', staging_target_path: STAGING });
  await rejectsWith(
    csi.call('Node', 'NodeStageVolume', request),
    'FAILED_PRECONDITION',
    'CSI_HOST_TOOL_MISSING',
  );
});

test('NodeGetVolumeStats reports usage and the volume condition; NodeExpandVolume grows the filesystem', async (t) => {
  const { csi, host, store } = await startHarness(t, { standIn: false });
  await csi.call('Controller', 'CreateVolume', { name: 'v', volume_capabilities: [MOUNT_CAPABILITY] });
  await rejectsWith(csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'v' }), 'INVALID_ARGUMENT');
  await rejectsWith(
    csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'v', volume_path: '/nowhere' }),
    'NOT_FOUND',
  );
  await csi.call('Node', 'NodeStageVolume', stage('v'));
  const healthy = await csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'v', volume_path: STAGING });
  assert.deepEqual(
    healthy.usage.map((usage: { unit: string }) => usage.unit),
    ['BYTES', 'INODES'],
  );
  assert.equal(healthy.volume_condition.abnormal, false);
  const volume = await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'v' });
  await store.updateStatus({ ...volume, status: { state: 'attached', robustness: 'degraded' } });
  const degraded = await csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'v', volume_path: STAGING });
  assert.equal(degraded.volume_condition.abnormal, true);
  assert.match(degraded.volume_condition.message, /degraded/);
  await rejectsWith(
    csi.call('Node', 'NodeGetVolumeStats', { volume_id: 'gone', volume_path: STAGING }),
    'NOT_FOUND',
  );

  await rejectsWith(csi.call('Node', 'NodeExpandVolume', { volume_id: 'v' }), 'INVALID_ARGUMENT');
  await rejectsWith(
    csi.call('Node', 'NodeExpandVolume', { volume_id: 'v', volume_path: '/nowhere' }),
    'NOT_FOUND',
  );
  host.diskSizeBytes = 4 * 1024 ** 3;
  const grown = await csi.call('Node', 'NodeExpandVolume', {
    volume_id: 'v',
    volume_path: STAGING,
    capacity_range: { required_bytes: 4 * 1024 ** 3 },
  });
  assert.equal(grown.capacity_bytes, 4 * 1024 ** 3);
  assert.deepEqual(
    host.operations().filter((operation) => operation === 'iscsiRescan' || operation === 'resizeFilesystem'),
    ['iscsiRescan', 'resizeFilesystem'],
  );
  assert.deepEqual(host.calls.find((call) => call.operation === 'resizeFilesystem')?.arguments, [
    '/dev/sdb',
    STAGING,
    'ext4',
  ]);
});

test('NodeGetInfo reports the node and its topology; NodeGetCapabilities', async (t) => {
  const { csi } = await startHarness(t, { standIn: false });
  const info = await csi.call('Node', 'NodeGetInfo');
  assert.equal(info.node_id, NODE_ID);
  assert.deepEqual(info.accessible_topology.segments, {
    'kubernetes.io/hostname': NODE_ID,
    'topology.kubernetes.io/zone': 'zone-a',
  });
  const { capabilities } = await csi.call('Node', 'NodeGetCapabilities');
  assert.deepEqual(
    capabilities.map((item: { rpc: { type: string } }) => item.rpc.type),
    [
      'STAGE_UNSTAGE_VOLUME',
      'GET_VOLUME_STATS',
      'EXPAND_VOLUME',
      'VOLUME_CONDITION',
      'SINGLE_NODE_MULTI_WRITER',
    ],
  );
});
