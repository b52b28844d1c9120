/**
 * The ShareManager module as the controller uses it, in process, with real nfs-ganesha and
 * the recording host operations standing in for the kernel (no iSCSI initiator or mount
 * rights here): the device is mounted before ganesha starts and unmounted after it stops;
 * a share manager whose lease is taken by another holder fences itself — export stopped,
 * volume unmounted — and reports SHARE_MANAGER_LEASE_LOST.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { type Logger, silentLogger } from '../../../src/logging.ts';
import {
  DEFAULT_NFS_OPTIONS,
  FileLeaseClient,
  type ShareHostOperations,
  ShareManager,
} from '../../../src/share-manager/index.ts';
import { probeNfsNull } from '../../../src/share-manager/nfs-probe.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';
import { isAlive, loopbackEndpoint, requireShareTools, waitFor } from './nfs-helpers.ts';

const TARGET = { host: '127.0.0.11', port: 3260, iqn: 'iqn.2019-10.io.hornbill:vol-dev', lun: 1 };

/** A recording host whose attached disk is formatted ext4, and the operations it saw. */
async function recordingHost(): Promise<{
  host: ShareHostOperations;
  recording: RecordingHostOperations;
  device: string;
}> {
  const recording = new RecordingHostOperations();
  await recording.iscsiLogin(TARGET);
  const device = (await recording.findDevice(TARGET, 0)) as string;
  await recording.makeFilesystem(device, 'ext4', []);
  const host: ShareHostOperations = {
    pathKind: async (target) => (target === device ? 'block' : recording.pathKind(target)),
    filesystemType: (target) => recording.filesystemType(target),
    deviceNumber: (target) => recording.deviceNumber(target),
    mounts: () => recording.mounts(),
    makeDirectory: (target) => recording.makeDirectory(target),
    mount: (request) => recording.mount(request),
    unmount: (target) => recording.unmount(target),
  };
  return { host, recording, device };
}

async function startDeviceShare(t: TestContext, log: Logger = silentLogger) {
  const root = tempDirectory(t, 'hornbill-share-');
  const mountDirectory = path.join(root, 'mount');
  fs.mkdirSync(mountDirectory); // the real folder ganesha exports; the recording host "mounts" on it
  const { address, port } = await loopbackEndpoint();
  const { host, recording, device } = await recordingHost();
  const leaseFile = path.join(root, 'lease.json');
  const manager = await ShareManager.start({
    settings: {
      volume: 'vol-dev',
      address,
      port,
      stateDirectory: path.join(root, 'state'),
      nfs: DEFAULT_NFS_OPTIONS,
    },
    source: { kind: 'device', host, device, fsType: 'ext4', mountDirectory },
    lease: new FileLeaseClient(leaseFile),
    leaseIdentity: 'node-1',
    leaseTiming: { leaseDurationMs: 3_000, renewPeriodMs: 300, renewDeadlineMs: 2_000, retryPeriodMs: 200 },
    healthPort: 0,
    log,
  });
  defer(t, () => void manager.stop());
  return {
    manager,
    recording,
    root,
    address,
    port,
    leaseFile,
    configFile: path.join(root, 'state', 'ganesha.conf'),
  };
}

describe('ShareManager with a device', () => {
  it('mounts before serving and unmounts after stopping', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startDeviceShare(t);
    const operations = share.recording.operations();
    assert.ok(operations.includes('mount'));
    assert.equal(
      operations.filter((name) => name === 'makeFilesystem').length,
      1,
      'only the setup formatted',
    );
    assert.ok(operations.indexOf('mount') > operations.indexOf('makeFilesystem'));
    assert.equal(await probeNfsNull(share.address, share.port), undefined);
    const info = share.manager.info();
    assert.equal(info.endpoint, `nfs://${share.address}:${share.port}/vol-dev`);
    assert.equal(share.manager.status().state, 'running');
    const pid = info.nfsPid as number;
    await share.manager.stop();
    await share.manager.finished;
    assert.ok(!isAlive(pid));
    assert.equal(share.recording.operations().at(-1), 'unmount');
    assert.deepEqual(await share.recording.mounts(), []);
    assert.equal(JSON.parse(fs.readFileSync(share.leaseFile, 'utf8')).holderIdentity, '');
  });

  it('fences itself when another holder takes the lease: SHARE_MANAGER_LEASE_LOST', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startDeviceShare(t);
    const pid = share.manager.info().nfsPid as number;
    const lease = new FileLeaseClient(share.leaseFile);
    const current = await lease.get();
    assert.ok(current);
    await lease.update({ ...current, holderIdentity: 'node-2', renewTimeMs: Date.now() });
    const takenMs = Date.now();
    await assert.rejects(share.manager.finished, (error) =>
      isHornbillError(error, 'SHARE_MANAGER_LEASE_LOST'),
    );
    t.diagnostic(`lease taken → export stopped in ${Date.now() - takenMs} ms`);
    await waitFor(() => !isAlive(pid), 1_000, 'ganesha stopped');
    assert.notEqual(
      await probeNfsNull(share.address, share.port, 500),
      undefined,
      'the export no longer answers',
    );
    assert.deepEqual(await share.recording.mounts(), [], 'unmounted');
    assert.equal((await lease.get())?.holderIdentity, 'node-2', 'the new holder keeps the lease');
    assert.equal(share.manager.status().state, 'error');
  });
});
