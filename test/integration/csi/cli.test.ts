/**
 * `hornbill csi` as a process: flags checked, the socket served, the ready line with the
 * host conditions, GetPluginInfo and a CreateVolume over the socket, a clean stop on SIGTERM.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parseCsiFlags } from '../../../src/cli/csi.ts';
import { CsiClient } from '../../../src/csi/client.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { tempDirectory } from '../../helpers/temp.ts';

const HORNBILL = new URL('../../../bin/hornbill.mjs', import.meta.url).pathname;

test('parseCsiFlags: defaults, stores, refusals', () => {
  const flags = parseCsiFlags(['--endpoint', 'unix:///csi/csi.sock', '--mode', 'node'], {
    NODE_ID: 'node-7',
  });
  assert.deepEqual(
    [flags.nodeId, flags.mode, flags.store, flags.attachWaitMs, flags.hostNamespaces],
    ['node-7', 'node', undefined, 60_000, false],
  );
  assert.deepEqual(
    parseCsiFlags(['--endpoint', 'unix:///a.sock', '--store', 'http://10.0.0.1:9500/', '--node-id', 'n'])
      .store,
    { backend: 'http', url: 'http://10.0.0.1:9500' },
  );
  assert.equal(
    parseCsiFlags(['--endpoint', 'unix:///a.sock', '--store', 'kubernetes', '--node-id', 'n']).store?.backend,
    'kubernetes',
  );
  for (const argv of [
    ['--endpoint', 'tcp://1.2.3.4:5'],
    ['--endpoint', 'unix:///a.sock', '--mode', 'controller', '--node-id', 'n'],
    ['--endpoint', 'unix:///a.sock', '--mode', 'both', '--node-id', 'n'],
    ['--endpoint', 'unix:///a.sock', '--store', 'ftp://x', '--node-id', 'n'],
    ['--endpoint', 'unix:///a.sock', '--node-id', 'Not_A_Node'],
    ['--endpoint', 'unix:///a.sock', '--bogus'],
  ])
    assert.throws(
      () => parseCsiFlags(argv, {}),
      (error: unknown) => isHornbillError(error, 'CLI_USAGE'),
      argv.join(' '),
    );
});

test('hornbill csi serves the socket until SIGTERM', { timeout: 60_000 }, async (t) => {
  const directory = tempDirectory(t, 'hornbill-csi-cli-');
  const socket = path.join(directory, 'csi.sock');
  const child = spawn(
    process.execPath,
    [
      HORNBILL,
      'csi',
      '--endpoint',
      `unix://${socket}`,
      '--node-id',
      'node-1',
      '--mode',
      'all',
      '--store',
      `embedded:${path.join(directory, 'state')}`,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const ready = JSON.parse(line.toString('utf8').split('\n')[0]);
  assert.equal(ready.ready, true, stderr);
  assert.equal(ready.role, 'csi');
  assert.equal(ready.driver, 'driver.hornbill.io');
  assert.deepEqual(
    ready.hostConditions.map((condition: { type: string }) => condition.type),
    ['RequiredPackages', 'NFSClientInstalled', 'Multipathd'],
  );
  const csi = new CsiClient(`unix://${socket}`);
  try {
    const info = await csi.call('Identity', 'GetPluginInfo');
    assert.equal(info.name, 'driver.hornbill.io');
    const { volume } = await csi.call('Controller', 'CreateVolume', {
      name: 'pvc-cli',
      volume_capabilities: [{ block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }],
    });
    assert.equal(volume.volume_id, 'pvc-cli');
  } finally {
    csi.close();
  }
  child.kill('SIGTERM');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0, stderr);
  assert.equal(fs.existsSync(socket), false, 'the socket is removed');
});
