/**
 * The instance manager's share-manager hosting in process, with a launcher that records the
 * `hornbill share-manager` command line instead of spawning it, and the CSI driver's
 * RecordingHostOperations standing in for the kernel initiator (no iSCSI or mount here):
 * source `device` logs in to the engine's target, finds the LUN's device, formats a new volume
 * once, passes `--device` to the share manager, and logs out on delete; source `directory`
 * exports `<disk>/share-exports/<volume>`; a child that exits is reported as `error`; requests
 * are validated before anything runs.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { ShareManagerHost } from '../../../src/dataplane/instance-manager/share-manager-host.ts';
import type {
  ShareManagerChild,
  ShareManagerExit,
  ShareManagerLauncher,
} from '../../../src/dataplane/instance-manager/share-manager-process.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { tempDirectory } from '../../helpers/temp.ts';

interface FakeChild extends ShareManagerChild {
  argv: string[];
  exit(code: number): void;
}

/** A launcher whose children are ready at once and exit when told. */
function fakeLauncher(): { launcher: ShareManagerLauncher; children: FakeChild[] } {
  const children: FakeChild[] = [];
  let nextPid = 4000;
  const launcher: ShareManagerLauncher = (argv, onStderrLine) => {
    let settle: (exit: ShareManagerExit) => void = () => {};
    const exited = new Promise<ShareManagerExit>((resolve) => {
      settle = resolve;
    });
    const flag = (name: string) => argv[argv.indexOf(name) + 1];
    const child: FakeChild = {
      argv,
      pid: nextPid++,
      ready: Promise.resolve({
        ready: true,
        endpoint: `nfs://${flag('--address')}:${flag('--port')}/${flag('--volume')}`,
        exportPath: flag('--export-dir') ?? '',
        health: 'http://127.0.0.1:1/healthz',
        nfsPid: 99,
        startToReadyMs: 5,
        leaseIdentity: flag('--lease-identity'),
      }),
      exited,
      exit(code) {
        onStderrLine(`hornbill: SHARE_MANAGER_LEASE_LOST: lost the lease`);
        settle({ code, signal: null });
      },
      async stop() {
        settle({ code: 0, signal: null });
        return exited;
      },
    };
    children.push(child);
    return child;
  };
  return { launcher, children };
}

const flagOf = (argv: string[], name: string) => argv[argv.indexOf(name) + 1];

