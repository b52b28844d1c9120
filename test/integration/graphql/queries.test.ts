/** Queries against an embedded store seeded with one of every kind the API shows. */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SETTING_NAMES } from '../../../src/resources/index.ts';
import { type Harness, startHarness } from './harness.ts';

let harness: Harness;
const TiB = 1024 ** 4;
/** The largest volume: 16 TiB - 2 MiB, far beyond GraphQL's 32-bit Int. */
const LARGEST = String(16 * TiB - 2 * 1024 ** 2);

async function volume(name: string, status: Record<string, unknown>, size = '1Gi') {
  const created = await harness.store.create({
    kind: 'Volume',
    metadata: { name, namespace: harness.namespace },
    spec: { size },
  });
  return harness.store.updateStatus({ ...created, status });
}

before(async () => {
  harness = await startHarness();
  const { store, namespace } = harness;
  await volume('vol-1', { state: 'attached', robustness: 'degraded', currentNodeID: 'node-1' }, LARGEST);
  await volume('vol-2', { state: 'attached', robustness: 'healthy', currentNodeID: 'node-2' });
  await volume('vol-3', { state: 'detached', robustness: 'unknown' });
  await volume('vol-4', { state: 'attached', robustness: 'healthy', currentNodeID: 'node-1' });
  const big = await store.get({ kind: 'Volume', namespace, name: 'vol-1' });
  await store.updateStatus({
    ...big,
    status: {
      ...big.status,
      endpoint: 'iscsi://10.0.0.1:3260/iqn.2024-01.io.hornbill:vol-1/1',
      actualSize: 15 * TiB,
      kubernetesStatus: {
        pvName: 'pv-1',
        pvcName: 'data',
        namespace: 'default',
        workloads: [{ podName: 'db-0' }],
      },
      conditions: [
        {
          type: 'Scheduled',
          status: 'True',
          reason: 'Scheduled',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
    },
  });
  for (const [index, node] of ['node-1', 'node-2', 'node-3'].entries()) {
    const replica = await store.create({
      kind: 'Replica',
      metadata: { name: `vol-1-r-${index}`, namespace },
      spec: {
        volumeName: 'vol-1',
        volumeSize: LARGEST,
        nodeID: node,
        diskID: 'disk-1',
        diskPath: '/srv/disk-1',
      },
    });
    await store.updateStatus({
      ...replica,
      status: { currentState: 'running', ip: '10.0.0.1', port: 10000 + index },
    });
  }
  const engine = await store.create({
    kind: 'Engine',
    metadata: { name: 'vol-1-e-0', namespace },
    spec: {
      volumeName: 'vol-1',
      volumeSize: LARGEST,
      nodeID: 'node-1',
      desireState: 'running',
      replicaAddressMap: {
        'vol-1-r-0': '10.0.0.1:10000',
        'vol-1-r-1': '10.0.0.1:10001',
        'vol-1-r-2': '10.0.0.1:10002',
      },
    },
  });
  const info = (name: string, parent: string, children: string[], extra: Record<string, unknown> = {}) => ({
    name,
    parent,
    children: Object.fromEntries(children.map((child) => [child, true])),
    removed: false,
    userCreated: true,
    created: '2026-01-01T00:00:00Z',
    size: 4096,
    labels: {},
    ...extra,
  });
  await store.updateStatus({
    ...engine,
    status: {
      currentState: 'running',
      endpoint: 'iscsi://10.0.0.1:3260/iqn.2024-01.io.hornbill:vol-1/1',
      currentSize: LARGEST,
      replicaModeMap: { 'vol-1-r-0': 'RW', 'vol-1-r-1': 'WO', 'vol-1-r-2': 'ERR' },
      rebuildStatus: { '10.0.0.1:10001': { isRebuilding: true, progress: 42, state: 'in_progress' } },
      snapshots: {
        'snap-a': info('snap-a', '', ['snap-b']),
        'snap-b': info('snap-b', 'snap-a', ['volume-head'], { removed: true, size: 3 * TiB }),
        'system-1': info('system-1', '', [], { userCreated: false }),
        'volume-head': info('volume-head', 'snap-b', []),
      },
    },
  });
  const snapshot = await store.create({
    kind: 'Snapshot',
    metadata: { name: 'snap-a', namespace },
    spec: { volume: 'vol-1' },
  });
  await store.updateStatus({ ...snapshot, status: { readyToUse: true, restoreSize: 16 * TiB } });
  const node = await store.create({
    kind: 'Node',
    metadata: { name: 'node-1', namespace },
    spec: {
      tags: ['ssd'],
      disks: { 'disk-1': { path: '/srv/disk-1', storageReserved: '1Gi', tags: ['nvme'] } },
    },
  });
  await store.updateStatus({
    ...node,
    status: {
      conditions: [
        {
          type: 'Ready',
          status: 'True',
          reason: 'Up',
          message: '',
          lastTransitionTime: '2026-01-01T00:00:00Z',
        },
      ],
      diskStatus: {
        'disk-1': {
          storageMaximum: 20 * TiB,
          storageAvailable: 4 * TiB,
          storageScheduled: 16 * TiB,
          scheduledReplica: { 'vol-1-r-0': 16 * TiB },
        },
      },
    },
  });
  await store.create({
    kind: 'Setting',
    metadata: { name: 'auto-salvage', namespace },
    spec: { value: 'false' },
  });
  for (const reason of ['Attached', 'Degraded']) {
    await store.recordEvent({
      involvedObject: { kind: 'Volume', namespace, name: 'vol-1' },
      type: reason === 'Degraded' ? 'Warning' : 'Normal',
      reason,
      message: `volume ${reason.toLowerCase()}`,
      component: 'hornbill-volume-controller',
    });
    await new Promise((resolve) => setTimeout(resolve, 1100)); // lastTimestamp has second precision
  }
  await store.recordEvent({
    involvedObject: { kind: 'Node', namespace, name: 'node-1' },
    type: 'Normal',
    reason: 'Ready',
    message: 'node ready',
    component: 'hornbill-node-controller',
  });
  const manager = await store.create({
    kind: 'InstanceManager',
    metadata: { name: 'instance-manager-node-1', namespace },
    spec: { nodeID: 'node-1' },
  });
  await store.updateStatus({
    ...manager,
    status: {
      currentState: 'running',
      ip: '10.0.0.1',
      port: 8500,
      instanceEngines: { 'vol-1-e-0': { state: 'running' } },
    },
  });
  await store.create({
    kind: 'BackupTarget',
    metadata: { name: 'default', namespace },
    spec: { backupTargetURL: 'file:///backups' },
  });
  const backup = await store.create({
    kind: 'Backup',
    metadata: { name: 'backup-1', namespace },
    spec: { snapshotName: 'snap-a', volumeName: 'vol-1' },
  });
  await store.updateStatus({ ...backup, status: { state: 'completed', progress: 100, size: 5 * TiB } });
});
after(async () => {
  await harness.close();
});

async function query(text: string, variables?: Record<string, unknown>) {
  const { body } = await harness.request(text, { token: harness.tokens.read, variables });
  assert.equal(body.errors, undefined, JSON.stringify(body.errors));
  // biome-ignore lint/suspicious/noExplicitAny: response shapes are checked by the assertions
  return body.data as Record<string, any>;
}

test('volumes filters by state, robustness and node', async () => {
  const names = async (args: string) =>
    (await query(`{ volumes${args} { nodes { name } totalCount } }`)).volumes.nodes.map(
      (v: { name: string }) => v.name,
    );
  assert.deepEqual(await names(''), ['vol-1', 'vol-2', 'vol-3', 'vol-4']);
  assert.deepEqual(await names('(state: DETACHED)'), ['vol-3']);
  assert.deepEqual(await names('(robustness: HEALTHY)'), ['vol-2', 'vol-4']);
  assert.deepEqual(await names('(node: "node-1")'), ['vol-1', 'vol-4']);
  assert.deepEqual(await names('(state: ATTACHED, robustness: HEALTHY, node: "node-1")'), ['vol-4']);
});

test('volumes pages by cursor', async () => {
  const page = `query Page($after: String) { volumes(first: 3, after: $after) { nodes { name } totalCount pageInfo { hasNextPage endCursor } } }`;
  const first = (await query(page)).volumes;
  assert.deepEqual(
    first.nodes.map((v: { name: string }) => v.name),
    ['vol-1', 'vol-2', 'vol-3'],
  );
  assert.equal(first.totalCount, 4);
  assert.equal(first.pageInfo.hasNextPage, true);
  const second = (await query(page, { after: first.pageInfo.endCursor })).volumes;
  assert.deepEqual(
    second.nodes.map((v: { name: string }) => v.name),
    ['vol-4'],
  );
  assert.equal(second.pageInfo.hasNextPage, false);
  const { body } = await harness.request('{ volumes(after: "not-a-cursor!") { totalCount } }', {
    token: harness.tokens.read,
  });
  assert.equal(body.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
  assert.equal(body.errors?.[0]?.extensions?.field, 'after');
  const tooMany = await harness.request('{ volumes(first: 501) { totalCount } }', {
    token: harness.tokens.read,
  });
  assert.equal(tooMany.body.errors?.[0]?.extensions?.code, 'INVALID_ARGUMENT');
});

test('volume shows sizes beyond 32 bits, status, engine, replicas with mode and rebuild progress', async () => {
  const { volume } = await query(`{
    volume(name: "vol-1") {
      name size sizeBytes actualSize state robustness currentNodeID endpoint
      kubernetesStatus { pvName pvcName namespace workloads }
      conditions { type status reason }
      engine { name currentState nodeID currentSize replicaModes { replica address mode } rebuilds { address progress isRebuilding } }
      replicas { name nodeID diskID address mode rebuilding rebuildProgress }
    }
  }`);
  assert.equal(volume.size, LARGEST);
  assert.equal(volume.sizeBytes, LARGEST);
  assert.equal(volume.actualSize, String(15 * TiB));
  assert.equal(volume.state, 'ATTACHED');
  assert.equal(volume.robustness, 'DEGRADED');
  assert.equal(volume.currentNodeID, 'node-1');
  assert.match(volume.endpoint, /^iscsi:\/\//);
  assert.deepEqual(volume.kubernetesStatus, {
    pvName: 'pv-1',
    pvcName: 'data',
    namespace: 'default',
    workloads: ['db-0'],
  });
  assert.deepEqual(volume.conditions, [{ type: 'Scheduled', status: 'True', reason: 'Scheduled' }]);
  assert.equal(volume.engine.name, 'vol-1-e-0');
  assert.equal(volume.engine.currentState, 'RUNNING');
  assert.equal(volume.engine.currentSize, LARGEST);
  assert.deepEqual(volume.engine.rebuilds, [{ address: '10.0.0.1:10001', progress: 42, isRebuilding: true }]);
  assert.deepEqual(volume.replicas, [
    {
      name: 'vol-1-r-0',
      nodeID: 'node-1',
      diskID: 'disk-1',
      address: '10.0.0.1:10000',
      mode: 'RW',
      rebuilding: false,
      rebuildProgress: null,
    },
    {
      name: 'vol-1-r-1',
      nodeID: 'node-2',
      diskID: 'disk-1',
      address: '10.0.0.1:10001',
      mode: 'WO',
      rebuilding: true,
      rebuildProgress: 42,
    },
    {
      name: 'vol-1-r-2',
      nodeID: 'node-3',
      diskID: 'disk-1',
      address: '10.0.0.1:10002',
      mode: 'ERR',
      rebuilding: false,
      rebuildProgress: null,
    },
  ]);
  assert.equal((await query('{ volume(name: "no-such-volume") { name } }')).volume, null);
});

test('snapshots form a tree with sizes, user-created and removed marks', async () => {
  const { snapshots } = await query(
    '{ snapshots(volume: "vol-1") { name parent children size restoreSize userCreated removed hasResource readyToUse } }',
  );
  assert.deepEqual(snapshots, [
    {
      name: 'snap-a',
      parent: null,
      children: ['snap-b'],
      size: '4096',
      restoreSize: String(16 * TiB),
      userCreated: true,
      removed: false,
      hasResource: true,
      readyToUse: true,
    },
    {
      name: 'snap-b',
      parent: 'snap-a',
      children: ['volume-head'],
      size: String(3 * TiB),
      restoreSize: null,
      userCreated: true,
      removed: true,
      hasResource: false,
      readyToUse: true,
    },
    {
      name: 'system-1',
      parent: null,
      children: [],
      size: '4096',
      restoreSize: null,
      userCreated: false,
      removed: false,
      hasResource: false,
      readyToUse: true,
    },
  ]);
  const nested = await query('{ volume(name: "vol-1") { snapshots { name } } }');
  assert.deepEqual(
    nested.volume.snapshots.map((s: { name: string }) => s.name),
    ['snap-a', 'snap-b', 'system-1'],
  );
});

test('nodes show disks with capacity, availability, scheduled bytes and tags', async () => {
  const { nodes } = await query(
    '{ nodes { name ready tags disks { name path storageMaximum storageAvailable storageScheduled storageReservedBytes tags scheduledReplicas { name size } } } }',
  );
  assert.deepEqual(nodes, [
    {
      name: 'node-1',
      ready: true,
      tags: ['ssd'],
      disks: [
        {
          name: 'disk-1',
          path: '/srv/disk-1',
          storageMaximum: String(20 * TiB),
          storageAvailable: String(4 * TiB),
          storageScheduled: String(16 * TiB),
          storageReservedBytes: String(1024 ** 3),
          tags: ['nvme'],
          scheduledReplicas: [{ name: 'vol-1-r-0', size: String(16 * TiB) }],
        },
      ],
    },
  ]);
});

test('settings lists every setting with its default and whether it is set', async () => {
  const { settings } = await query('{ settings { name value default isSet type } }');
  assert.equal(settings.length, SETTING_NAMES.length);
  const byName = new Map(settings.map((s: { name: string }) => [s.name, s]));
  assert.deepEqual(byName.get('auto-salvage'), {
    name: 'auto-salvage',
    value: 'false',
    default: 'true',
    isSet: true,
    type: 'boolean',
  });
  assert.deepEqual(byName.get('api-anonymous-read'), {
    name: 'api-anonymous-read',
    value: 'false',
    default: 'false',
    isSet: false,
    type: 'boolean',
  });
  assert.equal((await query('{ setting(name: "no-such") { name } }')).setting, null);
  assert.equal((await query('{ setting(name: "default-replica-count") { value } }')).setting.value, '3');
});

test('events are newest first and filter by involved object', async () => {
  const all = (await query('{ events { reason } }')).events.map((e: { reason: string }) => e.reason);
  assert.deepEqual(all, ['Ready', 'Degraded', 'Attached']);
  const ofVolume = await query(
    '{ events(kind: "Volume", name: "vol-1", first: 1) { reason type involvedObject { kind name } } }',
  );
  assert.deepEqual(ofVolume.events, [
    { reason: 'Degraded', type: 'Warning', involvedObject: { kind: 'Volume', name: 'vol-1' } },
  ]);
  const nested = await query('{ volume(name: "vol-1") { events { reason } } }');
  assert.deepEqual(nested.volume.events, [{ reason: 'Degraded' }, { reason: 'Attached' }]);
});

test('instance managers, backups and backup targets', async () => {
  const data = await query(`{
    instanceManagers { name nodeID currentState port engines { name state } }
    backups(volume: "vol-1") { name snapshotName state progress size }
    backupTargets { name url available }
  }`);
  assert.deepEqual(data.instanceManagers, [
    {
      name: 'instance-manager-node-1',
      nodeID: 'node-1',
      currentState: 'running',
      port: 8500,
      engines: [{ name: 'vol-1-e-0', state: 'running' }],
    },
  ]);
  assert.deepEqual(data.backups, [
    { name: 'backup-1', snapshotName: 'snap-a', state: 'COMPLETED', progress: 100, size: String(5 * TiB) },
  ]);
  assert.deepEqual(data.backupTargets, [{ name: 'default', url: 'file:///backups', available: false }]);
});
