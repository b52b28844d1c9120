import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { isPortFree } from '../../../src/dataplane/instance-manager/port-allocator.ts';
import { NBD } from '../../helpers/nbd-client.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { attachNbd, collect, MiB, startInstanceManager, waitFor } from './fixture.ts';

/**
 * Two instance managers (real processes) on 127.0.0.11 and 127.0.0.12, driven over gRPC:
 * a volume with one replica on each node and its engine on node 1, served over NBD. A
 * replica thread on node 2 crashes (test failpoint); the engine goes degraded while both
 * instance managers and their other instances stay up; the replica is started again and
 * rebuilt; everything is deleted and nothing is left behind.
 */

const SIZE = 32 * MiB;
const CRASH_OFFSET = 8 * MiB;

test('a volume over two instance managers survives a replica thread crash, rebuilds, and leaves nothing behind', async (t) => {
  const root = tempDirectory(t);
  const disk1 = path.join(root, 'node-1');
  const disk2 = path.join(root, 'node-2');
  const node1 = await startInstanceManager(t, {
    node: 'node-1',
    address: '127.0.0.11',
    disk: disk1,
    replicaPorts: '24100-24119',
  });
  const node2 = await startInstanceManager(t, {
    node: 'node-2',
    address: '127.0.0.12',
    disk: disk2,
    replicaPorts: '24100-24119',
    env: { HORNBILL_INSTANCE_FAILPOINT: `replica-crash-on-write:vol1-r-2:${CRASH_OFFSET}` },
  });
  const im1 = node1.client;
  const im2 = node2.client;
  const events1 = collect(t, im1.stream('WatchInstances', {}));
  const events2 = collect(t, im2.stream('WatchInstances', { kind: 'replica' }));
  for (const node of [node1, node2]) await node.client.call('DiskStats', {});
  const baselineThreads = [node1.threads(), node2.threads()];

  // ── create: one replica per node, an engine on node 1 with an NBD frontend ──────────
  const replica = (name: string, disk: string) => ({
    name,
    volume_name: 'vol1',
    size_bytes: SIZE,
    disk_path: disk,
    data_directory_name: `${name}-data`,
  });
  const r1 = await im1.call('CreateReplica', replica('vol1-r-1', disk1));
  const r2 = await im2.call('CreateReplica', replica('vol1-r-2', disk2));
  const spare = await im2.call('CreateReplica', { ...replica('vol2-r-1', disk2), volume_name: 'vol2' });
  for (const [view, address] of [
    [r1, '127.0.0.11'],
    [r2, '127.0.0.12'],
  ] as const) {
    assert.equal(view.state, 'running');
    assert.equal(view.kind, 'replica');
    assert.equal(view.address, address);
    assert.ok(view.port >= 24100 && view.port <= 24119, `port ${view.port} in the range`);
  }
  const address1 = `127.0.0.11:${r1.port}`;
  const address2 = `127.0.0.12:${r2.port}`;
  const engine = await im1.call('CreateEngine', {
    name: 'vol1-e-0',
    volume_name: 'vol1',
    size_bytes: SIZE,
    replica_addresses: [address1, address2],
    frontend: 'nbd',
    replica_timeout_ms: 4000,
  });
  assert.equal(engine.state, 'running');
  assert.equal(engine.endpoint, `nbd://127.0.0.11:${node1.nbdPort}/vol1`);
  assert.equal(engine.port, node1.nbdPort);
  assert.deepEqual(engine.engine.replica_mode_map, { [address1]: 'RW', [address2]: 'RW' });
  const engineLogs = collect(t, im1.stream('StreamLogs', { name: 'vol1-e-0', follow: true }));

  // ── I/O through NBD, a snapshot through the engine operations ─────────────────────────
  const nbd = await attachNbd(t, '127.0.0.11', node1.nbdPort, 'vol1');
  const before = patternBytes(1, MiB);
  await nbd.write(0, before);
  assert.equal(await nbd.command(NBD.CMD_FLUSH), 0);
  assert.deepEqual(await nbd.read(0, MiB), before);
  const snapshot = await im1.call('CreateSnapshot', {
    name: 'vol1-e-0',
    snapshot_name: 'snap-1',
    labels: { 'hornbill.io/recurring-job': 'daily' },
  });
  assert.equal(snapshot.name, 'snap-1');
  assert.equal(snapshot.user_created, true);
  assert.deepEqual(snapshot.labels, { 'hornbill.io/recurring-job': 'daily' });
  const after = patternBytes(2, MiB);
  await nbd.write(MiB, after);
  assert.equal(await nbd.command(NBD.CMD_FLUSH), 0);
  const listed = await im1.call('ListSnapshots', { name: 'vol1-e-0' });
  assert.deepEqual(
    listed.snapshots.map((layer: { name: string; is_head: boolean }) => [layer.name, layer.is_head]),
    [
      ['snap-1', false],
      ['volume-head', true],
    ],
  );
  const healthy = await im1.call('GetEngineStatus', { name: 'vol1-e-0' });
  assert.equal(healthy.robustness, 'healthy');
  assert.deepEqual(healthy.replica_mode_map, { [address1]: 'RW', [address2]: 'RW' });
  const info1 = await im1.call('GetReplicaInfo', { name: 'vol1-r-1' });
  const info2 = await im2.call('GetReplicaInfo', { name: 'vol1-r-2' });
  assert.ok(info1.revision_counter >= 2);
  assert.equal(info2.revision_counter, info1.revision_counter);
  assert.ok(info2.chain.some((layer: { name: string }) => layer.name === 'snap-1'));

  // ── the watchers heard of every instance starting, the logs have the records ─────────
  await waitFor('node 1 watch events', () =>
    ['vol1-r-1', 'vol1-e-0'].every((name) =>
      events1.some((event) => event.instance.name === name && event.instance.state === 'running'),
    ),
  );
  await waitFor('node 2 watch events', () =>
    events2.some((event) => event.instance.name === 'vol1-r-2' && event.instance.state === 'running'),
  );
  assert.ok(
    events2.every((event) => event.instance.kind === 'replica'),
    'the kind filter holds',
  );
  const replicaLogs = await readLogs(im1, 'vol1-r-1');
  assert.ok(
    replicaLogs.some(
      (record) => record.source === 'replica' && record.message === 'replica created and serving',
    ),
  );
  assert.ok(
    replicaLogs.some(
      (record) => record.source === 'instance-manager' && record.message === 'replica running',
    ),
  );
  await waitFor(
    'the engine log records',
    () =>
      engineLogs.some((record) => record.message === 'engine serving') &&
      engineLogs.some((record) => record.source === 'engine' && record.message === 'engine started'),
  );

  // ── node 2's replica thread crashes on a write at CRASH_OFFSET ───────────────────────
  const crashData = patternBytes(3, 64 * 1024);
  await nbd.write(CRASH_OFFSET, crashData);
  const failed = await waitFor('vol1-r-2 in error', async () => {
    const view = await im2.call('GetInstance', { name: 'vol1-r-2' });
    return view.state === 'error' ? view : undefined;
  });
  assert.equal(failed.error_code, 'INSTANCE_FAILED');
  assert.match(failed.error_message, /failpoint replica-crash-on-write fired/);
  await waitFor('the engine to go degraded', async () => {
    const status = await im1.call('GetEngineStatus', { name: 'vol1-e-0' });
    return status.robustness === 'degraded' && status.replica_mode_map[address2] === 'ERR';
  });
  await waitFor('a watch event with the ERR replica', () =>
    events1.some(
      (event) =>
        event.instance.name === 'vol1-e-0' &&
        event.instance.engine?.robustness === 'degraded' &&
        event.instance.engine.replica_mode_map[address2] === 'ERR',
    ),
  );
  assert.ok(events2.some((event) => event.instance.name === 'vol1-r-2' && event.instance.state === 'error'));
  // Both instance managers and their other instances are up; the volume serves.
  const node2Info = await im2.call('GetInfo', {});
  assert.equal(node2Info.counters.replicaThreadFailures, 1);
  assert.equal((await im2.call('GetInstance', { name: 'vol2-r-1' })).state, 'running');
  assert.equal((await im2.call('GetReplicaInfo', { name: 'vol2-r-1' })).size_bytes, SIZE);
  assert.equal((await im1.call('GetInstance', { name: 'vol1-r-1' })).state, 'running');
  assert.deepEqual(await nbd.read(0, MiB), before);
  assert.deepEqual(await nbd.read(CRASH_OFFSET, crashData.length), crashData);
  const crashLogs = await readLogs(im2, 'vol1-r-2');
  assert.ok(crashLogs.some((record) => record.level === 'error' && record.message === 'replica thread died'));

  // ── started again and added back: rebuilt, healthy, counters equal ───────────────────
  const restarted = await im2.call('StartReplica', { name: 'vol1-r-2' });
  assert.equal(restarted.state, 'running');
  assert.equal(restarted.port, r2.port, 'the restarted replica keeps its port');
  assert.equal(restarted.restart_count, 1);
  const rebuilt = await im1.call('AddReplica', {
    name: 'vol1-e-0',
    address: address2,
    bandwidth_bytes_per_second: 0,
    wait_for_rebuild: true,
  });
  assert.equal(rebuilt.robustness, 'healthy');
  assert.deepEqual(rebuilt.replica_mode_map, { [address1]: 'RW', [address2]: 'RW' });
  assert.equal(rebuilt.rebuild.state, 'done');
  assert.equal(rebuilt.rebuild.target, address2);
  assert.equal(rebuilt.rebuild.progress, 100);
  const last = patternBytes(4, MiB);
  await nbd.write(2 * MiB, last);
  assert.equal(await nbd.command(NBD.CMD_FLUSH), 0);
  const final1 = await im1.call('GetReplicaInfo', { name: 'vol1-r-1' });
  const final2 = await im2.call('GetReplicaInfo', { name: 'vol1-r-2' });
  assert.equal(final2.revision_counter, final1.revision_counter);
  assert.ok(final2.chain.some((layer: { name: string }) => layer.name === 'snap-1'));
  for (const [offset, data] of [
    [0, before],
    [MiB, after],
    [2 * MiB, last],
    [CRASH_OFFSET, crashData],
  ] as const)
    assert.deepEqual(await nbd.read(offset, data.length), data);
  assert.ok(
    engineLogs.some(
      (record) => record.message === 'replica mode changed' && JSON.parse(record.details_json).mode === 'ERR',
    ),
  );
  assert.ok(engineLogs.some((record) => record.message === 'replica rebuilt'));
  const threadsRunning = [node1.threads(), node2.threads()];
  assert.ok(threadsRunning[0] > baselineThreads[0] && threadsRunning[1] > baselineThreads[1]);

  // ── delete everything: no folder, port or thread left ────────────────────────────────
  nbd.destroy();
  assert.deepEqual(await im1.call('DeleteEngine', { name: 'vol1-e-0' }), {
    found: true,
    data_removed: false,
  });
  for (const [client, name] of [
    [im1, 'vol1-r-1'],
    [im2, 'vol1-r-2'],
    [im2, 'vol2-r-1'],
  ] as const)
    assert.deepEqual(await client.call('DeleteReplica', { name, remove_data: true }), {
      found: true,
      data_removed: true,
    });
  assert.deepEqual((await im1.call('ListInstances', {})).instances, []);
  assert.deepEqual((await im2.call('ListInstances', {})).instances, []);
  assert.deepEqual(fs.readdirSync(path.join(disk1, 'replicas')), []);
  assert.deepEqual(fs.readdirSync(path.join(disk2, 'replicas')), []);
  assert.equal(await isPortFree('127.0.0.11', r1.port), true);
  assert.equal(await isPortFree('127.0.0.12', r2.port), true);
  assert.equal(await isPortFree('127.0.0.12', spare.port), true);
  await assert.rejects(attachNbd(t, '127.0.0.11', node1.nbdPort, 'vol1'), /NBD_OPT_GO refused/);
  await waitFor(
    'the threads to end',
    () => node1.threads() === baselineThreads[0] && node2.threads() === baselineThreads[1],
  );
  const disks = await im2.call('DiskStats', {});
  assert.equal(disks.disks[0].replica_used_bytes, 0);
  assert.ok(disks.disks[0].total_bytes > 0 && disks.disks[0].available_bytes > 0);

  // ── SIGTERM: clean exits ─────────────────────────────────────────────────────────────
  for (const node of [node1, node2]) {
    await node.process.stop();
    assert.equal((await node.process.exited).code, 0, node.process.stderr());
    assert.match(node.process.stderr(), /"message":"instance manager stopped"/);
  }
});

async function readLogs(
  client: Awaited<ReturnType<typeof startInstanceManager>>['client'],
  name: string,
): Promise<{ source: string; message: string; level: string; details_json: string }[]> {
  const stream = client.stream('StreamLogs', { name, follow: false });
  const records: { source: string; message: string; level: string; details_json: string }[] = [];
  for await (const record of stream) records.push(record);
  return records;
}
