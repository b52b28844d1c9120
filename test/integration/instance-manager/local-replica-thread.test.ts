import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { attachNbd, MiB, startInstanceManager, waitFor } from './fixture.ts';

/**
 * in_local_replica_thread (data locality strict-local): the instance manager runs the
 * engine in the thread of its replica on the node, which the engine then reaches in memory.
 */

const SIZE = 16 * MiB;
const CRASH_OFFSET = 5 * MiB;

async function node(t: TestContext, env?: Record<string, string>) {
  const disk = path.join(tempDirectory(t), 'disk');
  const im = await startInstanceManager(t, {
    node: 'node-8',
    address: '127.0.0.18',
    disk,
    replicaPorts: '24300-24309',
    ...(env === undefined ? {} : { env }),
  });
  const replica = (name: string) =>
    im.client.call('CreateReplica', {
      name,
      volume_name: 'vol',
      size_bytes: SIZE,
      disk_path: disk,
      data_directory_name: `${name}-data`,
    });
  return { im, replica };
}

function engineSpec(addresses: string[], inLocalReplicaThread: boolean) {
  return {
    name: 'vol-e-0',
    volume_name: 'vol',
    size_bytes: SIZE,
    replica_addresses: addresses,
    frontend: 'nbd',
    workers: 1,
    in_local_replica_thread: inLocalReplicaThread,
  };
}

test('an engine in its local replica thread serves I/O, outlives that replica being stopped, and leaves with its engine', async (t) => {
  const { im, replica } = await node(t);
  const r1 = await replica('vol-r-1');
  const r2 = await replica('vol-r-2');
  const addresses = [`127.0.0.18:${r1.port}`, `127.0.0.18:${r2.port}`];
  const threadsBefore = im.threads();
  const engine = await im.client.call('CreateEngine', engineSpec(addresses, true));
  assert.equal(engine.state, 'running');
  assert.equal(engine.engine.in_local_replica_thread, true);
  assert.equal(engine.engine.lane_host_replica, 'vol-r-1', 'hosted by the first running replica it names');
  assert.equal(im.threads(), threadsBefore, 'no thread of its own');

  const nbd = await attachNbd(t, '127.0.0.18', im.nbdPort, 'vol');
  await Promise.all(
    Array.from({ length: 32 }, (_, index) => nbd.write(index * 131_072, patternBytes(index, 16_384))),
  );
  for (let index = 0; index < 32; index += 5)
    assert.ok((await nbd.read(index * 131_072, 16_384)).equals(patternBytes(index, 16_384)));

  // Stopping the hosting replica: its store closes, the engine goes on over the other one.
  assert.equal((await im.client.call('StopReplica', { name: 'vol-r-1' })).state, 'stopped');
  await nbd.write(0, patternBytes(77, 4096));
  assert.ok((await nbd.read(0, 4096)).equals(patternBytes(77, 4096)));
  const degraded = await waitFor('the engine to report the stopped replica', async () => {
    const view = await im.client.call('GetInstance', { name: 'vol-e-0' });
    return view.engine.replica_mode_map[addresses[0]] === 'ERR' ? view : undefined;
  });
  assert.equal(degraded.state, 'running');
  assert.equal(degraded.engine.replica_mode_map[addresses[1]], 'RW');
  // The replica starts again in a thread of its own, on its port, while the engine runs.
  assert.equal((await im.client.call('StartReplica', { name: 'vol-r-1' })).state, 'running');

  await nbd.disconnect();
  assert.equal((await im.client.call('StopEngine', { name: 'vol-e-0' })).state, 'stopped');
  // The old replica thread ends with the engine's lane: back to one thread per replica.
  await waitFor('the old replica thread to end', () => (im.threads() <= threadsBefore ? true : undefined));
  for (const name of ['vol-r-1', 'vol-r-2'])
    assert.equal((await im.client.call('GetInstance', { name })).state, 'running');

  // Without the flag the engine has a thread of its own.
  await im.client.call('DeleteEngine', { name: 'vol-e-0' });
  const own = await im.client.call('CreateEngine', { ...engineSpec(addresses, false), name: 'vol-e-1' });
  assert.equal(own.engine.lane_host_replica, '');
  const check = await attachNbd(t, '127.0.0.18', im.nbdPort, 'vol');
  assert.ok((await check.read(0, 4096)).equals(patternBytes(77, 4096)));
  await check.disconnect();
});

test('a crash in the hosting thread ends that replica and its engine, and nothing else', async (t) => {
  const { im, replica } = await node(t, {
    HORNBILL_INSTANCE_FAILPOINT: `replica-crash-on-write:vol-r-1:${CRASH_OFFSET}`,
  });
  const r1 = await replica('vol-r-1');
  const r2 = await replica('vol-r-2');
  const other = await im.client.call('CreateReplica', {
    name: 'other-r-1',
    volume_name: 'other',
    size_bytes: SIZE,
    disk_path: r1.replica.disk_path,
    data_directory_name: 'other-r-1-data',
  });
  const addresses = [`127.0.0.18:${r1.port}`, `127.0.0.18:${r2.port}`];
  const engine = await im.client.call('CreateEngine', engineSpec(addresses, true));
  assert.equal(engine.engine.lane_host_replica, 'vol-r-1');
  const nbd = await attachNbd(t, '127.0.0.18', im.nbdPort, 'vol');
  await nbd.write(0, patternBytes(1, 4096));
  await nbd.write(CRASH_OFFSET, patternBytes(2, 4096)).catch(() => {});
  await waitFor('the engine and its host replica to fail', async () => {
    const [e, r] = await Promise.all([
      im.client.call('GetInstance', { name: 'vol-e-0' }),
      im.client.call('GetInstance', { name: 'vol-r-1' }),
    ]);
    return e.state === 'error' && r.state === 'error' ? true : undefined;
  });
  for (const name of ['vol-r-2', 'other-r-1'])
    assert.equal((await im.client.call('GetInstance', { name })).state, 'running', name);
  assert.equal(other.state, 'running');
  // Both start again; the replica recovers its folder like after a crash.
  assert.equal((await im.client.call('StartReplica', { name: 'vol-r-1' })).state, 'running');
  const restarted = await im.client.call('StartEngine', { name: 'vol-e-0' });
  assert.equal(restarted.state, 'running');
  const again = await attachNbd(t, '127.0.0.18', im.nbdPort, 'vol');
  assert.ok((await again.read(0, 4096)).equals(patternBytes(1, 4096)));
});
