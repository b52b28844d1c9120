/**
 * Must-hold 1 of issue 8: the seed's PVC flow (pvc-walkthrough.ts) through the CSI services
 * against real processes — a manager with its controllers and three instance managers,
 * launched as `hornbill up` launches them (test/e2e/helpers/cluster.ts) — with the CSI
 * plugin in this process talking to the manager over HTTP (`--store http://…`), and the
 * recording host on the node side (no kernel iSCSI initiator on this machine). The volume
 * is really scheduled, attached (engine and replicas started, iSCSI endpoint) and deleted.
 */
import path from 'node:path';
import { test } from 'node:test';
import { CsiClient } from '../../../src/csi/client.ts';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { startCsiServer } from '../../../src/csi/server.ts';
import { silentLogger } from '../../../src/logging.ts';
import { startCluster } from '../../e2e/helpers/cluster.ts';
import { runPvcWalkthrough } from './pvc-walkthrough.ts';

test('the seed PVC flow through CSI against a manager and three instance managers', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const host = new RecordingHostOperations();
  host.diskSizeBytes = 5 * 1024 ** 3;
  const server = await startCsiServer({
    endpoint: `unix://${path.join(cluster.dataDirectory, 'csi.sock')}`,
    mode: 'all',
    nodeId: cluster.nodes[0].name,
    namespace: cluster.namespace,
    version: '0.1.0',
    store: cluster.store,
    host,
    log: silentLogger,
    attachWaitMs: 120_000,
  });
  const csi = new CsiClient(server.endpoint, { deadlineMs: 120_000 });
  t.after(async () => {
    csi.close();
    await server.close(100);
  });
  await runPvcWalkthrough({
    store: cluster.store,
    csi,
    host,
    namespace: cluster.namespace,
    nodeId: cluster.nodes[0].name,
    waitMs: 120_000,
    report: (step, details) => t.diagnostic(`${step} ${JSON.stringify(details)}`),
  });
});
