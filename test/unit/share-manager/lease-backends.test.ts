/**
 * The share managers' two lease backends behind one interface: the LeaseClient contract on
 * files and on Lease objects (over HTTP, against the coordination.k8s.io/v1 stand-in of
 * test/helpers/kubernetes-lease-server.ts); the controller's LeaseWatch (expiry by its own
 * clock, break, delete) on both; and the share manager's side — `hornbill share-manager
 * --lease kubernetes` flags turned into a client (through KUBECONFIG, as in a pod through
 * in-cluster config) that a LeaderElector campaigns with and releases.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseShareManagerFlags, shareManagerLeaseClient } from '../../../src/cli/share-manager.ts';
import { LeaseWatch } from '../../../src/controllers/share-manager/world.ts';
import { LeaderElector } from '../../../src/resources/leader-election.ts';
import {
  describeLeaseLocation,
  fileShareManagerLeases,
  type ShareManagerLeases,
} from '../../../src/share-manager/index.ts';
import { kubernetesShareManagerLeases } from '../../../src/share-manager/kubernetes-leases.ts';
import { leaseClientContract } from '../../contract/lease-client.contract.ts';
import { startKubernetesLeaseServer } from '../../helpers/kubernetes-lease-server.ts';
import { tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';

async function fileLeases(t: TestContext): Promise<ShareManagerLeases> {
  return fileShareManagerLeases(path.join(tempDirectory(t, 'hornbill-lease-backend-'), 'leases'));
}

async function kubernetesLeases(t: TestContext): Promise<ShareManagerLeases> {
  const server = await startKubernetesLeaseServer();
  t.after(() => server.close());
  return kubernetesShareManagerLeases(server.kubeConfig, { namespace });
}

const backends = { file: fileLeases, kubernetes: kubernetesLeases };

// The contract names leases `share-manager-contract-N`: strip the prefix to get a "volume".
for (const [name, open] of Object.entries(backends)) {
  leaseClientContract(name, async (t) => {
    const leases = await open(t);
    return (leaseName) => leases.client(leaseName.replace(/^share-manager-/, ''));
  });
}

for (const [name, open] of Object.entries(backends)) {
  test(`LeaseWatch (${name}): expiry by the controller's clock, break, delete on teardown`, async (t) => {
    const leases = await open(t);
    const watch = new LeaseWatch(leases);
    const nowMs = 1_700_000_000_000;
    assert.equal(await watch.state('vol', nowMs), undefined, 'no lease yet');
    assert.equal(await watch.breakExpired('vol', nowMs), true, 'no lease: nobody holds it');
    const holder = leases.client('vol');
    await holder.create({
      holderIdentity: 'node-1/share-manager-vol',
      leaseDurationSeconds: 3,
      leaseTransitions: 0,
      // The holder's clock is far behind: the controller counts from when it saw the version.
      renewTimeMs: nowMs - 60_000,
    });
    assert.deepEqual(await watch.state('vol', nowMs), { expired: false, remainingMs: 3_000 });
    assert.deepEqual(await watch.state('vol', nowMs + 2_000), { expired: false, remainingMs: 1_000 });
    assert.equal(await watch.breakExpired('vol', nowMs + 2_000), false, 'not expired');
    assert.deepEqual(await watch.state('vol', nowMs + 3_100), { expired: true, remainingMs: 0 });
    assert.equal(await watch.breakExpired('vol', nowMs + 3_100), true);
    assert.equal((await holder.get())?.holderIdentity, '', 'broken: held by nobody');
    assert.deepEqual(await watch.state('vol', nowMs + 3_200), { expired: true, remainingMs: 0 });

    await watch.remove('vol');
    assert.equal(await holder.get(), undefined, 'teardown deleted it');
    assert.equal(await watch.state('vol', nowMs + 3_300), undefined);
    await watch.remove('vol'); // already gone: fine
  });
}

test('lease locations: the controller hands the share manager the lease it watches', async (t) => {
  const files = await fileLeases(t);
  assert.match(describeLeaseLocation(files.location('pvc-1')), /^file:\/.*\/leases\/pvc-1\.json$/);
  const kubernetes = await kubernetesLeases(t);
  assert.deepEqual(kubernetes.location('pvc-1'), {
    backend: 'kubernetes',
    namespace,
    name: 'share-manager-pvc-1',
  });
  assert.equal(
    describeLeaseLocation(kubernetes.location('pvc-1')),
    'kubernetes:hornbill-system/share-manager-pvc-1',
  );
});

test('hornbill share-manager --lease kubernetes campaigns for share-manager-<volume> and releases it', async (t) => {
  const server = await startKubernetesLeaseServer();
  t.after(() => server.close());
  const directory = tempDirectory(t, 'hornbill-lease-cli-');
  const previous = process.env.KUBECONFIG;
  process.env.KUBECONFIG = server.writeKubeconfig(directory);
  t.after(() => {
    if (previous === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = previous;
  });
  const flags = parseShareManagerFlags([
    ...['--volume', 'pvc-1', '--address', '127.0.0.21', '--state-dir', directory],
    ...['--export-dir', directory, '--lease', 'kubernetes', '--lease-namespace', namespace],
  ]);
  const lease = await shareManagerLeaseClient(flags);
  let leading = false;
  const logs: string[] = [];
  const elector = new LeaderElector({
    lease,
    identity: 'node-1/share-manager-pvc-1',
    timing: { leaseDurationMs: 3_000, renewPeriodMs: 1_000, renewDeadlineMs: 2_000, retryPeriodMs: 100 },
    logger: (level, message, details) => logs.push(`${level} ${message} ${JSON.stringify(details)}`),
    onStartedLeading: () => {
      leading = true;
    },
    onStoppedLeading: () => {
      leading = false;
    },
  });
  elector.start();
  t.after(() => elector.stop());
  for (let waited = 0; !leading && waited < 5_000; waited += 20) await sleep(20);
  assert.ok(leading, `it took the lease: ${logs.join('\n')} ${server.requests.join('\n')}`);
  const stored = server.leases.get(`${namespace}/share-manager-pvc-1`);
  assert.equal(stored?.spec.holderIdentity, 'node-1/share-manager-pvc-1');
  assert.equal(stored?.spec.leaseDurationSeconds, 3);
  // The controller (another client of the same Lease) sees it held.
  const controllerSide = new LeaseWatch(kubernetesShareManagerLeases(server.kubeConfig, { namespace }));
  assert.equal((await controllerSide.state('pvc-1'))?.expired, false);
  await elector.stop();
  assert.equal(server.leases.get(`${namespace}/share-manager-pvc-1`)?.spec.holderIdentity, '', 'released');
  assert.ok(server.requests.every((request) => request.includes('/namespaces/hornbill-system/leases')));
});
