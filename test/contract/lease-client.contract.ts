/**
 * The contract of a share manager's lease client (`DeletableLeaseClient`), which the share
 * manager campaigns through and the ShareManager controller reads, breaks and deletes:
 * get of a missing lease is undefined; create fails with RESOURCE_ALREADY_EXISTS on an
 * existing one; update is conditional on the resourceVersion read (RESOURCE_CONFLICT
 * otherwise, RESOURCE_NOT_FOUND when gone) and returns a new one; times keep millisecond
 * precision; delete removes it and ignores a lease already gone; and the controller's break
 * of an expired lease loses to a holder that renewed meanwhile.
 *
 * Run against FileLeaseClient and the Lease stand-in (test/unit/share-manager/lease-backends.test.ts)
 * and against a real API server (test/contract/kubernetes.test.ts, with KUBECONFIG).
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type { DeletableLeaseClient } from '../../src/resources/leader-election.ts';
import { breakExpiredLease, observe } from '../../src/share-manager/index.ts';
import { expectCode } from './resource-store.contract.ts';

/** A fresh lease client per name, for one test (clean-up registered on `t`). */
export type LeaseClientFactory = (t: TestContext) => Promise<(name: string) => DeletableLeaseClient>;

const spec = (holderIdentity: string, renewTimeMs: number) => ({
  holderIdentity,
  leaseDurationSeconds: 3,
  leaseTransitions: 0,
  acquireTimeMs: renewTimeMs,
  renewTimeMs,
});

export function leaseClientContract(backend: string, open: LeaseClientFactory): void {
  test(`lease client contract (${backend}): create, conditional update, delete`, async (t) => {
    const lease = (await open(t))('share-manager-contract-1');
    assert.equal(await lease.get(), undefined);
    await lease.delete(); // nothing to delete: fine
    const created = await lease.create(spec('node-1/sm', 1_700_000_000_123));
    assert.equal(created.holderIdentity, 'node-1/sm');
    assert.equal(created.renewTimeMs, 1_700_000_000_123, 'millisecond precision');
    assert.ok(created.resourceVersion !== '');
    await expectCode(lease.create(spec('node-2/sm', 1)), 'RESOURCE_ALREADY_EXISTS');
    const read = await lease.get();
    assert.deepEqual(read, created);

    const renewed = await lease.update({ ...created, renewTimeMs: 1_700_000_001_456 });
    assert.notEqual(renewed.resourceVersion, created.resourceVersion);
    assert.equal((await lease.get())?.renewTimeMs, 1_700_000_001_456);
    await expectCode(lease.update({ ...created, holderIdentity: 'node-2/sm' }), 'RESOURCE_CONFLICT');
    assert.equal((await lease.get())?.holderIdentity, 'node-1/sm', 'the stale write changed nothing');

    await lease.delete();
    assert.equal(await lease.get(), undefined);
    await lease.delete();
    await expectCode(lease.update(renewed), 'RESOURCE_NOT_FOUND');
    const again = await lease.create(spec('node-2/sm', 1_700_000_002_000));
    assert.equal(again.holderIdentity, 'node-2/sm');
  });

  test(`lease client contract (${backend}): the controller breaks an expired lease, not a renewed one`, async (t) => {
    const clients = await open(t);
    const lease = clients('share-manager-contract-2');
    const holder = clients('share-manager-contract-2'); // the share manager's own client
    const nowMs = 1_700_000_000_000;
    await holder.create(spec('node-1/sm', nowMs));
    let seen = observe(undefined, (await lease.get())!, nowMs);
    assert.equal(await breakExpiredLease(lease, seen, nowMs + 1_000), false, 'not expired yet');

    // The holder renews after the controller observed: the break (on the old version) loses.
    const current = (await holder.get())!;
    await holder.update({ ...current, renewTimeMs: nowMs + 2_000 });
    assert.equal(await breakExpiredLease(lease, seen, nowMs + 3_500), false, 'a renewal wins');
    assert.equal((await lease.get())?.holderIdentity, 'node-1/sm');

    // Seen again, unchanged for a whole duration by the controller's clock: broken.
    seen = observe(seen, (await lease.get())!, nowMs + 3_500);
    assert.equal(await breakExpiredLease(lease, seen, nowMs + 6_600), true);
    const broken = (await lease.get())!;
    assert.equal(broken.holderIdentity, '');
    // A replacement takes it at once.
    const taken = await clients('share-manager-contract-2').update({
      ...broken,
      ...spec('node-2/sm', nowMs + 6_700),
      leaseTransitions: broken.leaseTransitions + 1,
    });
    assert.equal(taken.holderIdentity, 'node-2/sm');
    await lease.delete();
    assert.equal(await holder.get(), undefined);
  });
}
