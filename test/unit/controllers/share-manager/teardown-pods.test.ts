/**
 * A share manager that ran as a Pod leaves its state folder on its node (the Pod mounts the
 * node's disk). When its volume is deleted, teardown asks that node's instance manager to
 * remove the volume's share folders (DeleteShareManager with remove_data and volume_name),
 * and the instance manager does so although it never hosted that share manager; other
 * volumes' folders stay. A volume that only stopped being rwx keeps them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { ShareManagerHosting } from '../../../../src/controllers/share-manager/hosting.ts';
import { tearDown } from '../../../../src/controllers/share-manager/teardown.ts';
import type { ShareManagerWorld } from '../../../../src/controllers/share-manager/world.ts';
import type { InstanceManagerClient } from '../../../../src/dataplane/instance-manager/grpc-client.ts';
import { ShareManagerHost } from '../../../../src/dataplane/instance-manager/share-manager-host.ts';
import {
  shareExportDirectory,
  shareStateDirectory,
} from '../../../../src/dataplane/instance-manager/share-manager-spec.ts';
import { openEmbeddedStore } from '../../../../src/resources/store/embedded.ts';
import { tempDirectory } from '../../../helpers/temp.ts';
import { namespace } from './fixtures.ts';

test('teardown of a Pod-hosted share manager removes its folders on the node through the instance manager', async (t) => {
  const directory = tempDirectory(t, 'hornbill-sm-teardown-');
  const disk = path.join(directory, 'disk');
  const host = new ShareManagerHost({ nodeName: 'node-1', disks: [disk] });
  for (const volume of ['vol', 'other']) {
    fs.mkdirSync(path.join(shareStateDirectory(disk, volume), 'ganesha'), { recursive: true });
    fs.mkdirSync(shareExportDirectory(disk, volume), { recursive: true });
  }
  const calls: Record<string, unknown>[] = [];
  // The instance manager's DeleteShareManager handler, called in-process.
  const client = {
    call: async (method: string, request: Record<string, unknown>) => {
      assert.equal(method, 'DeleteShareManager');
      calls.push(request);
      const result = await host.delete(request.name, request.remove_data === true, request.volume_name);
      return { found: result.found, data_removed: result.dataRemoved };
    },
  } as unknown as InstanceManagerClient;
  const stopped: string[] = [];
  const hosting = {
    mode: 'pod',
    probe: async () => ({ reachable: true, canAttachDevices: true }),
    start: async () => ({}),
    stop: async (volume: string, node: string) => {
      stopped.push(`${volume}@${node}`);
    },
  } as unknown as ShareManagerHosting;
  const store = await openEmbeddedStore({ directory: path.join(directory, 'state') });
  t.after(() => store.close());
  const world = {
    store,
    namespace,
    hosting,
    instanceManagerClient: (node: string) => (node === 'node-1' ? client : undefined),
    services: { remove: async () => {} },
    removeLease: async () => {},
    forget: () => {},
    event: async () => {},
  } as unknown as ShareManagerWorld;
  const create = () =>
    store
      .create({ kind: 'ShareManager', metadata: { name: 'vol', namespace }, spec: { volumeName: 'vol' } })
      .then((created) => store.updateStatus({ ...created, status: { nodeID: 'node-1' } }));
  const volume = await store.create({
    kind: 'Volume',
    metadata: { name: 'vol', namespace },
    spec: { size: '16Mi', accessMode: 'rwo' },
  });

  // No longer rwx: the Pod goes, the folders stay (the volume still exists).
  await tearDown(world, await create(), volume);
  assert.deepEqual(stopped, ['vol@node-1']);
  assert.deepEqual(calls, []);
  assert.ok(fs.existsSync(shareStateDirectory(disk, 'vol')));

  // The volume is gone: the node's instance manager removes vol's folders, not other's.
  await tearDown(world, await create(), undefined);
  assert.deepEqual(calls, [{ name: 'share-manager-vol', remove_data: true, volume_name: 'vol' }]);
  assert.equal(fs.existsSync(shareStateDirectory(disk, 'vol')), false);
  assert.equal(fs.existsSync(shareExportDirectory(disk, 'vol')), false);
  assert.ok(fs.existsSync(shareStateDirectory(disk, 'other')));
  assert.ok(fs.existsSync(shareExportDirectory(disk, 'other')));
  // Without volume_name nothing is removed for a share manager that is not hosted here.
  assert.deepEqual(await host.delete('share-manager-other', true), { found: false, dataRemoved: false });
  assert.ok(fs.existsSync(shareStateDirectory(disk, 'other')));
});
