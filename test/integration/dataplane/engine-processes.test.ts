import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import type { ReplicaClient } from '../../../src/dataplane/protocol/replica-client.ts';
import type { LayerInfo } from '../../../src/storage/replica-store.ts';
import { NBD, NbdTestClient } from '../../helpers/nbd-client.ts';
import { controlClient, type HornbillProcess, startHornbill } from '../../helpers/processes.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { VerifyingLoad } from './verifying-load.ts';

/**
 * Issue 3's must-holds with real processes on 127.0.0.1: `hornbill replica` processes, one
 * `hornbill engine` process with an NBD frontend and a control port, an NBD client doing a
 * verifying load, replicas killed with SIGKILL.
 */

const MiB = 1024 * 1024;
const SIZE = '64Mi';
const SIZE_BYTES = 64 * MiB;

interface Cluster {
  root: string;
  replicas: (HornbillProcess | undefined)[];
  ports: number[];
  engine: HornbillProcess;
  control: ReplicaClient;
  nbd: NbdTestClient;
}

async function startReplica(t: TestContext, root: string, index: number, port = 0): Promise<HornbillProcess> {
  return startHornbill(t, [
    'replica',
    '--dir',
    path.join(root, `r${index}`),
    '--size',
    SIZE,
    '--listen',
    `127.0.0.1:${port}`,
  ]);
}

async function startEngine(
  t: TestContext,
  ports: number[],
): Promise<{ engine: HornbillProcess; control: ReplicaClient; nbd: NbdTestClient }> {
  const engine = await startHornbill(t, [
    'engine',
    '--name',
    'vol1',
    '--size',
    SIZE,
    ...ports.flatMap((port) => ['--replica', `127.0.0.1:${port}`]),
    '--frontend',
    'nbd',
    '--listen',
    '127.0.0.1:0',
    '--control',
    '127.0.0.1:0',
    '--replica-timeout',
    '4s',
  ]);
  const control = await controlClient(t, engine.ready.control.port);
  const { client: nbd } = await NbdTestClient.attach(engine.ready.nbd.port, 'vol1');
  defer(t, () => nbd.destroy());
  return { engine, control, nbd };
}

async function startCluster(t: TestContext, count = 3): Promise<Cluster> {
  const root = tempDirectory(t);
  const replicas = [];
  for (let index = 0; index < count; index++) replicas.push(await startReplica(t, root, index));
  const ports = replicas.map((replica) => replica.ready.port as number);
  return { root, replicas, ports, ...(await startEngine(t, ports)) };
}

interface EngineStatus {
  robustness: string;
  replicas: { address: string; mode: string }[];
}

async function status(cluster: Cluster): Promise<EngineStatus> {
  return cluster.control.control<EngineStatus>('status');
}

/** Hash of every snapshot, per replica (straight from each replica's data port). */
async function layerHashes(t: TestContext, ports: number[]): Promise<Map<string, string>[]> {
  const result = [];
  for (const port of ports) {
    const replica = await controlClient(t, port);
    const hashes = new Map<string, string>();
    for (const layer of await replica.control<LayerInfo[]>('listChain')) {
      if (layer.isHead) continue;
      hashes.set(
        layer.name,
        (await replica.control<{ hash: string }>('hashSnapshot', { name: layer.name })).hash,
      );
    }
    result.push(hashes);
    replica.close();
  }
  return result;
}

