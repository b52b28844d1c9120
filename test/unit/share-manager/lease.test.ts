/**
 * The file lease: conditional writes (one of several racing writers wins), invalid files,
 * expiry as the controller computes it, the health gate, and a LeaderElector campaigning on
 * it (take-over after expiry, with real time scaled down).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isHornbillError } from '../../../src/errors.ts';
import { LeaderElector } from '../../../src/resources/leader-election.ts';
import {
  breakExpiredLease,
  FileLeaseClient,
  healthGatedLease,
  type LeaseRecord,
  leaseExpiresAtByRenewTime,
  leaseExpiry,
  observe,
} from '../../../src/share-manager/lease.ts';
import { tempDirectory } from '../../helpers/temp.ts';

const SPEC = { holderIdentity: 'node-a', leaseDurationSeconds: 15, leaseTransitions: 0, renewTimeMs: 1_000 };

describe('FileLeaseClient', () => {
  it('creates once, updates only from the version read', async (t) => {
    const lease = new FileLeaseClient(path.join(tempDirectory(t), 'sub', 'lease.json'));
    assert.equal(await lease.get(), undefined);
    const created = await lease.create(SPEC);
    await assert.rejects(lease.create(SPEC), (error) => isHornbillError(error, 'RESOURCE_ALREADY_EXISTS'));
    const renewed = await lease.update({ ...created, renewTimeMs: 2_000 });
    assert.notEqual(renewed.resourceVersion, created.resourceVersion);
    assert.deepEqual(await lease.get(), renewed);
    await assert.rejects(lease.update({ ...created, holderIdentity: 'node-b' }), (error) =>
      isHornbillError(error, 'RESOURCE_CONFLICT'),
    );
    assert.equal((await lease.get())?.holderIdentity, 'node-a');
  });

  it('lets exactly one of racing take-overs win', async (t) => {
    const file = path.join(tempDirectory(t), 'lease.json');
    const first = await new FileLeaseClient(file).create(SPEC);
    const outcomes = await Promise.allSettled(
      ['b', 'c', 'd', 'e', 'f', 'g'].map((name) =>
        new FileLeaseClient(file).update({ ...first, holderIdentity: `node-${name}` }),
      ),
    );
    const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    assert.equal(winners.length, 1);
    const holder = (winners[0] as PromiseFulfilledResult<LeaseRecord>).value.holderIdentity;
    assert.equal((await new FileLeaseClient(file).get())?.holderIdentity, holder);
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['lease.json'], 'no lock or temporary file left');
  });

  it('refuses a file that is not a lease record', async (t) => {
    const file = path.join(tempDirectory(t), 'lease.json');
    for (const text of ['not json', '{"holderIdentity": 3}', 'null']) {
      fs.writeFileSync(file, text);
      await assert.rejects(new FileLeaseClient(file).get(), (error) =>
        isHornbillError(error, 'SHARE_MANAGER_LEASE_INVALID'),
      );
    }
  });
});

describe('lease expiry', () => {
  const record: LeaseRecord = { ...SPEC, resourceVersion: '7' };

  it('counts the duration from when the observer first saw the version', () => {
    let seen = observe(undefined, record, 100_000);
    seen = observe(seen, record, 110_000);
    assert.deepEqual(leaseExpiry(seen, 110_000), {
      expired: false,
      expiresAtMs: 115_000,
      remainingMs: 5_000,
      holder: 'node-a',
    });
    assert.equal(leaseExpiry(seen, 115_000).expired, true);
    const renewed = observe(seen, { ...record, resourceVersion: '8' }, 114_000);
    assert.equal(leaseExpiry(renewed, 115_000).expired, false);
  });

  it('treats a released lease as expired at once, and offers the renewTime reading', () => {
    const released = observe(undefined, { ...record, holderIdentity: '' }, 100_000);
    assert.equal(leaseExpiry(released, 100_000).expired, true);
    assert.equal(leaseExpiresAtByRenewTime(record), 16_000);
    assert.equal(leaseExpiresAtByRenewTime({ ...record, holderIdentity: '' }), 0);
  });

  it('breaks an expired lease only from the version observed', async (t) => {
    const lease = new FileLeaseClient(path.join(tempDirectory(t), 'lease.json'));
    const created = await lease.create(SPEC);
    const seen = observe(undefined, created, 100_000);
    assert.equal(await breakExpiredLease(lease, seen, 110_000), false, 'not expired yet');
    const renewed = await lease.update({ ...created, renewTimeMs: 2_000 });
    assert.equal(await breakExpiredLease(lease, seen, 120_000), false, 'the holder renewed meanwhile');
    assert.equal((await lease.get())?.holderIdentity, 'node-a');
    assert.equal(await breakExpiredLease(lease, observe(seen, renewed, 120_000), 135_000), true);
    assert.equal((await lease.get())?.holderIdentity, '');
  });

  it('renews only while healthy, but always lets a release through', async (t) => {
    let healthy = true;
    const lease = healthGatedLease(
      new FileLeaseClient(path.join(tempDirectory(t), 'lease.json')),
      () => healthy,
    );
    const created = await lease.create(SPEC);
    healthy = false;
    await assert.rejects(lease.update(created), (error) =>
      isHornbillError(error, 'SHARE_MANAGER_NFS_FAILED'),
    );
    const released = await lease.update({ ...created, holderIdentity: '' });
    assert.equal(released.holderIdentity, '');
  });
});

describe('LeaderElector on a FileLeaseClient', () => {
  it('hands the lease to a second share manager once the first stops renewing', async (t) => {
    const file = path.join(tempDirectory(t), 'lease.json');
    const timing = { leaseDurationMs: 1_000, renewPeriodMs: 200, renewDeadlineMs: 600, retryPeriodMs: 100 };
    let firstHealthy = true;
    const leading: string[] = [];
    const elector = (identity: string, healthy: () => boolean) =>
      new LeaderElector({
        lease: healthGatedLease(new FileLeaseClient(file), healthy),
        identity,
        timing,
        onStartedLeading: () => {
          leading.push(`${identity} started`);
        },
        onStoppedLeading: () => {
          leading.push(`${identity} stopped`);
        },
      });
    const first = elector('node-a', () => firstHealthy);
    const second = elector('node-b', () => true);
    t.after(async () => {
      await first.stop();
      await second.stop();
    });
    first.start();
    await sleep(300);
    second.start();
    await sleep(1_200);
    assert.deepEqual(leading, ['node-a started'], 'a renewed lease is not taken over');
    firstHealthy = false;
    const unhealthyAt = Date.now();
    while (!second.isLeader && Date.now() - unhealthyAt < 5_000) await sleep(50);
    assert.ok(second.isLeader, 'the second share manager took the lease over');
    assert.ok(!first.isLeader);
    assert.deepEqual(leading, ['node-a started', 'node-a stopped', 'node-b started']);
    const record = await new FileLeaseClient(file).get();
    assert.equal(record?.holderIdentity, 'node-b');
    assert.equal(record?.leaseTransitions, 1);
  });
});
