/**
 * Mounting the volume through the CSI driver's host operations, on the recording host (no
 * kernel iSCSI initiator or mount rights here): mount, reuse, unmount, and every refusal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import { mountVolume, type ShareHostOperations, unmountVolume } from '../../../src/share-manager/device.ts';

const TARGET = { host: '127.0.0.11', port: 3260, iqn: 'iqn.2019-10.io.hornbill:pvc-1', lun: 1 };

/** A recording host with the volume's disk attached, formatted as `fsType` (none when undefined). */
async function hostWithDisk(fsType: string | undefined) {
  const recording = new RecordingHostOperations();
  await recording.iscsiLogin(TARGET);
  const device = (await recording.findDevice(TARGET, 0)) as string;
  if (fsType !== undefined) await recording.makeFilesystem(device, fsType, []);
  // The recording host models /dev nodes only through mounts; the attached disk is a block device.
  const host: ShareHostOperations = {
    pathKind: async (target) => (target === device ? 'block' : recording.pathKind(target)),
    filesystemType: (target) => recording.filesystemType(target),
    deviceNumber: (target) => recording.deviceNumber(target),
    mounts: () => recording.mounts(),
    makeDirectory: (target) => recording.makeDirectory(target),
    mount: (request) => recording.mount(request),
    unmount: (target) => recording.unmount(target),
  };
  return { recording, host, device };
}

function deviceInvalid(error: unknown): boolean {
  return isHornbillError(error, 'SHARE_MANAGER_DEVICE_INVALID');
}

describe('mountVolume', () => {
  it('mounts the formatted device without formatting it, then unmounts', async () => {
    const { recording, host, device } = await hostWithDisk('ext4');
    const request = { device, mountDirectory: '/var/lib/hornbill/sm/pvc-1/mount', fsType: 'ext4' as const };
    assert.equal(await mountVolume(host, request, silentLogger), true);
    const mounted = (await recording.mounts()).find((entry) => entry.mountPoint === request.mountDirectory);
    assert.equal(mounted?.source, device);
    assert.equal(mounted?.fsType, 'ext4');
    assert.equal(
      recording.calls.filter((call) => call.operation === 'makeFilesystem').length,
      1,
      'only the setup formatted',
    );
    assert.equal(await mountVolume(host, request, silentLogger), false, 'already mounted: reused');
    await unmountVolume(host, request.mountDirectory, silentLogger);
    assert.equal((await recording.mounts()).length, 0);
  });

  it('mounts xfs with nouuid', async () => {
    const { recording, host, device } = await hostWithDisk('xfs');
    await mountVolume(host, { device, mountDirectory: '/m', fsType: 'xfs' }, silentLogger);
    assert.ok((await recording.mounts())[0].options.includes('nouuid'));
  });

  it('refuses a missing device, an unformatted one, another filesystem, a busy mount folder', async () => {
    const { host, device } = await hostWithDisk(undefined);
    await assert.rejects(
      mountVolume(host, { device: '/dev/sdz', mountDirectory: '/m', fsType: 'ext4' }, silentLogger),
      deviceInvalid,
    );
    await assert.rejects(
      mountVolume(host, { device, mountDirectory: '/m', fsType: 'ext4' }, silentLogger),
      (error) => deviceInvalid(error) && /does not format/.test((error as Error).message),
    );
    const xfs = await hostWithDisk('xfs');
    await assert.rejects(
      mountVolume(xfs.host, { device: xfs.device, mountDirectory: '/m', fsType: 'ext4' }, silentLogger),
      (error) => deviceInvalid(error) && /carries xfs, not ext4/.test((error as Error).message),
    );
    const busy = await hostWithDisk('ext4');
    await busy.recording.makeDirectory('/busy');
    busy.recording.mountElsewhere('/dev/other', '/busy');
    await assert.rejects(
      mountVolume(busy.host, { device: busy.device, mountDirectory: '/busy', fsType: 'ext4' }, silentLogger),
      deviceInvalid,
    );
  });
});
