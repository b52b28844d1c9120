import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { IscsiInitiator } from '../../../../src/dataplane/iscsi/initiator/initiator.ts';
import { patternBytes, tempDirectory } from '../../../helpers/temp.ts';
import { requireTool } from '../../../helpers/tools.ts';

const IQN = 'iqn.2024-01.local.hornbill-test:tgt1';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return false;
}

/**
 * tgtd with one 32 MiB file LUN (LUN 1), as ../shared/peers/run-baselines.sh runs it: in a
 * private mount namespace whose /run is a temp folder, stopped by deleting the target.
 */
async function startTgtd(t: TestContext): Promise<{ port: number } | null> {
  if (!requireTool(t, 'tgtd', 'tgt') || !requireTool(t, 'tgtadm', 'tgt')) return null;
  if (!requireTool(t, 'unshare', 'util-linux') || !requireTool(t, 'nsenter', 'util-linux')) return null;
  const directory = tempDirectory(t, 'hornbill-tgtd-');
  const run = path.join(directory, 'run');
  fs.mkdirSync(run);
  const lun = path.join(directory, 'lun.img');
  fs.writeFileSync(lun, '');
  fs.truncateSync(lun, 32 * 1024 * 1024);
  const port = await freePort();
  const daemon: ChildProcess = spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount --bind '${run}' /run && exec tgtd -f --iscsi portal=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  const tgtadm = (...args: string[]) =>
    spawnSync('nsenter', ['-t', String(daemon.pid), '-m', 'tgtadm', ...args], { encoding: 'utf8' });
  t.after(async () => {
    tgtadm('--lld', 'iscsi', '--mode', 'target', '--op', 'delete', '--force', '--tid', '1');
    tgtadm('--op', 'delete', '--mode', 'system');
    const exited = new Promise((resolve) => daemon.once('exit', resolve));
    // With no target left tgtd honours SIGTERM; SIGKILL if it still lingers.
    daemon.kill('SIGTERM');
    const timer = setTimeout(() => daemon.kill('SIGKILL'), 1000);
    if (daemon.exitCode === null) await exited;
    clearTimeout(timer);
  });
  if (!(await waitForPort(port, 10000))) {
    if (process.env.HORNBILL_REQUIRE_TOOLS === '1') throw new Error('tgtd did not start');
    t.skip('tgtd did not start (it needs root for its private mount namespace)');
    return null;
  }
  for (const args of [
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'new', '--tid', '1', '--targetname', IQN],
    [
      '--lld',
      'iscsi',
      '--mode',
      'logicalunit',
      '--op',
      'new',
      '--tid',
      '1',
      '--lun',
      '1',
      '--bstype',
      'rdwr',
      '--backing-store',
      lun,
    ],
    ['--lld', 'iscsi', '--mode', 'target', '--op', 'bind', '--tid', '1', '--initiator-address', 'ALL'],
    // tgtd answers None unless its target allows CRC32C digests.
    [
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'update',
      '--tid',
      '1',
      '--name',
      'HeaderDigest',
      '--value',
      'CRC32C,None',
    ],
    [
      '--lld',
      'iscsi',
      '--mode',
      'target',
      '--op',
      'update',
      '--tid',
      '1',
      '--name',
      'DataDigest',
      '--value',
      'CRC32C,None',
    ],
  ]) {
    const result = tgtadm(...args);
    assert.equal(result.status, 0, `tgtadm ${args.join(' ')}: ${result.stderr}`);
  }
  return { port };
}

test('the initiator works against tgtd: discovery, R2T-solicited writes, pipelined reads, digests', async (t) => {
  const tgtd = await startTgtd(t);
  if (tgtd === null) return;
  const targets = await IscsiInitiator.discover({ host: '127.0.0.1', port: tgtd.port });
  assert.ok(targets.some((target) => target.targetName === IQN));
  for (const digests of [false, true]) {
    const initiator = await IscsiInitiator.connect({
      host: '127.0.0.1',
      port: tgtd.port,
      targetName: IQN,
      lun: 1,
      headerDigest: digests,
      dataDigest: digests,
      queueDepth: 16,
    });
    assert.equal(initiator.negotiated.headerDigest, digests);
    const capacity = await initiator.readCapacity16();
    assert.equal(capacity.blocks * capacity.blockBytes, 32 * 1024 * 1024);
    const written = new Map<number, Buffer>();
    await Promise.all(
      Array.from({ length: 32 }, (_, index) => {
        const data = patternBytes(index + (digests ? 100 : 0), (1 + (index % 8)) * 64 * 1024);
        const lba = index * 2048;
        written.set(lba, data);
        return initiator.write(lba, data, { cdb: index % 2 === 0 ? 10 : 16 });
      }),
    );
    await initiator.synchronizeCache();
    await Promise.all(
      [...written].map(async ([lba, data]) => {
        const back = Buffer.alloc(data.length);
        await initiator.read(lba, back, { cdb: 16 });
        assert.deepEqual(back, data);
      }),
    );
    const inquiry = await initiator.inquiry();
    assert.equal(inquiry[0] & 0x1f, 0, 'a direct-access device');
    await initiator.logout();
  }
});
