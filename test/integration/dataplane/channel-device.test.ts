import assert from 'node:assert/strict';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { ChannelBlockDevice } from '../../../src/dataplane/engine/channel-block-device.ts';
import { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import { ReplicaServer } from '../../../src/dataplane/replica/replica-server.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { silentLogger } from '../../../src/logging.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';

const MiB = 1024 * 1024;

async function replicas(t: TestContext, count: number) {
  const root = tempDirectory(t);
  const addresses = [];
  for (let index = 0; index < count; index++) {
    const store = ReplicaStore.create(path.join(root, `r${index}`), { sizeBytes: 32 * MiB });
    const server = new ReplicaServer({ store, host: '127.0.0.1', port: 0, log: silentLogger });
    addresses.push({ address: await server.listen() });
    defer(t, () => store.close());
    defer(t, () => void server.close());
  }
  return addresses;
}

test('the engine behind the rings answers the same with 0 and 1 worker threads', async (t) => {
  const results: Buffer[] = [];
  for (const workers of [0, 1] as const) {
    const device = await ChannelBlockDevice.open({
      workers,
      name: `vol-${workers}`,
      replicas: await replicas(t, 2),
      replicaTimeoutMs: 8000,
      preferLocalReplica: false,
    });
    defer(t, () => void device.close());
    // Writes larger than one slab chunk (1 MiB) are split; 512-byte writes merge.
    await device.write(0, patternBytes(1, 3 * MiB + 4096));
    await device.write(512, patternBytes(2, 1024), { fua: true });
    await device.unmap(2 * MiB, MiB);
    await device.flush();
    const out = Buffer.alloc(4 * MiB);
    await device.read(0, out);
    results.push(out);
    await assert.rejects(device.read(32 * MiB, Buffer.alloc(4096)), (error) =>
      isHornbillError(error, 'STORE_OUT_OF_RANGE'),
    );
    const runs = await device.mappingStatus(0, 4 * MiB);
    assert.deepEqual(
      runs.map((run) => run.mapped),
      [true, false, true, false],
    );
    await device.close();
  }
  const expected = patternBytes(1, 3 * MiB + 4096);
  patternBytes(2, 1024).copy(expected, 512);
  expected.fill(0, 2 * MiB, 3 * MiB);
  assert.ok(results[0].equals(Buffer.concat([expected, Buffer.alloc(MiB - 4096)])));
  assert.ok(results[1].equals(results[0]));
});

test('an engine worker that dies fails its requests with a code and leaves the frontend thread running', async (t) => {
  const device = await ChannelBlockDevice.open({
    workers: 1,
    name: 'crash',
    replicas: await replicas(t, 2),
    replicaTimeoutMs: 8000,
    preferLocalReplica: false,
  });
  defer(t, () => void device.close());
  await device.write(0, patternBytes(3, MiB));
  const inFlight = Array.from({ length: 16 }, (_, index) =>
    device.write(index * 4096, patternBytes(index, 4096)),
  );
  await device.channel.terminateWorker(0);
  const outcomes = await Promise.allSettled(inFlight);
  for (const outcome of outcomes) {
    if (outcome.status === 'rejected')
      assert.ok(isHornbillError(outcome.reason, 'WORKER_FAILED'), String(outcome.reason));
  }
  await assert.rejects(device.read(0, Buffer.alloc(4096)), (error) => isHornbillError(error));
  assert.equal(device.channel.workerState(0), 'dead');
});

test('the engine control port answers pipelined requests each with its own sequence number', async (t) => {
  const device = await ChannelBlockDevice.open({
    workers: 0,
    name: 'vol-control',
    replicas: await replicas(t, 2),
    replicaTimeoutMs: 8000,
    preferLocalReplica: false,
  });
  defer(t, () => void device.close());
  await device.write(0, patternBytes(3, 4 * MiB));
  const client = new ReplicaClient({
    address: { host: '127.0.0.1', port: device.controlPort },
    log: silentLogger,
    timeoutMs: 10_000,
    pingIntervalMs: Number.MAX_SAFE_INTEGER,
  });
  await client.connect();
  defer(t, () => client.close());
  const taken = await client.control<{ name: string; labels: Record<string, string> }>('snapshot', {
    name: 'snap-a',
    labels: { purpose: 'test' },
  });
  assert.equal(taken.name, 'snap-a');
  assert.deepEqual(taken.labels, { purpose: 'test' });
  // A slow request (hashing 4 MiB on two replicas) followed at once by fast ones: each
  // answer must reach the request it belongs to.
  const [hashes, status, chain] = await Promise.all([
    client.control<unknown>('hashSnapshot', { name: 'snap-a' }),
    client.control<{ robustness: string }>('status'),
    client.control<unknown>('listChain'),
  ]);
  assert.equal(status.robustness, 'healthy');
  assert.ok(!JSON.stringify(hashes).includes('robustness'), 'the hash request got the status answer');
  assert.ok(JSON.stringify(chain).includes('snap-a'));
  assert.ok(!JSON.stringify(chain).includes('robustness'));
  await assert.rejects(client.control('snapshot', { name: 'snap-b', labels: ['x'] }), (error) =>
    isHornbillError(error, 'INVALID_ARGUMENT'),
  );
});
