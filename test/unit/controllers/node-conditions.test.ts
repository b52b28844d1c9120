/**
 * The host conditions of a Node: what nodeCanServe allows, how withHostConditions merges
 * them (others untouched, lastTransitionTime kept while a status stays), and the node
 * controller keeping them when it writes Ready and Schedulable.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createContext } from '../../../src/controllers/context.ts';
import { InstanceManagerMonitors } from '../../../src/controllers/instance-manager-monitor.ts';
import {
  type HostConditionInput,
  multipathdRunning,
  nodeCanServe,
  withHostConditions,
} from '../../../src/controllers/node-conditions.ts';
import { reconcileNode } from '../../../src/controllers/node-controller.ts';
import type { Condition, Node } from '../../../src/resources/index.ts';
import { openEmbeddedStore } from '../../../src/resources/index.ts';
import { tempDirectory } from '../../helpers/temp.ts';

const NAMESPACE = 'hornbill-system';

function condition(type: string, status: Condition['status'], message = ''): Condition {
  return { type, status, reason: `${type}${status}`, message, lastTransitionTime: '2026-01-01T00:00:00Z' };
}

function nodeWith(conditions: Condition[] | undefined): Node {
  return {
    apiVersion: 'hornbill.io/v1beta1',
    kind: 'Node',
    metadata: {
      name: 'node-1',
      namespace: NAMESPACE,
      uid: 'uid-1',
      resourceVersion: '1',
      generation: 1,
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
    spec: { disks: {}, allowScheduling: true, evictionRequested: false, tags: [] },
    status: conditions === undefined ? undefined : { conditions },
  } as Node;
}

const MISSING: HostConditionInput[] = [
  {
    type: 'RequiredPackages',
    status: 'False',
    reason: 'PackagesMissing',
    message: 'install open-iscsi (iscsiadm) on this node',
  },
  {
    type: 'NFSClientInstalled',
    status: 'True',
    reason: 'NFSClientInstalled',
    message: 'mount.nfs4 is installed',
  },
  {
    type: 'Multipathd',
    status: 'False',
    reason: 'MultipathdNotRunning',
    message: 'multipathd is not running',
  },
];

test('nodeCanServe refuses only what a False condition rules out', () => {
  const missingPackages = nodeWith([
    condition('Ready', 'True'),
    condition('RequiredPackages', 'False', 'install open-iscsi (iscsiadm)'),
    condition('NFSClientInstalled', 'True'),
  ]);
  const verdict = nodeCanServe(missingPackages, 'block');
  assert.equal(verdict.serves, false);
  assert.ok(!verdict.serves);
  assert.equal(verdict.node, 'node-1');
  assert.equal(verdict.missing, 'RequiredPackages');
  assert.equal(verdict.condition.message, 'install open-iscsi (iscsiadm)');
  assert.deepEqual(nodeCanServe(missingPackages, 'nfs-client'), { serves: true });

  const missingNfs = nodeWith([
    condition('RequiredPackages', 'True'),
    condition('NFSClientInstalled', 'False'),
  ]);
  assert.deepEqual(nodeCanServe(missingNfs, 'block'), { serves: true });
  const nfsVerdict = nodeCanServe(missingNfs, 'nfs-client');
  assert.ok(!nfsVerdict.serves);
  assert.equal(nfsVerdict.missing, 'NFSClientInstalled');

  // Not reported (no plugin yet, an older plugin) or Unknown: no refusal.
  assert.deepEqual(nodeCanServe(nodeWith(undefined), 'block'), { serves: true });
  assert.deepEqual(nodeCanServe(nodeWith([condition('Ready', 'True')]), 'nfs-client'), { serves: true });
  assert.deepEqual(nodeCanServe(nodeWith([condition('RequiredPackages', 'Unknown')]), 'block'), {
    serves: true,
  });
  // Multipathd True is a warning, never a refusal.
  const multipath = nodeWith([condition('Multipathd', 'True')]);
  assert.equal(multipathdRunning(multipath), true);
  assert.deepEqual(nodeCanServe(multipath, 'block'), { serves: true });
  assert.equal(multipathdRunning(missingNfs), false);
});

test('withHostConditions sets the three, keeps the others and lastTransitionTime while a status stays', () => {
  const start = Date.parse('2026-02-01T00:00:00Z');
  const first = withHostConditions([condition('Ready', 'True')], MISSING, start);
  assert.deepEqual(
    first.conditions.map((entry) => [entry.type, entry.status]),
    [
      ['Ready', 'True'],
      ['RequiredPackages', 'False'],
      ['NFSClientInstalled', 'True'],
      ['Multipathd', 'False'],
    ],
  );
  assert.deepEqual(first.changed, ['RequiredPackages', 'NFSClientInstalled', 'Multipathd']);
  assert.equal(first.conditions[0].lastTransitionTime, '2026-01-01T00:00:00Z');
  assert.equal(first.conditions[1].lastTransitionTime, '2026-02-01T00:00:00Z');

  const again = withHostConditions(first.conditions, MISSING, start + 60_000);
  assert.deepEqual(again.changed, []);
  assert.deepEqual(again.conditions, first.conditions);

  const installed = MISSING.map((entry) =>
    entry.type === 'RequiredPackages'
      ? {
          ...entry,
          status: 'True' as const,
          reason: 'PackagesInstalled',
          message: 'every required host tool',
        }
      : entry,
  );
  const fixed = withHostConditions(first.conditions, installed, start + 120_000);
  assert.deepEqual(fixed.changed, ['RequiredPackages']);
  const required = fixed.conditions.find((entry) => entry.type === 'RequiredPackages');
  assert.equal(required?.status, 'True');
  assert.equal(required?.lastTransitionTime, '2026-02-01T00:02:00Z');
  assert.equal(
    fixed.conditions.find((entry) => entry.type === 'Multipathd')?.lastTransitionTime,
    '2026-02-01T00:00:00Z',
  );
});

test('the node controller keeps the host conditions when it writes Ready and Schedulable', async (t) => {
  const store = await openEmbeddedStore({
    directory: tempDirectory(t, 'hornbill-node-conditions-'),
    probe: false,
  });
  t.after(() => store.close());
  const context = createContext({
    store,
    namespace: NAMESPACE,
    monitors: new InstanceManagerMonitors([], () => {}),
    log: () => {},
    enqueue: () => {},
  });
  const endpoint = { nodeID: 'node-1', grpcAddress: '127.0.0.1:1', address: '127.0.0.1', disks: [] };
  await reconcileNode(context, endpoint);
  const node = await store.get({ kind: 'Node', namespace: NAMESPACE, name: 'node-1' });
  const { conditions } = withHostConditions(node.status?.conditions, MISSING);
  await store.updateStatus({ ...node, status: { ...node.status, conditions } });

  await reconcileNode(context, endpoint);
  const after = await store.get({ kind: 'Node', namespace: NAMESPACE, name: 'node-1' });
  const types = (after.status?.conditions ?? []).map((entry) => `${entry.type}=${entry.status}`).sort();
  assert.deepEqual(types, [
    'Multipathd=False',
    'NFSClientInstalled=True',
    'Ready=False',
    'RequiredPackages=False',
    'Schedulable=False',
  ]);
});
