/**
 * The instance manager hosting a share manager, over its gRPC API, with real nfs-ganesha:
 * CreateShareManager spawns `hornbill share-manager` exporting `<disk>/share-exports/<volume>`
 * on a service address (any 127/8 address), two userspace NFS clients (libnfs-utils) write and
 * read each other's files; a share manager killed under the instance manager is reported as
 * `error` and StartShareManager brings it back; Create is idempotent; the instance manager's
 * SIGTERM stops its share managers (and their ganesha); share managers stay out of
 * ListInstances; a start that fails (a taken port) is `error` with the share manager's own
 * code. Needs root (ganesha's VFS backend) and nfs-ganesha, libnfs-utils, util-linux.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isHornbillError } from '../../../src/errors.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import {
  eventually,
  isAlive,
  loopbackEndpoint,
  nfsCopy,
  nfsList,
  nfsRead,
  nfsUrl,
  requireShareTools,
  waitFor,
} from '../share-manager/nfs-helpers.ts';
import { startInstanceManager } from './fixture.ts';

describe('instance manager: share managers', () => {
  it('hosts a share manager: create, two clients, failure reported, restart, stop with the instance manager', {
    timeout: 120_000,
  }, async (t) => {
    if (!requireShareTools(t)) return;
    const root = tempDirectory(t, 'hornbill-im-share-');
    const disk = path.join(root, 'disk');
    fs.mkdirSync(disk);
    const node = await loopbackEndpoint();
    const service = await loopbackEndpoint();
    const im = await startInstanceManager(t, { node: 'node-1', address: node.address, disk });
    const request = {
      name: 'share-manager-vol1',
      volume_name: 'vol1',
      address: service.address,
      port: service.port,
      nfs_options: 'min-version=4.0',
      lease_file: path.join(root, 'leases', 'vol1.json'),
      lease_duration_seconds: 3,
    };
    const created = await im.client.call('CreateShareManager', request);
    assert.equal(created.state, 'running');
    assert.equal(created.kind, 'share-manager');
    assert.equal(created.source, 'directory');
    assert.equal(created.endpoint, `nfs://${service.address}:${service.port}/vol1`);
    assert.equal(created.export_path, path.join(disk, 'share-exports', 'vol1'));
    assert.ok(created.pid > 0 && created.nfs_pid > 0);
    t.diagnostic(`share manager ready: ganesha start → export answers ${created.start_to_ready_ms} ms`);

    // Idempotent create; another spec for the same name is ALREADY_EXISTS.
    const again = await im.client.call('CreateShareManager', request);
    assert.equal(again.pid, created.pid);
    await assert.rejects(
      im.client.call('CreateShareManager', { ...request, port: service.port + 1 }),
      (error) => isHornbillError(error, 'INSTANCE_EXISTS'),
    );
    // Not an engine or a replica: ListInstances does not show it.
    assert.deepEqual((await im.client.call('ListInstances', {})).instances ?? [], []);
    const listed = await im.client.call('ListShareManagers', {});
    assert.equal(listed.share_managers.length, 1);
    assert.equal(listed.can_attach_devices, false);
    // A device source on a node without --attach-devices is refused.
    await assert.rejects(
      im.client.call('CreateShareManager', {
        ...request,
        name: 'share-manager-vol2',
        volume_name: 'vol2',
        port: service.port + 2,
        source: 'device',
        device_endpoint: `iscsi://${node.address}:3260/iqn.2026-11.io.hornbill:vol2/0`,
      }),
      (error) => isHornbillError(error, 'SHARE_MANAGER_DEVICE_UNAVAILABLE'),
    );

    // Two clients: each nfs-cp / nfs-cat is its own NFS client.
    const one = path.join(root, 'one.txt');
    const two = path.join(root, 'two.txt');
    fs.writeFileSync(one, 'written by client one\n');
    fs.writeFileSync(two, 'written by client two\n');
    await nfsCopy(one, nfsUrl(service.address, service.port, '/vol1/one.txt'));
    await nfsCopy(two, nfsUrl(service.address, service.port, '/vol1/two.txt'));
    assert.equal(
      await nfsRead(nfsUrl(service.address, service.port, '/vol1/one.txt')),
      'written by client one\n',
    );
    assert.equal(
      await nfsRead(nfsUrl(service.address, service.port, '/vol1/two.txt')),
      'written by client two\n',
    );
    assert.equal(
      fs.readFileSync(path.join(created.export_path, 'two.txt'), 'utf8'),
      'written by client two\n',
    );

    // Killed behind the instance manager's back: reported as error, started again on request.
    process.kill(created.pid, 'SIGKILL');
    await eventually(async () => {
      const seen = await im.client.call('GetShareManager', { name: request.name });
      assert.equal(seen.state, 'error');
      assert.match(seen.error_message, /exited/);
    }, 10_000);
    await waitFor(() => !isAlive(created.nfs_pid), 5_000, 'ganesha gone with its share manager');
    const restarted = await im.client.call('StartShareManager', { name: request.name });
    assert.equal(restarted.state, 'running');
    assert.equal(restarted.restart_count, 1);
    assert.equal(
      await nfsRead(nfsUrl(service.address, service.port, '/vol1/one.txt')),
      'written by client one\n',
    );

    // A start that fails reports the share manager's own error code.
    const taken = await loopbackEndpoint();
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen({ host: taken.address, port: taken.port }, resolve));
    t.after(() => blocker.close());
    await assert.rejects(
      im.client.call('CreateShareManager', {
        ...request,
        name: 'share-manager-busy',
        volume_name: 'busy',
        address: taken.address,
        port: taken.port,
        lease_file: path.join(root, 'leases', 'busy.json'),
      }),
      (error) => isHornbillError(error, 'INSTANCE_FAILED'),
    );
    const busy = await im.client.call('GetShareManager', { name: 'share-manager-busy' });
    assert.equal(busy.state, 'error');
    assert.equal(busy.error_code, 'SHARE_MANAGER_PORT_IN_USE');

    // SIGTERM of the instance manager stops its share managers.
    await im.process.stop();
    await waitFor(
      () => !isAlive(restarted.pid) && !isAlive(restarted.nfs_pid),
      15_000,
      'share manager stopped',
    );
    assert.notEqual((await nfsList(nfsUrl(service.address, service.port, '/vol1'))).code, 0);
  });
});
