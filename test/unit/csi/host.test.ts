/**
 * The host side: the parsers fed open-iscsi's and the kernel's formats (fixtures/), and
 * LinuxHostOperations run for real where this machine allows it — mkfs.ext4 and blkid on a
 * file, statfs, paths — and with stand-in `iscsiadm` scripts (a folder first in its search
 * path) that print open-iscsi's output and exit with its status codes, or hang.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { LinuxHostOperations } from '../../../src/csi/host/linux.ts';
import {
  classifyMountFailure,
  parseIscsiadmFailure,
  parseIscsiSessions,
  parseMountInfo,
} from '../../../src/csi/host/parsers.ts';
import { byPathLink, parseIscsiEndpoint } from '../../../src/csi/host/types.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import { requireTool } from '../../helpers/tools.ts';

const fixture = (name: string) => fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

test('iscsiadm -m session -P 3: targets, portals, states, attached disks', () => {
  const sessions = parseIscsiSessions(fixture('iscsiadm-session-p3.txt'));
  assert.deepEqual(sessions, [
    {
      sid: 3,
      iqn: 'iqn.2026-11.io.hornbill:pvc-5242ccd4',
      portal: '10.0.0.11:3260',
      sessionState: 'LOGGED_IN',
      connectionState: 'LOGGED IN',
      disks: [{ lun: 0, device: 'sdb', state: 'running' }],
    },
    {
      sid: 1,
      iqn: 'iqn.2026-11.io.hornbill:pvc-old',
      portal: '10.0.0.13:3260',
      sessionState: 'FAILED',
      connectionState: 'TRANSPORT WAIT',
      disks: [],
    },
  ]);
  const short = parseIscsiSessions(fixture('iscsiadm-session.txt'));
  assert.deepEqual(
    short.map((session) => [session.sid, session.portal, session.iqn]),
    [
      [1, '10.0.0.13:3260', 'iqn.2026-11.io.hornbill:pvc-old'],
      [3, '[fd00::11]:3260', 'iqn.2026-11.io.hornbill:pvc-5242ccd4'],
    ],
  );
  assert.deepEqual(parseIscsiSessions(''), []);
});

test('iscsiadm failures: exit status names, reasons, initiator errors, codes', () => {
  const login = parseIscsiadmFailure(8, fixture('iscsiadm-login-timeout.txt'), 'login');
  assert.equal(login.name, 'ISCSI_ERR_TRANS_TIMEOUT');
  assert.equal(login.initiatorError, 8);
  assert.equal(login.code, 'CSI_ISCSI_LOGIN_FAILED');
  assert.match(login.reason, /Could not login to \[iface: default, target: iqn.2026-11.io.hornbill:pvc-1/);
  const none = parseIscsiadmFailure(21, fixture('iscsiadm-no-sessions.txt'), 'other');
  assert.equal(none.name, 'ISCSI_ERR_NO_OBJS_FOUND');
  assert.equal(none.reason, 'No active sessions.');
  assert.equal(none.code, 'CSI_HOST_COMMAND_FAILED');
  assert.equal(parseIscsiadmFailure(99, '', 'login').name, 'exit status 99');
  // Real open-iscsi 2.1.8 output on a host without the iscsi_tcp module or iscsid (seed §4-1).
  const noDriver = parseIscsiadmFailure(12, fixture('iscsiadm-discovery-no-driver.txt'), 'login');
  assert.equal(noDriver.name, 'ISCSI_ERR_TRANS_NOT_FOUND');
  assert.equal(noDriver.code, 'CSI_HOST_TOOL_MISSING');
  assert.match(noDriver.fix ?? '', /modprobe iscsi_tcp/);
  assert.match(noDriver.reason, /iSCSI driver tcp is not loaded/);
  assert.ok(!noDriver.reason.includes('systemd'), 'only the iscsiadm: lines');
  for (const name of [
    'iscsiadm-login-no-records.txt',
    'iscsiadm-logout-no-sessions.txt',
    'iscsiadm-no-sessions.txt',
  ]) {
    const failure = parseIscsiadmFailure(21, fixture(name), 'other');
    assert.equal(failure.name, 'ISCSI_ERR_NO_OBJS_FOUND', name);
    assert.equal(failure.fix, undefined, name);
  }
  assert.match(
    parseIscsiadmFailure(21, fixture('iscsiadm-login-no-records.txt'), 'login').reason,
    /No records found/,
  );
});

test('mountinfo and mount failures', () => {
  const entries = parseMountInfo(fixture('mountinfo.txt'));
  assert.equal(entries.length, 6);
  const staged = entries[2];
  assert.deepEqual(
    [staged.majorMinor, staged.root, staged.fsType, staged.source],
    ['8:16', '/', 'ext4', '/dev/sdb'],
  );
  assert.equal(entries[4].root, '/sdc');
  assert.equal(entries[4].fsType, 'devtmpfs');
  assert.equal(entries[5].mountPoint, '/mnt/with space');
  assert.equal(entries[5].source, '10.43.0.7:/shared');
  assert.equal(
    classifyMountFailure('mount: /mnt: /dev/sdb already mounted or mount point busy.').code,
    'CSI_DEVICE_BUSY',
  );
  assert.equal(classifyMountFailure('umount: /mnt: not mounted.').notMounted, true);
  assert.equal(classifyMountFailure('umount: /mnt: target is busy.').code, 'CSI_DEVICE_BUSY');
});

test('endpoints and by-path links', () => {
  const target = parseIscsiEndpoint('iscsi://10.0.0.11:3260/iqn.2026-11.io.hornbill:pvc-1/0');
  assert.deepEqual(target, { host: '10.0.0.11', port: 3260, iqn: 'iqn.2026-11.io.hornbill:pvc-1', lun: 0 });
  assert.equal(
    byPathLink(target!),
    '/dev/disk/by-path/ip-10.0.0.11:3260-iscsi-iqn.2026-11.io.hornbill:pvc-1-lun-0',
  );
  assert.equal(parseIscsiEndpoint('iscsi://10.0.0.11/iqn.x/0'), undefined);
  assert.equal(parseIscsiEndpoint('nbd://10.0.0.11:10809/pvc-1'), undefined);
  assert.equal(parseIscsiEndpoint('iscsi://10.0.0.11:70000/iqn.x/0'), undefined);
});

test('mkfs.ext4 -b 4096 on a file, blkid before and after, statfs, paths (real tools)', async (t) => {
  if (!requireTool(t, 'mkfs.ext4', 'e2fsprogs') || !requireTool(t, 'blkid', 'util-linux')) return;
  const directory = tempDirectory(t);
  const image = path.join(directory, 'volume.img');
  fs.writeFileSync(image, '');
  fs.truncateSync(image, 64 * 1024 * 1024);
  const host = new LinuxHostOperations();
  assert.equal(await host.filesystemType(image), undefined, 'an empty device has no filesystem');
  await host.makeFilesystem(image, 'ext4', ['-b', '4096', '-q']);
  assert.equal(await host.filesystemType(image), 'ext4');
  assert.equal(await host.deviceSizeBytes(image), 64 * 1024 * 1024);
  assert.equal(await host.pathKind(image), 'file');
  const stats = await host.statFilesystem(directory);
  assert.ok(stats.totalBytes > 0 && stats.availableBytes <= stats.totalBytes && stats.totalInodes > 0);
  await assert.rejects(
    host.makeFilesystem(path.join(directory, 'missing.img'), 'ext4', ['-q']),
    (error: unknown) => isHornbillError(error, 'CSI_HOST_COMMAND_FAILED'),
  );
  const target = path.join(directory, 'a', 'b', 'pod-1');
  await host.makeFile(target);
  assert.equal(await host.pathKind(target), 'file');
  await host.removePath(target);
  await host.removePath(target);
  assert.equal(await host.pathKind(target), undefined);
  assert.ok((await host.mounts()).some((entry) => entry.mountPoint === '/'));
});

function stubTool(directory: string, name: string, script: string): void {
  fs.writeFileSync(path.join(directory, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
}

test('LinuxHostOperations with stand-in iscsiadm scripts: sessions, no sessions, login failure, timeout, missing tool', async (t) => {
  const directory = tempDirectory(t);
  const bin = path.join(directory, 'bin');
  fs.mkdirSync(bin);
  const searchPath = [bin, '/usr/bin', '/bin'];
  const host = new LinuxHostOperations({ searchPath, commandTimeoutMs: 2000 });
  const fixtures = new URL('./fixtures/', import.meta.url).pathname;

  stubTool(bin, 'iscsiadm', `cat ${fixtures}iscsiadm-session-p3.txt`);
  assert.equal((await host.iscsiSessions()).length, 2);
  stubTool(bin, 'iscsiadm', `cat ${fixtures}iscsiadm-no-sessions.txt >&2; exit 21`);
  assert.deepEqual(await host.iscsiSessions(), []);
  await host.iscsiLogout({ iqn: 'iqn.2026-11.io.hornbill:pvc-1' });

  const target = { host: '10.0.0.11', port: 3260, iqn: 'iqn.2026-11.io.hornbill:pvc-1', lun: 0 };
  stubTool(
    bin,
    'iscsiadm',
    `case "$*" in *discovery*) echo "10.0.0.11:3260,1 iqn.2026-11.io.hornbill:pvc-1";; *) cat ${fixtures}iscsiadm-login-timeout.txt >&2; exit 8;; esac`,
  );
  await assert.rejects(host.iscsiLogin(target), (error: unknown) => {
    assert.ok(isHornbillError(error, 'CSI_ISCSI_LOGIN_FAILED'));
    assert.equal(error.details.iscsiError, 'ISCSI_ERR_TRANS_TIMEOUT');
    assert.equal(error.details.initiatorError, 8);
    return true;
  });
  stubTool(bin, 'iscsiadm', `cat ${fixtures}iscsiadm-discovery-no-driver.txt >&2; exit 12`);
  await assert.rejects(host.iscsiLogin(target), (error: unknown) => {
    assert.ok(isHornbillError(error, 'CSI_HOST_TOOL_MISSING'));
    assert.match(error.message, /Fix: the iscsi_tcp kernel module is not loaded/);
    return true;
  });
  // A session that is there already (ISCSI_ERR_SESS_EXISTS) is a successful login.
  stubTool(
    bin,
    'iscsiadm',
    'case "$*" in *discovery*) exit 0;; *) echo "iscsiadm: default: 1 session requested, but 1 already present." >&2; exit 15;; esac',
  );
  await host.iscsiLogin(target);
  stubTool(bin, 'iscsiadm', 'sleep 10');
  const quick = new LinuxHostOperations({ searchPath, commandTimeoutMs: 200 });
  await assert.rejects(quick.iscsiSessions(), (error: unknown) =>
    isHornbillError(error, 'CSI_HOST_COMMAND_TIMEOUT'),
  );
  const empty = new LinuxHostOperations({ searchPath: [path.join(directory, 'none')] });
  await assert.rejects(empty.iscsiSessions(), (error: unknown) =>
    isHornbillError(error, 'CSI_HOST_TOOL_MISSING'),
  );
  const report = await empty.checkTools();
  assert.equal(report.tools.iscsiadm, false);
  assert.equal(typeof report.multipathdRunning, 'boolean');
  assert.equal(await host.findDevice(target, 50), undefined);
});