describe('share manager hosting (recorded)', () => {
  it('source device: iSCSI login, format once, --device, logout on delete', async (t) => {
    const disk = tempDirectory(t, 'hornbill-share-host-');
    const recording = new RecordingHostOperations();
    const { launcher, children } = fakeLauncher();
    const host = new ShareManagerHost({
      nodeName: 'node-1',
      disks: [disk],
      deviceHost: recording,
      launcher,
      command: ['hornbill-share-manager'],
    });
    assert.equal(host.canAttachDevices, true);
    const endpoint = 'iscsi://127.0.0.11:3260/iqn.2026-11.io.hornbill:vol1/0';
    const view = await host.create({
      name: 'share-manager-vol1',
      volumeName: 'vol1',
      address: '127.200.1.2',
      port: 2049,
      source: 'device',
      deviceEndpoint: endpoint,
      leaseFile: '/var/lib/hornbill/leases/vol1.json',
    });
    assert.equal(view.state, 'running');
    assert.equal(view.source, 'device');
    assert.equal(view.endpoint, 'nfs://127.200.1.2:2049/vol1');
    assert.match(view.device, /^\/dev\//);
    assert.deepEqual(recording.operations().slice(0, 4), [
      'iscsiLogin',
      'findDevice',
      'filesystemType',
      'makeFilesystem',
    ]);
    const argv = children[0].argv;
    assert.equal(argv[0], 'hornbill-share-manager');
    assert.equal(flagOf(argv, '--device'), view.device);
    assert.equal(flagOf(argv, '--fs-type'), 'ext4');
    assert.equal(flagOf(argv, '--state-dir'), path.join(disk, 'share-managers', 'vol1'));
    assert.equal(flagOf(argv, '--lease-file'), '/var/lib/hornbill/leases/vol1.json');
    assert.equal(flagOf(argv, '--lease-duration'), '15s');
    assert.equal(flagOf(argv, '--lease-identity'), 'node-1/share-manager-vol1');
    assert.ok(!argv.includes('--export-dir'));

    // Started again (after a stop) on a device that is formatted now: no second mkfs.
    await host.stop('share-manager-vol1');
    assert.equal(recording.operations().at(-1), 'iscsiLogout');
    await host.start('share-manager-vol1');
    assert.equal(recording.operations().filter((operation) => operation === 'makeFilesystem').length, 1);

    assert.deepEqual(await host.delete('share-manager-vol1'), { found: true, dataRemoved: false });
    assert.equal(recording.operations().at(-1), 'iscsiLogout');
    assert.equal(recording.sessions.length, 0);
  });

  it('source directory: exports <disk>/share-exports/<volume>; an exit is an error; start again', async (t) => {
    const disk = tempDirectory(t, 'hornbill-share-host-');
    const { launcher, children } = fakeLauncher();
    const host = new ShareManagerHost({ nodeName: 'node-2', disks: [disk], launcher, command: ['x'] });
    assert.equal(host.canAttachDevices, false);
    const request = {
      name: 'share-manager-vol2',
      volumeName: 'vol2',
      address: '127.200.1.3',
      port: 20490,
      nfsOptions: 'min-version=4.0',
      leaseFile: '/tmp/leases/vol2.json',
      leaseDurationSeconds: 3,
    };
    const view = await host.create(request);
    const exportDirectory = path.join(disk, 'share-exports', 'vol2');
    assert.equal(view.exportPath, exportDirectory);
    assert.ok(fs.statSync(exportDirectory).isDirectory());
    assert.equal(flagOf(children[0].argv, '--export-dir'), exportDirectory);
    assert.equal(flagOf(children[0].argv, '--nfs-options'), 'min-version=4.0');
    await assert.rejects(
      host.create({
        ...request,
        name: 'share-manager-vol3',
        volumeName: 'vol3',
        source: 'device',
        deviceEndpoint: 'iscsi://127.0.0.1:3260/iqn.2026-11.io.hornbill:vol3/0',
      }),
      (error) => isHornbillError(error, 'SHARE_MANAGER_DEVICE_UNAVAILABLE'),
    );
    await assert.rejects(host.create({ ...request, name: 'share-manager-other' }), (error) =>
      isHornbillError(error, 'INSTANCE_CONFLICT'),
    );

    children[0].exit(1);
    await new Promise((resolve) => setImmediate(resolve));
    const failed = host.get('share-manager-vol2');
    assert.equal(failed.state, 'error');
    assert.match(failed.error?.message ?? '', /SHARE_MANAGER_LEASE_LOST/);
    const again = await host.create(request); // the same Create starts it again
    assert.equal(again.state, 'running');
    assert.equal(again.restartCount, 1);
    assert.equal(children.length, 2);

    fs.writeFileSync(path.join(exportDirectory, 'file'), 'x');
    assert.deepEqual(await host.delete('share-manager-vol2', true), { found: true, dataRemoved: true });
    assert.equal(fs.existsSync(exportDirectory), false);
    assert.deepEqual(await host.delete('share-manager-vol2'), { found: false, dataRemoved: false });
  });

  it('validates requests before anything runs', async (t) => {
    const disk = tempDirectory(t, 'hornbill-share-host-');
    const { launcher, children } = fakeLauncher();
    const host = new ShareManagerHost({ nodeName: 'node-3', disks: [disk], launcher });
    const good = {
      name: 'share-manager-v',
      volumeName: 'v',
      address: '127.200.0.9',
      port: 2049,
      leaseFile: '/tmp/l/v.json',
    };
    const cases: [Record<string, unknown>, string][] = [
      [{ address: 'not-an-address' }, 'address'],
      [{ port: 0 }, 'port'],
      [{ port: 70000 }, 'port'],
      [{ volumeName: 'Bad_Name' }, 'volume_name'],
      [{ leaseFile: 'relative.json' }, 'lease_file'],
      [{ leaseFile: '/tmp/../etc/passwd.json' }, 'lease_file'],
      [{ leaseFile: '/tmp/lease' }, 'lease_file'],
      [{ leaseDurationSeconds: 2 }, 'lease_duration_seconds'],
      [{ nfsOptions: 'min-version=3' }, 'nfs_options'],
      [{ source: 'tape' }, 'source'],
      [{ source: 'device', deviceEndpoint: 'nbd://x:1/v' }, 'device_endpoint'],
      [{ deviceEndpoint: 'iscsi://127.0.0.1:3260/iqn.x:v/0' }, 'device_endpoint'],
      [{ fsType: 'btrfs' }, 'fs_type'],
      [{ diskPath: '/somewhere/else' }, 'disk_path'],
    ];
    for (const [change, field] of cases) {
      await assert.rejects(
        host.create({ ...good, ...change }),
        (error) =>
          isHornbillError(error) &&
          (error.code === 'INVALID_ARGUMENT' || error.code === 'INSTANCE_DISK_UNKNOWN') &&
          error.details.field === field,
        JSON.stringify(change),
      );
    }
    assert.equal(children.length, 0);
    assert.equal(host.size, 0);
  });
});