describe('engine and replicas as processes', { concurrency: false }, () => {
  test('a replica killed under a verifying load: the volume serves on degraded, a replacement rebuilds, all copies end identical', async (t) => {
    const cluster = await startCluster(t);
    const load = new VerifyingLoad(cluster.nbd, SIZE_BYTES);
    load.start();
    await load.runFor(400);
    await cluster.replicas[1]!.kill();
    await load.runFor(400);
    const degraded = await status(cluster);
    assert.equal(degraded.robustness, 'degraded');
    assert.deepEqual(
      degraded.replicas.map((replica) => replica.mode),
      ['RW', 'ERR', 'RW'],
    );
    const replacement = await startReplica(t, cluster.root, 3);
    const progress = await cluster.control.control<{ state: string; transferredBytes: number }>(
      'addReplica',
      {
        host: '127.0.0.1',
        port: replacement.ready.port,
      },
    );
    assert.equal(progress.state, 'done');
    await cluster.control.control('removeReplica', { host: '127.0.0.1', port: cluster.ports[1] });
    await load.runFor(400);
    const stats = await load.stop();
    assert.deepEqual(stats.errors, []);
    assert.deepEqual(stats.mismatches, []);
    assert.ok(stats.writes > 500 && stats.reads > 500, JSON.stringify(stats));
    const healthy = await status(cluster);
    assert.equal(healthy.robustness, 'healthy');
    await cluster.control.control('snapshot', { name: 'final' });
    const hashes = await layerHashes(t, [cluster.ports[0], cluster.ports[2], replacement.ready.port]);
    assert.ok(hashes[0].has('final') && hashes[0].size >= 2);
    assert.deepEqual(hashes[1], hashes[0]);
    assert.deepEqual(hashes[2], hashes[0]);
    t.diagnostic(
      `load: ${stats.writes} writes, ${stats.reads} reads; rebuild sent ${progress.transferredBytes} bytes`,
    );
  });

  test('a replica that was away re-syncs only what changed', async (t) => {
    const cluster = await startCluster(t);
    for (let offset = 0; offset < 32 * MiB; offset += MiB)
      await cluster.nbd.write(offset, patternBytes(offset, MiB));
    await cluster.replicas[2]!.kill();
    // 1 % of the written blocks change while it is away.
    for (let index = 0; index < 82; index++)
      await cluster.nbd.write(((index * 101) % 8192) * 4096, patternBytes(9999 + index, 4096));
    const back = await startReplica(t, cluster.root, 2, cluster.ports[2]);
    const progress = await cluster.control.control<{
      state: string;
      transferredBytes: number;
      totalBytes: number;
    }>('addReplica', { host: '127.0.0.1', port: back.ready.port });
    assert.equal(progress.state, 'done');
    t.diagnostic(`re-sync sent ${progress.transferredBytes} of ${progress.totalBytes} bytes examined`);
    assert.ok(progress.transferredBytes <= 82 * 4096 + 64 * 1024, `sent ${progress.transferredBytes} bytes`);
    assert.equal((await status(cluster)).robustness, 'healthy');
    await cluster.control.control('snapshot', { name: 'check' });
    const hashes = await layerHashes(t, cluster.ports);
    assert.deepEqual(hashes[1], hashes[0]);
    assert.deepEqual(hashes[2], hashes[0]);
  });

  test('with every replica gone I/O fails with an error; restarted, the volume holds the last flushed data', async (t) => {
    const cluster = await startCluster(t);
    const flushed = patternBytes(77, 4 * MiB);
    await cluster.nbd.write(0, flushed);
    await cluster.nbd.command(NBD.CMD_FLUSH);
    for (const replica of cluster.replicas) await replica!.kill();
    await assert.rejects(cluster.nbd.write(8 * MiB, patternBytes(78, 4096)), /NBD error 5\b/);
    await assert.rejects(cluster.nbd.read(0, 4096), /NBD error 5\b/);
    assert.equal((await status(cluster)).robustness, 'faulted');
    await cluster.engine.stop();
    cluster.nbd.destroy();
    for (const [index, port] of cluster.ports.entries())
      cluster.replicas[index] = await startReplica(t, cluster.root, index, port);
    const restarted = await startEngine(t, cluster.ports);
    assert.equal((await restarted.control.control<EngineStatus>('status')).robustness, 'healthy');
    assert.ok((await restarted.nbd.read(0, 4 * MiB)).equals(flushed));
  });

  test('a corrupted block on one replica is served from another and repaired', async (t) => {
    const cluster = await startCluster(t);
    const data = patternBytes(5, MiB);
    await cluster.nbd.write(0, data);
    await cluster.nbd.command(NBD.CMD_FLUSH);
    // Damage block 10 in replica 0's head file, behind the replica's back.
    const layers = fs.readdirSync(path.join(cluster.root, 'r0', 'layers')).sort();
    const head = path.join(cluster.root, 'r0', 'layers', layers[layers.length - 1]);
    const fd = fs.openSync(head, 'r+');
    fs.writeSync(fd, Buffer.from([0xff, 0x00, 0xff]), 0, 3, 10 * 4096 + 100);
    fs.closeSync(fd);
    // Reads rotate over the replicas: several reads reach the damaged copy.
    for (let attempt = 0; attempt < 6; attempt++) {
      assert.ok((await cluster.nbd.read(10 * 4096, 4096)).equals(data.subarray(10 * 4096, 11 * 4096)));
    }
    const replica = await controlClient(t, cluster.ports[0]);
    const report = await replica.control<{ badBlockCount: number }>('verify');
    assert.equal(report.badBlockCount, 0, 'the damaged block was repaired');
    assert.equal((await status(cluster)).robustness, 'healthy');
    assert.match(cluster.engine.stderr(), /repaired bad blocks from another replica/);
  });

  test('revert: refused while a rebuild runs; then every replica reverts to the snapshot', async (t) => {
    const cluster = await startCluster(t, 2);
    const before = patternBytes(41, MiB);
    await cluster.nbd.write(0, before);
    await cluster.control.control('snapshot', { name: 'base' });
    for (let offset = 0; offset < 8 * MiB; offset += MiB)
      await cluster.nbd.write(offset, patternBytes(100 + offset / MiB, MiB));
    // A new replica rebuilt slowly (about 9 MiB at 2 MiB/s), on a control connection of its own.
    const added = await startReplica(t, cluster.root, 2);
    const rebuildControl = await controlClient(t, cluster.engine.ready.control.port);
    const rebuild = rebuildControl.control<{ state: string }>('addReplica', {
      host: '127.0.0.1',
      port: added.ready.port,
      bandwidthBytesPerSecond: 2 * MiB,
    });
    for (;;) {
      const rebuilding = await cluster.control.control<{ rebuild: { state: string } | null }>('status');
      if (rebuilding.rebuild !== null && rebuilding.rebuild.state !== 'done') break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await assert.rejects(cluster.control.control('revert', { name: 'base' }), {
      code: 'ENGINE_REBUILD_BUSY',
    });
    assert.equal((await rebuild).state, 'done');
    await assert.rejects(cluster.control.control('revert', { name: 'missing' }), {
      code: 'STORE_SNAPSHOT_NOT_FOUND',
    });
    await cluster.control.control('revert', { name: 'base' });
    const reverted = await status(cluster);
    assert.equal(reverted.robustness, 'healthy');
    assert.equal(reverted.replicas.length, 3);
    for (const port of [...cluster.ports, added.ready.port as number]) {
      const replica = await controlClient(t, port);
      const head = (await replica.control<LayerInfo[]>('listChain')).find((layer) => layer.isHead);
      assert.equal(head?.parent, 'base', `replica ${port}: the head sits on the snapshot`);
      replica.close();
    }
    // Reads rotate over the replicas: every one answers with the snapshot's data.
    for (let round = 0; round < 3; round++) {
      assert.ok((await cluster.nbd.read(0, MiB)).equals(before), `round ${round}`);
      assert.ok((await cluster.nbd.read(4 * MiB, MiB)).equals(Buffer.alloc(MiB)), `round ${round}: zeros`);
    }
  });
});
