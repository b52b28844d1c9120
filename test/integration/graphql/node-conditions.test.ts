/**
 * The GraphQL API shows the host conditions the CSI node plugin writes to a Node
 * (RequiredPackages, NFSClientInstalled, Multipathd) beside Ready and Schedulable, with
 * their messages (the fix) and lastTransitionTime; they do not change `ready` or `schedulable`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeHostReport } from '../../../src/csi/host/node-report.ts';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { hostConditions } from '../../../src/csi/host/requirements.ts';
import { silentLogger } from '../../../src/logging.ts';
import { startHarness } from './harness.ts';

test('node conditions include the host report of the CSI plugin', async (t) => {
  const harness = await startHarness();
  t.after(() => harness.close());
  const node = await harness.store.create({
    kind: 'Node',
    metadata: { name: 'node-1', namespace: harness.namespace },
    spec: { disks: {} },
  });
  const ready = {
    status: 'True' as const,
    reason: 'InstanceManagerRunning',
    message: '',
    lastTransitionTime: '2026-01-01T00:00:00Z',
  };
  await harness.store.updateStatus({
    ...node,
    status: {
      conditions: [
        { type: 'Ready', ...ready },
        { type: 'Schedulable', ...ready },
      ],
    },
  });
  const host = new RecordingHostOperations();
  host.missingTools.add('iscsiadm');
  host.missingTools.add('mount.nfs4');
  host.multipathdRunning = true;
  await writeHostReport({
    store: harness.store,
    namespace: harness.namespace,
    nodeId: 'node-1',
    conditions: hostConditions(await host.checkTools()),
    log: silentLogger,
  });
  const { status, body } = await harness.request(
    '{ node(name: "node-1") { ready schedulable conditions { type status reason message lastTransitionTime } } }',
    { token: harness.tokens.read },
  );
  assert.equal(status, 200, JSON.stringify(body));
  const shown = body.data?.node;
  assert.equal(shown.ready, true);
  assert.equal(shown.schedulable, true);
  const byType = new Map(
    shown.conditions.map((condition: { type: string }) => [condition.type, condition]),
  ) as Map<string, { status: string; reason: string; message: string; lastTransitionTime: string }>;
  assert.deepEqual(
    [...byType.keys()],
    ['Ready', 'Schedulable', 'RequiredPackages', 'NFSClientInstalled', 'Multipathd'],
  );
  assert.equal(byType.get('RequiredPackages')?.status, 'False');
  assert.match(byType.get('RequiredPackages')?.message ?? '', /open-iscsi \(iscsiadm\)/);
  assert.equal(byType.get('NFSClientInstalled')?.status, 'False');
  assert.match(byType.get('NFSClientInstalled')?.message ?? '', /nfs-common/);
  assert.equal(byType.get('Multipathd')?.status, 'True');
  assert.equal(byType.get('Multipathd')?.reason, 'MultipathdRunning');
  assert.match(byType.get('Multipathd')?.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT/);
});
