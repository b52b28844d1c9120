/**
 * The node plugin's host report on its Node resource (src/csi/host/node-report.ts): it waits
 * for the Node, writes the three conditions and nothing else, retries a conflict with
 * another writer, writes nothing when nothing changed, records Multipathd True as a Warning
 * Event; and ControllerPublishVolume refuses a node whose condition rules the volume out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { writeHostReport } from '../../../src/csi/host/node-report.ts';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { hostConditions } from '../../../src/csi/host/requirements.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import { openEmbeddedStore } from '../../../src/resources/index.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import { rejectsWith } from './assertions.ts';
import {
  addNode,
  BLOCK_CAPABILITY,
  MOUNT_CAPABILITY,
  NAMESPACE,
  NODE_ID,
  RWX_CAPABILITY,
  startHarness,
} from './harness.ts';

async function conditionsOf(host: RecordingHostOperations) {
  return hostConditions(await host.checkTools());
}

async function openStore(t: import('node:test').TestContext): Promise<ResourceStore> {
  const store = await openEmbeddedStore({
    directory: tempDirectory(t, 'hornbill-host-report-'),
    probe: false,
  });
  t.after(() => store.close());
  return store;
}

test('the host report waits for the Node, then writes the three conditions beside the others', async (t) => {
  const store = await openStore(t);
  const host = new RecordingHostOperations();
  host.missingTools.add('iscsiadm');
  const report = writeHostReport({
    store,
    namespace: NAMESPACE,
    nodeId: NODE_ID,
    conditions: await conditionsOf(host),
    log: silentLogger,
    retryMs: 10,
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await addNode(store, NODE_ID);
  const result = await report;
  assert.ok(result !== undefined);
  assert.deepEqual(result.changed, ['RequiredPackages', 'NFSClientInstalled', 'Multipathd']);
  const node = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
  const byType = new Map((node.status?.conditions ?? []).map((entry) => [entry.type, entry]));
  assert.deepEqual(
    [...byType.keys()],
    ['Ready', 'Schedulable', 'RequiredPackages', 'NFSClientInstalled', 'Multipathd'],
  );
  const required = byType.get('RequiredPackages');
  assert.equal(required?.status, 'False');
  assert.equal(required?.reason, 'PackagesMissing');
  assert.match(required?.message ?? '', /open-iscsi \(iscsiadm\)/);
  assert.match(required?.lastTransitionTime ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(
    node.status?.diskStatus?.['disk-1']?.storageMaximum,
    100 * 1024 ** 3,
    'the rest of status stays',
  );

  // The same report again writes nothing.
  const again = await writeHostReport({
    store,
    namespace: NAMESPACE,
    nodeId: NODE_ID,
    conditions: await conditionsOf(host),
    log: silentLogger,
  });
  assert.deepEqual(again?.changed, []);
  const unchanged = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
  assert.equal(unchanged.metadata.resourceVersion, node.metadata.resourceVersion);
  assert.equal((await store.listEvents({})).length, 0, 'no multipathd, no event');
});

test('the host report retries a conflict with the node controller and records Multipathd as a Warning Event', async (t) => {
  const store = await openStore(t);
  await addNode(store, NODE_ID);
  let stale = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
  // Another writer (the node controller) changes the status after the report read it.
  const racing: ResourceStore = Object.create(store);
  let conflicts = 0;
  racing.get = (async (key: never) => {
    if (stale !== undefined) {
      const copy = stale;
      stale = undefined as never;
      await store.updateStatus({ ...copy, status: { ...copy.status, zone: 'zone-b' } });
      return copy;
    }
    return store.get(key);
  }) as ResourceStore['get'];
  racing.updateStatus = (async (object: never) => {
    try {
      return await store.updateStatus(object);
    } catch (error) {
      if (isHornbillError(error, 'RESOURCE_CONFLICT')) conflicts++;
      throw error;
    }
  }) as ResourceStore['updateStatus'];
  const host = new RecordingHostOperations();
  host.multipathdRunning = true;
  const result = await writeHostReport({
    store: racing,
    namespace: NAMESPACE,
    nodeId: NODE_ID,
    conditions: await conditionsOf(host),
    log: silentLogger,
  });
  assert.equal(conflicts, 1, 'the first write met the other writer');
  assert.ok(result !== undefined);
  const node = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
  assert.equal(node.status?.zone, 'zone-b', "the other writer's change stays");
  const multipathd = node.status?.conditions?.find((entry) => entry.type === 'Multipathd');
  assert.equal(multipathd?.status, 'True');
  assert.equal(node.status?.conditions?.find((entry) => entry.type === 'RequiredPackages')?.status, 'True');
  const events = await store.listEvents({});
  assert.equal(events.length, 1);
  assert.equal(events[0].type, 'Warning');
  assert.equal(events[0].reason, 'MultipathdRunning');
  assert.equal(events[0].involvedObject.kind, 'Node');
  assert.equal(events[0].involvedObject.name, NODE_ID);
  assert.match(events[0].message, /blacklist/);
});

test('a stopped host report gives up waiting for the Node', async (t) => {
  const store = await openStore(t);
  const stop = new AbortController();
  const report = writeHostReport({
    store,
    namespace: NAMESPACE,
    nodeId: NODE_ID,
    conditions: await conditionsOf(new RecordingHostOperations()),
    log: silentLogger,
    signal: stop.signal,
    retryMs: 10_000,
  });
  setTimeout(() => stop.abort(), 20);
  assert.equal(await report, undefined);
});

test('ControllerPublishVolume refuses a node whose host conditions rule the volume out, at once', async (t) => {
  const { csi, store } = await startHarness(t, { attachWaitMs: 5000 });
  await addNode(store, 'node-2');
  const host = new RecordingHostOperations();
  host.missingTools.add('mount.nfs4');
  await writeHostReport({
    store,
    namespace: NAMESPACE,
    nodeId: 'node-2',
    conditions: await conditionsOf(host),
    log: silentLogger,
  });
  await csi.call('Controller', 'CreateVolume', { name: 'shared', volume_capabilities: [RWX_CAPABILITY] });
  const started = Date.now();
  await rejectsWith(
    csi.call('Controller', 'ControllerPublishVolume', {
      volume_id: 'shared',
      node_id: 'node-2',
      volume_capability: RWX_CAPABILITY,
    }),
    'FAILED_PRECONDITION',
    'CSI_NODE_REQUIREMENTS_MISSING',
  );
  await assert.rejects(
    csi.call('Controller', 'ControllerPublishVolume', {
      volume_id: 'shared',
      node_id: 'node-2',
      volume_capability: RWX_CAPABILITY,
    }),
    (error: Error) => /node node-2/.test(error.message) && /nfs-common/.test(error.message),
  );
  assert.ok(Date.now() - started < 2000, 'refused without waiting');
  // A block volume only needs RequiredPackages, which node-2 has: it attaches there.
  await csi.call('Controller', 'CreateVolume', { name: 'block', volume_capabilities: [BLOCK_CAPABILITY] });
  for (let i = 0; i < 200; i++) {
    if (
      (await store.get({ kind: 'Volume', namespace: NAMESPACE, name: 'block' })).status?.state === 'detached'
    )
      break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  const answer = await csi.call('Controller', 'ControllerPublishVolume', {
    volume_id: 'block',
    node_id: 'node-2',
    volume_capability: MOUNT_CAPABILITY,
  });
  assert.match(answer.publish_context.endpoint, /^iscsi:\/\//);
});
