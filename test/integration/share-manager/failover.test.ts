/**
 * The share manager's failure paths with real nfs-ganesha: a share manager killed with
 * SIGKILL takes its ganesha with it and a second one takes the export over once the lease
 * expires (the failover pieces timed); a ganesha that keeps dying makes the share manager
 * give up with SHARE_MANAGER_NFS_FAILED; a taken port is SHARE_MANAGER_PORT_IN_USE; and the
 * default configuration serves NFSv4.1+ only, refusing libnfs's NFSv4.0.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  breakExpiredLease,
  FileLeaseClient,
  type LeaseObservation,
  leaseExpiry,
  observe,
} from '../../../src/share-manager/lease.ts';
import { probeNfsNull } from '../../../src/share-manager/nfs-probe.ts';
import { startHornbill } from '../../helpers/processes.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';
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

function shareArguments(options: {
  volume: string;
  address: string;
  port: number;
  stateDirectory: string;
  exportDirectory: string;
  extra?: string[];
}): string[] {
  return [
    'share-manager',
    ...['--volume', options.volume, '--address', options.address, '--port', String(options.port)],
    ...['--state-dir', options.stateDirectory, '--export-dir', options.exportDirectory],
    ...(options.extra ?? []),
  ];
}

function folders(t: TestContext) {
  const root = tempDirectory(t, 'hornbill-share-');
  const exportDirectory = path.join(root, 'export');
  fs.mkdirSync(exportDirectory);
  return { root, exportDirectory };
}

describe('share manager failover', () => {
  it('takes ganesha down with it on SIGKILL; the lease expires and a replacement serves the data', async (t) => {
    if (!requireShareTools(t)) return;
    const { root, exportDirectory } = folders(t);
    const { address, port } = await loopbackEndpoint();
    const leaseFile = path.join(root, 'lease.json');
    const common = { volume: 'vol-move', address, port, exportDirectory };
    const leaseFlags = [
      '--lease-file',
      leaseFile,
      '--lease-duration',
      '3s',
      '--nfs-options',
      'min-version=4.0',
    ];
    const first = await startHornbill(
      t,
      shareArguments({
        ...common,
        stateDirectory: path.join(root, 'node-1'),
        extra: [...leaseFlags, '--lease-identity', 'node-1'],
      }),
    );
    const written = path.join(root, 'local.txt');
    fs.writeFileSync(written, 'written through node-1\n');
    await nfsCopy(written, nfsUrl(address, port, '/vol-move/data.txt'));
    const ganesha = first.ready.nfsPid as number;
    const configFile = path.join(root, 'node-1', 'ganesha.conf');
    assert.deepEqual(liveGaneshaFor(configFile), [ganesha]);

    const killedMs = Date.now();
    first.child.kill('SIGKILL');
    const ganeshaGoneMs = await waitFor(
      () => !isAlive(ganesha),
      3_000,
      'ganesha dies with its share manager',
    );
    assert.deepEqual(liveGaneshaFor(configFile), []);
    assert.equal(
      JSON.parse(fs.readFileSync(leaseFile, 'utf8')).holderIdentity,
      'node-1',
      'a killed holder cannot release',
    );

    // What the ShareManager controller does: poll the lease; once it has not changed for a
    // whole lease duration by the controller's clock, break it and start a replacement.
    const leaseClient = new FileLeaseClient(leaseFile);
    let seen: LeaseObservation | undefined;
    for (;;) {
      const record = await leaseClient.get();
      assert.ok(record);
      seen = observe(seen, record, Date.now());
      if (leaseExpiry(seen, Date.now()).expired && (await breakExpiredLease(leaseClient, seen, Date.now())))
        break;
      await sleep(200);
    }
    const expiredMs = Date.now() - killedMs;
    const second = await startHornbill(
      t,
      shareArguments({
        ...common,
        stateDirectory: path.join(root, 'node-2'),
        extra: [...leaseFlags, '--lease-identity', 'node-2'],
      }),
    );
    const failoverMs = Date.now() - killedMs;
    t.diagnostic(
      `SIGKILL → ganesha gone ${ganeshaGoneMs} ms; → lease expired (3 s lease) ${expiredMs} ms; ` +
        `→ replacement ready ${failoverMs} ms (its ganesha start-to-ready ${second.ready.startToReadyMs} ms)`,
    );
    assert.ok(expiredMs >= 3_000, 'the lease was held for its whole duration');
    const lease = JSON.parse(fs.readFileSync(leaseFile, 'utf8'));
    assert.equal(lease.holderIdentity, 'node-2');
    assert.equal(lease.leaseTransitions, 1);
    // Clients re-mount at the same address and find the data.
    assert.equal(
      await eventually(() => nfsRead(nfsUrl(address, port, '/vol-move/data.txt')), 10_000),
      'written through node-1\n',
    );
    await second.stop();
  });

  it('gives up with SHARE_MANAGER_NFS_FAILED when ganesha keeps dying, leaving none behind', async (t) => {
    if (!requireShareTools(t)) return;
    const { root, exportDirectory } = folders(t);
    const { address, port } = await loopbackEndpoint();
    const share = await startHornbill(
      t,
      shareArguments({
        volume: 'vol-crash',
        address,
        port,
        stateDirectory: path.join(root, 'state'),
        exportDirectory,
      }),
    );
    const configFile = path.join(root, 'state', 'ganesha.conf');
    const killed = new Set<number>();
    const exit = await new Promise<{ code: number | null }>((resolve) => {
      share.exited.then(resolve);
      const timer = setInterval(() => {
        for (const pid of liveGaneshaFor(configFile)) {
          if (killed.has(pid)) continue;
          killed.add(pid);
          process.kill(pid, 'SIGKILL');
        }
      }, 50);
      share.exited.then(() => clearInterval(timer));
    });
    assert.equal(exit.code, 1);
    assert.equal(killed.size, 5, 'the first run and four restarts');
    assert.match(share.stderr(), /SHARE_MANAGER_NFS_FAILED/);
    assert.deepEqual(liveGaneshaFor(configFile), []);
    assert.equal(
      JSON.parse(fs.readFileSync(share.ready.leaseFile, 'utf8')).holderIdentity,
      '',
      'lease released',
    );
  });

  it('refuses a port that is taken, with SHARE_MANAGER_PORT_IN_USE', async (t) => {
    if (!requireShareTools(t)) return;
    const { root, exportDirectory } = folders(t);
    const { address, port } = await loopbackEndpoint();
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(port, address, resolve));
    defer(t, () => squatter.close());
    await assert.rejects(
      startHornbill(
        t,
        shareArguments({
          volume: 'vol-port',
          address,
          port,
          stateDirectory: path.join(root, 'state'),
          exportDirectory,
        }),
      ),
      /SHARE_MANAGER_PORT_IN_USE/,
    );
    assert.deepEqual(liveGaneshaFor(path.join(root, 'state', 'ganesha.conf')), []);
  });

  it('serves NFSv4.1 and up by default: the NULL probe answers, an NFSv4.0 client is refused', async (t) => {
    if (!requireShareTools(t)) return;
    const { root, exportDirectory } = folders(t);
    const { address, port } = await loopbackEndpoint();
    const share = await startHornbill(
      t,
      shareArguments({
        volume: 'vol-v41',
        address,
        port,
        stateDirectory: path.join(root, 'state'),
        exportDirectory,
      }),
    );
    assert.equal(await probeNfsNull(address, port), undefined);
    const listing = await nfsList(nfsUrl(address, port, '/vol-v41'));
    assert.notEqual(listing.code, 0);
    assert.match(listing.stderr, /MINOR_VERS_MISMATCH/);
    const status = await health(share.ready.health);
    assert.equal(status.body.healthy, true);
    await share.stop();
  });
});
