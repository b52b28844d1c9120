/**
 * The plugin as `hornbill csi` starts it (startCsiPlugin: host check, embedded store, socket),
 * on a recording host whose tools the test chooses: iscsiadm missing → the Node gets
 * RequiredPackages False naming open-iscsi, and ControllerPublishVolume to the node is
 * FAILED_PRECONDITION at once; restarted with the tools installed → True, and publishing
 * attaches as before. The test plays the controllers (test/unit/csi/controller-stand-in.ts).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { type CsiPlugin, parseCsiFlags, startCsiPlugin } from '../../../src/cli/csi.ts';
import { CsiClient } from '../../../src/csi/client.ts';
import { RecordingHostOperations } from '../../../src/csi/host/recording.ts';
import { silentLogger } from '../../../src/logging.ts';
import { openEmbeddedStore } from '../../../src/resources/index.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';
import { tempDirectory } from '../../helpers/temp.ts';
import { rejectsWith } from '../../unit/csi/assertions.ts';
import { endpointFor, playControllers } from '../../unit/csi/controller-stand-in.ts';
import { addNode, MOUNT_CAPABILITY, NAMESPACE, NODE_ID } from '../../unit/csi/harness.ts';

async function startPlugin(directory: string, host: RecordingHostOperations): Promise<CsiPlugin> {
  const flags = parseCsiFlags([
    '--endpoint',
    `unix://${path.join(directory, 'csi.sock')}`,
    '--node-id',
    NODE_ID,
    '--mode',
    'all',
    '--store',
    `embedded:${path.join(directory, 'state')}`,
    '--namespace',
    NAMESPACE,
    '--attach-wait',
    '10s',
  ]);
  return startCsiPlugin(flags, { host, log: silentLogger, hostReportRetryMs: 20 });
}

/** Runs `body` with the plugin, a client and the stand-in controllers; stops them after. */
async function withPlugin(
  t: TestContext,
  directory: string,
  host: RecordingHostOperations,
  body: (csi: CsiClient, store: ResourceStore) => Promise<void>,
): Promise<void> {
  const plugin = await startPlugin(directory, host);
  const store = plugin.store as ResourceStore;
  const csi = new CsiClient(plugin.server.endpoint, { deadlineMs: 15_000 });
  const stop = new AbortController();
  const controllers = playControllers(store, NAMESPACE, stop.signal);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    stop.abort();
    await controllers;
    csi.close();
    await plugin.close();
  };
  t.after(close);
  try {
    assert.ok((await plugin.hostReport) !== undefined, 'the host report was written');
    await body(csi, store);
  } finally {
    await close();
  }
}

async function requiredPackages(store: ResourceStore) {
  const node = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
  return node.status?.conditions?.find((condition) => condition.type === 'RequiredPackages');
}

async function untilDetached(store: ResourceStore, name: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if ((await store.get({ kind: 'Volume', namespace: NAMESPACE, name })).status?.state === 'detached')
      return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${name} never became detached`);
}

test('a plugin missing iscsiadm marks its Node and is refused publishes; with the tools it attaches', {
  timeout: 60_000,
}, async (t) => {
  const directory = tempDirectory(t, 'hornbill-csi-host-');
  // The manager's node controller registered the node before the plugin started.
  const seed = await openEmbeddedStore({ directory: path.join(directory, 'state'), probe: false });
  await addNode(seed, NODE_ID);
  await seed.close();

  const missing = new RecordingHostOperations();
  missing.missingTools.add('iscsiadm');
  await withPlugin(t, directory, missing, async (csi, store) => {
    const condition = await requiredPackages(store);
    assert.equal(condition?.status, 'False');
    assert.equal(condition?.reason, 'PackagesMissing');
    assert.match(condition?.message ?? '', /open-iscsi \(iscsiadm\)/);
    await csi.call('Controller', 'CreateVolume', {
      name: 'pvc-host',
      volume_capabilities: [MOUNT_CAPABILITY],
    });
    await untilDetached(store, 'pvc-host');
    const started = Date.now();
    const publish = { volume_id: 'pvc-host', node_id: NODE_ID, volume_capability: MOUNT_CAPABILITY };
    await rejectsWith(
      csi.call('Controller', 'ControllerPublishVolume', publish),
      'FAILED_PRECONDITION',
      'CSI_NODE_REQUIREMENTS_MISSING',
    );
    await assert.rejects(csi.call('Controller', 'ControllerPublishVolume', publish), (error: Error) => {
      assert.match(error.message, new RegExp(`node ${NODE_ID}`));
      assert.match(error.message, /install open-iscsi \(iscsiadm\)/);
      return true;
    });
    assert.ok(Date.now() - started < 3000, `refused at once, not after the 10 s attach wait`);
    const attachment = await store
      .get({ kind: 'VolumeAttachment', namespace: NAMESPACE, name: 'pvc-host' })
      .catch(() => undefined);
    assert.equal(Object.keys(attachment?.spec.attachmentTickets ?? {}).length, 0, 'no ticket was added');
  });

  // The operator installs open-iscsi and the plugin pod restarts.
  await withPlugin(t, directory, new RecordingHostOperations(), async (csi, store) => {
    const condition = await requiredPackages(store);
    assert.equal(condition?.status, 'True');
    assert.equal(condition?.reason, 'PackagesInstalled');
    const answer = await csi.call('Controller', 'ControllerPublishVolume', {
      volume_id: 'pvc-host',
      node_id: NODE_ID,
      volume_capability: MOUNT_CAPABILITY,
    });
    assert.equal(answer.publish_context.endpoint, endpointFor('pvc-host'));
    const node = await store.get({ kind: 'Node', namespace: NAMESPACE, name: NODE_ID });
    assert.deepEqual(
      (node.status?.conditions ?? []).map((entry) => `${entry.type}=${entry.status}`),
      [
        'Ready=True',
        'Schedulable=True',
        'RequiredPackages=True',
        'NFSClientInstalled=True',
        'Multipathd=False',
      ],
    );
  });
});

test('a plugin without a store writes nothing; a controller-only plugin reports no host', async (t) => {
  const directory = tempDirectory(t, 'hornbill-csi-host-');
  const endpoint = `unix://${path.join(directory, 'csi.sock')}`;
  const missing = new RecordingHostOperations();
  missing.missingTools.add('iscsiadm');
  const nodeOnly = await startCsiPlugin(
    parseCsiFlags(['--endpoint', endpoint, '--node-id', NODE_ID, '--mode', 'node']),
    { host: missing, log: silentLogger },
  );
  assert.equal(nodeOnly.store, undefined);
  assert.equal(await nodeOnly.hostReport, undefined);
  assert.equal(nodeOnly.conditions[0].status, 'False', 'still computed, logged and announced');
  await nodeOnly.close();

  const seed = await openEmbeddedStore({ directory: path.join(directory, 'state'), probe: false });
  await addNode(seed, NODE_ID);
  await seed.close();
  const controllerOnly = await startCsiPlugin(
    parseCsiFlags([
      '--endpoint',
      endpoint,
      '--node-id',
      NODE_ID,
      '--mode',
      'controller',
      '--store',
      `embedded:${path.join(directory, 'state')}`,
      '--namespace',
      NAMESPACE,
    ]),
    { host: missing, log: silentLogger },
  );
  try {
    assert.equal(await controllerOnly.hostReport, undefined);
    assert.equal(await requiredPackages(controllerOnly.store as ResourceStore), undefined);
  } finally {
    await controllerOnly.close();
  }
});
