/**
 * The seed's PVC flow (test/integration/csi/pvc-walkthrough.ts) on an embedded store, with
 * the test playing the controllers (controller-stand-in.ts) and the recording host.
 * test/integration/csi/pvc-walkthrough.test.ts runs the same script against real processes.
 */
import { test } from 'node:test';
import { runPvcWalkthrough } from '../../integration/csi/pvc-walkthrough.ts';
import { NAMESPACE, NODE_ID, startHarness } from './harness.ts';

test('the seed PVC flow: create, publish, stage, publish on node, unpublish, unstage, detach, delete', async (t) => {
  const { store, csi, host } = await startHarness(t, { standIn: { attachDelayMs: 100 } });
  host.diskSizeBytes = 5 * 1024 ** 3;
  await runPvcWalkthrough({
    store,
    csi,
    host,
    namespace: NAMESPACE,
    nodeId: NODE_ID,
    report: (step, details) => t.diagnostic(`${step} ${JSON.stringify(details)}`),
  });
});
