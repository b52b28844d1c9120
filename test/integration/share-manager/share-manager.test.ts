/**
 * The real share manager (`hornbill share-manager`, real nfs-ganesha) exporting a temporary
 * folder on a random loopback address, with real userspace NFS clients from libnfs-utils:
 * two clients share files; a killed ganesha is restarted and the clients carry on; SIGTERM
 * stops everything cleanly and releases the lease. libnfs speaks NFSv4.0 only, so these
 * share managers allow minor version 0 (`--nfs-options min-version=4.0`); failover.test.ts
 * checks the default (4.1 and up) refuses it.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { startHornbill } from '../../helpers/processes.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import {
  eventually,
  health,
  isAlive,
  liveGaneshaFor,
  loopbackEndpoint,
  nfsCopy,
  nfsList,
  nfsRead,
  nfsUrl,
  requireShareTools,
  waitFor,
} from './nfs-helpers.ts';

async function startShareManager(t: TestContext, volume: string, extra: string[] = []) {
  const root = tempDirectory(t, 'hornbill-share-');
  const exportDirectory = path.join(root, 'export');
  const stateDirectory = path.join(root, 'state');
  fs.mkdirSync(exportDirectory);
  const { address, port } = await loopbackEndpoint();
  const startedMs = Date.now();
  const process = await startHornbill(t, [
    'share-manager',
    ...['--volume', volume, '--address', address, '--port', String(port)],
    ...['--state-dir', stateDirectory, '--export-dir', exportDirectory],
    ...['--nfs-options', 'min-version=4.0', '--lease-duration', '3s'],
    ...extra,
  ]);
  const readyMs = Date.now() - startedMs;
  return { process, root, exportDirectory, stateDirectory, address, port, readyMs };
}

describe('hornbill share-manager', () => {
  it('serves two clients that read and write the same export', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startShareManager(t, 'vol-shared');
    const { ready } = share.process;
    assert.equal(ready.role, 'share-manager');
    assert.equal(ready.endpoint, `nfs://${share.address}:${share.port}/vol-shared`);
    t.diagnostic(
      `ganesha start-to-ready ${ready.startToReadyMs} ms; command start to ready line ${share.readyMs} ms`,
    );
    const url = (name: string) => nfsUrl(share.address, share.port, `/vol-shared/${name}`);
    const local = (name: string, text: string) => {
      const file = path.join(share.root, name);
      fs.writeFileSync(file, text);
      return file;
    };
    // Two clients at once, each writing its own file, then each reading the other's.
    const written = { 'from-a.txt': `client a ${Date.now()}\n`, 'from-b.txt': `client b ${Math.random()}\n` };
    await Promise.all(
      Object.entries(written).map(([name, text]) => nfsCopy(local(`local-${name}`, text), url(name))),
    );
    const [readByA, readByB] = await Promise.all([nfsRead(url('from-b.txt')), nfsRead(url('from-a.txt'))]);
    assert.equal(readByA, written['from-b.txt']);
    assert.equal(readByB, written['from-a.txt']);
    // What the clients wrote is in the exported folder, and each client lists both files.
    for (const [name, text] of Object.entries(written))
      assert.equal(fs.readFileSync(path.join(share.exportDirectory, name), 'utf8'), text);
    const listing = await nfsList(nfsUrl(share.address, share.port, '/vol-shared'));
    assert.equal(listing.code, 0, listing.stderr);
    assert.match(listing.stdout, /from-a\.txt/);
    assert.match(listing.stdout, /from-b\.txt/);
    // A file written on the server side is seen by a client (one export, one truth).
    fs.writeFileSync(path.join(share.exportDirectory, 'server-side.txt'), 'written in the folder\n');
    assert.equal(await nfsRead(url('server-side.txt')), 'written in the folder\n');
    const status = await health(ready.health);
    assert.equal(status.status, 200);
    assert.equal(status.body.state, 'running');
    await share.process.stop();
  });

  it('restarts a ganesha that dies, and the clients carry on', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startShareManager(t, 'vol-restart');
    const url = (name: string) => nfsUrl(share.address, share.port, `/vol-restart/${name}`);
    const before = path.join(share.root, 'before.txt');
    fs.writeFileSync(before, 'before the crash\n');
    await nfsCopy(before, url('before.txt'));
    const firstPid = share.process.ready.nfsPid as number;
    assert.ok(isAlive(firstPid));
    process.kill(firstPid, 'SIGKILL');
    const killedMs = Date.now();
    const restarted = await eventually(async () => {
      const status = await health(share.process.ready.health);
      if (status.status !== 200 || status.body.nfsPid === firstPid)
        throw new Error(`not restarted: ${JSON.stringify(status.body)}`);
      return status.body;
    }, 15_000);
    t.diagnostic(
      `ganesha killed → serving again in ${Date.now() - killedMs} ms (back-off 500 ms + start-to-ready ${restarted.startToReadyMs} ms)`,
    );
    assert.deepEqual(restarted.nfs, { state: 'running', restarts: 1 });
    assert.ok(isAlive(restarted.nfsPid as number));
    assert.equal(await eventually(() => nfsRead(url('before.txt')), 10_000), 'before the crash\n');
    const after = path.join(share.root, 'after.txt');
    fs.writeFileSync(after, 'after the crash\n');
    await nfsCopy(after, url('after.txt'));
    assert.equal(await nfsRead(url('after.txt')), 'after the crash\n');
    assert.match(share.process.stderr(), /nfs server died unexpectedly; restarting after a back-off/);
    await share.process.stop();
  });

  it('kills and restarts a ganesha that hangs (stops answering the liveness probe)', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startShareManager(t, 'vol-hang', ['--liveness-interval', '300ms']);
    const hungPid = share.process.ready.nfsPid as number;
    process.kill(hungPid, 'SIGSTOP');
    const stoppedMs = Date.now();
    const restarted = await eventually(async () => {
      const status = await health(share.process.ready.health);
      if (status.status !== 200 || status.body.nfsPid === hungPid) throw new Error('not restarted yet');
      return status.body;
    }, 20_000);
    t.diagnostic(`hung ganesha detected, killed and serving again in ${Date.now() - stoppedMs} ms`);
    assert.ok(!isAlive(hungPid), 'the hung ganesha was killed');
    assert.deepEqual(restarted.nfs, { state: 'running', restarts: 1 });
    assert.match(share.process.stderr(), /ganesha stopped answering; killing it for a restart/);
    const listing = await nfsList(nfsUrl(share.address, share.port, '/vol-hang'));
    assert.equal(listing.code, 0, listing.stderr);
    await share.process.stop();
  });

  it('stops on SIGTERM: ganesha stopped, lease released, exit 0, and a waiting second one is refused meanwhile', async (t) => {
    if (!requireShareTools(t)) return;
    const share = await startShareManager(t, 'vol-stop');
    const configFile = path.join(share.stateDirectory, 'ganesha.conf');
    assert.deepEqual(liveGaneshaFor(configFile), [share.process.ready.nfsPid]);
    // Another share manager for the same volume (same lease file) cannot take over a live lease.
    const other = await loopbackEndpoint();
    await assert.rejects(
      startHornbill(t, [
        'share-manager',
        ...['--volume', 'vol-stop', '--address', other.address, '--port', String(other.port)],
        ...['--state-dir', path.join(share.root, 'state-2'), '--export-dir', share.exportDirectory],
        ...[
          '--lease-file',
          share.process.ready.leaseFile,
          '--lease-wait',
          '1s',
          '--lease-identity',
          'intruder',
        ],
      ]),
      /SHARE_MANAGER_LEASE_HELD/,
    );
    share.process.child.kill('SIGTERM');
    const exit = await share.process.exited;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.deepEqual(liveGaneshaFor(configFile), []);
    assert.ok(!isAlive(share.process.ready.nfsPid));
    const lease = JSON.parse(fs.readFileSync(share.process.ready.leaseFile, 'utf8'));
    assert.equal(lease.holderIdentity, '', 'the lease is released');
    assert.match(share.process.stderr(), /NFS EXIT: regular exit/, "ganesha's own log was forwarded");
    await waitFor(() => liveGaneshaFor(configFile).length === 0, 1_000, 'no ganesha left');
  });
});
