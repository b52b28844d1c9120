import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import {
  InstanceManager,
  type InstanceManagerOptions,
} from '../../../../src/dataplane/instance-manager/instance-manager.ts';
import { isPortFree } from '../../../../src/dataplane/instance-manager/port-allocator.ts';
import type { InstanceEvent, InstanceView } from '../../../../src/dataplane/instance-manager/types.ts';
import { checksumSectionBytes, writeChecksumSection } from '../../../../src/dataplane/protocol/payloads.ts';
import { ReplicaClient } from '../../../../src/dataplane/protocol/replica-client.ts';
import { isHornbillError } from '../../../../src/errors.ts';
import { silentLogger } from '../../../../src/logging.ts';
import { NbdTestClient } from '../../../helpers/nbd-client.ts';
import { defer, patternBytes, tempDirectory } from '../../../helpers/temp.ts';

/**
 * The InstanceManager in this process, with real replica threads, engines and an NBD
 * server on 127.0.0.1: lifecycle transitions, idempotency, failure containment, clean-up.
 */

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

async function startManager(t: TestContext, options: Partial<InstanceManagerOptions> = {}) {
  const disk = path.join(tempDirectory(t), 'disk-1');
  const manager = await InstanceManager.start({
    nodeName: 'node-1',
    address: '127.0.0.1',
    disks: [disk],
    iscsiPort: 0,
    nbdPort: 0,
    log: silentLogger,
    engineStatusIntervalMs: 100,
    ...options,
  });
  defer(t, () => void manager.close());
  const events: InstanceEvent[] = [];
  manager.watch((event) => events.push(event));
  return { manager, disk, events };
}

function replicaRequest(disk: string, name: string, extra: Record<string, unknown> = {}) {
  return {
    name,
    volumeName: 'vol-1',
    sizeBytes: SIZE,
    diskPath: disk,
    dataDirectoryName: `${name}-data`,
    ...extra,
  };
}

async function client(t: TestContext, port: number): Promise<ReplicaClient> {
  const replica = new ReplicaClient({
    address: { host: '127.0.0.1', port },
    log: silentLogger,
    timeoutMs: 30_000,
  });
  await replica.connect();
  defer(t, () => replica.close());
  return replica;
}

/** A write straight to a replica's data port, with the checksum section the protocol wants. */
async function write(replica: ReplicaClient, offsetBytes: number, data: Uint8Array): Promise<void> {
  const section = new Uint8Array(checksumSectionBytes(offsetBytes, data.length));
  writeChecksumSection(section, offsetBytes, data);
  await replica.write(offsetBytes, data, section, 0);
}

function statesOf(events: InstanceEvent[], name: string): string[] {
  return events
    .filter((event) => event.instance.name === name)
    .map((event) => `${event.type}:${event.instance.state}`);
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    if (waited > 30_000) assert.fail(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('replicas', () => {
  test('create, stop, start and delete go through the documented states; data survives a restart', async (t) => {
    const { manager, disk, events } = await startManager(t, { replicaPorts: { first: 23100, last: 23119 } });
    const created = await manager.createReplica(replicaRequest(disk, 'r-1'));
    assert.equal(created.state, 'running');
    assert.ok(created.port >= 23100 && created.port <= 23119);
    assert.equal(created.endpoint, `tcp://127.0.0.1:${created.port}`);
    assert.equal(created.replica?.directory, path.join(disk, 'replicas', 'r-1-data'));
    assert.ok(fs.existsSync(path.join(disk, 'replicas', 'r-1-data', 'index.mdb')));

    const data = patternBytes(7, 64 * 1024);
    const replica = await client(t, created.port);
    await write(replica, 0, data);
    await replica.flush();
    replica.close();

    assert.equal((await manager.stopReplica('r-1')).state, 'stopped');
    assert.equal(await isPortFree('127.0.0.1', created.port), true, 'a stopped replica holds no port');
    assert.equal((await manager.stopReplica('r-1')).state, 'stopped', 'stopping twice is fine');
    const restarted = await manager.startReplica('r-1');
    assert.equal(restarted.state, 'running');
    assert.equal(restarted.port, created.port, 'a restarted replica keeps its port');
    assert.equal(restarted.restartCount, 1);
    assert.equal(restarted.replica?.revisionCounterAtStart, 1);
    const info = await manager.replicaInfo('r-1');
    assert.equal(info.revisionCounter, 1);
    const readBack = Buffer.alloc(data.length);
    const again = await client(t, restarted.port);
    await again.read(0, readBack);
    assert.deepEqual(readBack, data);
    again.close();

    assert.deepEqual(await manager.deleteReplica({ name: 'r-1', removeData: true }), {
      found: true,
      dataRemoved: true,
    });
    assert.equal(fs.existsSync(path.join(disk, 'replicas', 'r-1-data')), false);
    assert.equal(await isPortFree('127.0.0.1', created.port), true);
    assert.deepEqual(await manager.deleteReplica({ name: 'r-1' }), { found: false, dataRemoved: false });
    assert.deepEqual(manager.list(), []);
    assert.deepEqual(statesOf(events, 'r-1'), [
      'updated:starting',
      'updated:running',
      'updated:stopping',
      'updated:stopped',
      'updated:starting',
      'updated:running',
      'updated:stopping',
      'updated:stopped',
      'deleted:stopped',
    ]);
    const sequences = events.map((event) => event.instance.updateSequence);
    assert.deepEqual(
      sequences,
      [...sequences].sort((a, b) => a - b),
      'update sequences grow',
    );
    assert.throws(
      () => manager.get('r-1'),
      (error) => isHornbillError(error, 'INSTANCE_NOT_FOUND'),
    );
  });

  test('create is idempotent for the same spec; another spec or a used folder is refused and changes nothing', async (t) => {
    const { manager, disk } = await startManager(t);
    const first = await manager.createReplica(replicaRequest(disk, 'r-1'));
    const second = await manager.createReplica(replicaRequest(disk, 'r-1'));
    assert.equal(second.port, first.port);
    assert.equal(second.restartCount, 0, 'the same spec returns the running instance');
    await assert.rejects(
      manager.createReplica(replicaRequest(disk, 'r-1', { sizeBytes: 2 * SIZE })),
      (error) => isHornbillError(error, 'INSTANCE_EXISTS'),
    );
    await assert.rejects(
      manager.createReplica(replicaRequest(disk, 'r-2', { dataDirectoryName: 'r-1-data' })),
      (error) => isHornbillError(error, 'INSTANCE_CONFLICT'),
    );
    await assert.rejects(
      manager.createEngine({
        name: 'r-1',
        volumeName: 'vol-1',
        sizeBytes: SIZE,
        replicaAddresses: [`127.0.0.1:${first.port}`],
        frontend: 'none',
      }),
      (error) => isHornbillError(error, 'INSTANCE_EXISTS'),
    );
    await assert.rejects(manager.startEngine('r-1'), (error) => isHornbillError(error, 'INSTANCE_NOT_FOUND'));
    await assert.rejects(manager.deleteEngine('r-1'), (error) => isHornbillError(error, 'INVALID_ARGUMENT'));
    assert.deepEqual(
      manager.list().map((view) => [view.name, view.state, view.restartCount]),
      [['r-1', 'running', 0]],
    );
    assert.deepEqual(fs.readdirSync(path.join(disk, 'replicas')), ['r-1-data']);
  });

  test('a replica thread that crashes leaves that replica in error; the others go on; it starts again', async (t) => {
    const crashOffset = 4 * MiB;
    const { manager, disk, events } = await startManager(t, {
      failpoint: `replica-crash-on-write:r-2:${crashOffset}`,
    });
    const one = await manager.createReplica(replicaRequest(disk, 'r-1'));
    const two = await manager.createReplica(replicaRequest(disk, 'r-2'));
    const survivor = await client(t, one.port);
    const victim = await client(t, two.port);
    await write(survivor, 0, patternBytes(1, 4096));
    await write(victim, 0, patternBytes(1, 4096));
    await victim.flush();
    const crashing = write(victim, crashOffset, patternBytes(2, 4096)).catch(() => undefined);
    await until(() => manager.get('r-2').state === 'error', 'r-2 in error');
    await crashing;
    const failed = manager.get('r-2');
    assert.equal(failed.error?.code, 'INSTANCE_FAILED');
    assert.match(failed.error?.message ?? '', /failpoint replica-crash-on-write fired/);
    assert.equal(manager.info().counters.replicaThreadFailures, 1);
    assert.ok(statesOf(events, 'r-2').includes('updated:error'));
    await assert.rejects(manager.replicaInfo('r-2'), (error) =>
      isHornbillError(error, 'INSTANCE_NOT_RUNNING'),
    );

    // The other replica and the instance manager are untouched.
    assert.equal(manager.get('r-1').state, 'running');
    await write(survivor, 4096, patternBytes(3, 4096));
    assert.equal((await manager.replicaInfo('r-1')).revisionCounter, 2);
    assert.ok(
      manager
        .logs('r-2')
        .tail()
        .some((record) => record.message === 'replica thread died'),
    );

    // Started again: the folder reopens (recovering), on the same port; the failpoint fired once only.
    const restarted = await manager.startReplica('r-2');
    assert.equal(restarted.state, 'running');
    assert.equal(restarted.port, two.port);
    assert.equal(restarted.error, undefined);
    assert.ok((await manager.replicaInfo('r-2')).revisionCounter >= 1);
    const after = await client(t, two.port);
    await write(after, crashOffset, patternBytes(4, 4096));
    const back = Buffer.alloc(4096);
    await after.read(crashOffset, back);
    assert.deepEqual(back, patternBytes(4, 4096));
    assert.equal(manager.get('r-2').state, 'running');
  });

  test('a replica thread that stops answering its heartbeat is terminated and in error', async (t) => {
    const { manager, disk } = await startManager(t, {
      failpoint: 'replica-hang-on-write:r-2:0',
      replicaHeartbeatTimeoutMs: 1000,
    });
    const one = await manager.createReplica(replicaRequest(disk, 'r-1'));
    const two = await manager.createReplica(replicaRequest(disk, 'r-2'));
    const victim = await client(t, two.port);
    const hanging = write(victim, 0, patternBytes(1, 4096)).catch(() => undefined);
    await until(() => manager.get('r-2').state === 'error', 'r-2 in error');
    assert.match(
      manager.get('r-2').error?.message ?? '',
      /answered no heartbeat for \d+ ms and was terminated/,
    );
    victim.close();
    await hanging;
    const survivor = await client(t, one.port);
    await write(survivor, 0, patternBytes(2, 4096));
    assert.equal(manager.get('r-1').state, 'running', 'a quiet but healthy replica is not condemned');
    assert.equal((await manager.startReplica('r-2')).state, 'running');
    assert.equal((await manager.replicaInfo('r-2')).revisionCounter, 1, 'the write before the hang was kept');
  });

  test('an unknown failpoint is refused at start', async (t) => {
    await assert.rejects(startManager(t, { failpoint: 'replica-explode:r-1:0' }), (error) =>
      isHornbillError(error, 'INVALID_ARGUMENT'),
    );
  });

  test('a replica that cannot start is in error with the store error; nothing else is touched', async (t) => {
    const { manager, disk } = await startManager(t);
    const folder = path.join(disk, 'replicas', 'foreign');
    fs.mkdirSync(folder, { recursive: true });
    fs.writeFileSync(path.join(folder, 'notes.txt'), 'not a replica');
    await assert.rejects(
      manager.createReplica(replicaRequest(disk, 'r-1', { dataDirectoryName: 'foreign' })),
      (error) => isHornbillError(error, 'STORE_INDEX_MISSING'),
    );
    const view = manager.get('r-1');
    assert.equal(view.state, 'error');
    assert.equal(view.error?.code, 'STORE_INDEX_MISSING');
    assert.equal(manager.info().counters.instanceStartFailures, 1);
    assert.deepEqual(await manager.deleteReplica({ name: 'r-1' }), { found: true, dataRemoved: false });
    assert.deepEqual(fs.readdirSync(folder), ['notes.txt']);
    await assert.rejects(
      manager.deleteReplica({ name: 'gone', removeData: true, diskPath: disk, dataDirectoryName: 'foreign' }),
      (error) => isHornbillError(error, 'INSTANCE_CONFLICT'),
    );
    assert.deepEqual(fs.readdirSync(folder), ['notes.txt'], 'a folder that is not a replica is left alone');
  });

  test('a folder left by an earlier run is reopened by create, and deleted by name after a restart', async (t) => {
    const { manager, disk } = await startManager(t);
    const created = await manager.createReplica(replicaRequest(disk, 'r-1'));
    const replica = await client(t, created.port);
    await write(replica, 0, patternBytes(5, 8192));
    replica.close();
    await manager.close();

    const { manager: next } = await startManager(t, { disks: [disk] });
    const reopened = await next.createReplica(replicaRequest(disk, 'r-1'));
    assert.equal(reopened.replica?.revisionCounterAtStart, 1, 'create opened the existing folder');
    await next.deleteReplica({ name: 'r-1' });
    assert.deepEqual(
      await next.deleteReplica({
        name: 'r-1',
        removeData: true,
        diskPath: disk,
        dataDirectoryName: 'r-1-data',
      }),
      { found: false, dataRemoved: true },
    );
    assert.deepEqual(fs.readdirSync(path.join(disk, 'replicas')), []);
  });
});

describe('engines', () => {
  test('an engine serves its volume on the NBD server; stop takes it off, start brings it back', async (t) => {
    const { manager, disk, events } = await startManager(t);
    const one = await manager.createReplica(replicaRequest(disk, 'r-1'));
    const two = await manager.createReplica(replicaRequest(disk, 'r-2'));
    const spec = {
      name: 'vol-1-e-0',
      volumeName: 'vol-1',
      sizeBytes: SIZE,
      replicaAddresses: [`127.0.0.1:${one.port}`, `127.0.0.1:${two.port}`],
      frontend: 'nbd',
      workers: 0,
    };
    const engine = await manager.createEngine(spec);
    const nbdPort = manager.info().nbd.port;
    assert.equal(engine.state, 'running');
    assert.equal(engine.endpoint, `nbd://127.0.0.1:${nbdPort}/vol-1`);
    assert.deepEqual(engine.engine?.replicaModeMap, {
      [`127.0.0.1:${one.port}`]: 'RW',
      [`127.0.0.1:${two.port}`]: 'RW',
    });
    assert.equal((await manager.createEngine(spec)).restartCount, 0, 'same spec: the running engine');
    await assert.rejects(manager.createEngine({ ...spec, name: 'vol-1-e-1' }), (error) =>
      isHornbillError(error, 'INSTANCE_CONFLICT'),
    );

    const { client: nbd } = await NbdTestClient.attach(nbdPort, 'vol-1');
    defer(t, () => nbd.destroy());
    const data = patternBytes(11, 256 * 1024);
    await nbd.write(MiB, data);
    assert.deepEqual(await nbd.read(MiB, data.length), data);
    await manager.createSnapshot('vol-1-e-0', 'snap-1');
    assert.ok((await manager.listSnapshots('vol-1-e-0')).some((layer) => layer.name === 'snap-1'));

    // One replica stops: the engine goes degraded, and watchers hear of it.
    await manager.stopReplica('r-2');
    await nbd.write(2 * MiB, data);
    await until(
      () => manager.get('vol-1-e-0').engine?.robustness === 'degraded',
      'the engine to report degraded',
    );
    assert.equal(manager.get('vol-1-e-0').engine?.replicaModeMap[`127.0.0.1:${two.port}`], 'ERR');
    assert.ok(
      events.some(
        (event) => event.instance.name === 'vol-1-e-0' && event.instance.engine?.robustness === 'degraded',
      ),
    );

    await manager.stopEngine('vol-1-e-0');
    await assert.rejects(NbdTestClient.attach(nbdPort, 'vol-1'), /refused/);
    await assert.rejects(manager.engineStatus('vol-1-e-0'), (error) =>
      isHornbillError(error, 'INSTANCE_NOT_RUNNING'),
    );
    await manager.startReplica('r-2');
    const restarted = await manager.startEngine('vol-1-e-0');
    assert.equal(restarted.state, 'running');
    const status = await manager.engineStatus('vol-1-e-0');
    assert.equal(status.robustness, 'degraded', 'r-2 is behind and waits for a rebuild');
    await manager.addReplica('vol-1-e-0', { address: `127.0.0.1:${two.port}`, wait: true });
    assert.equal((await manager.engineStatus('vol-1-e-0')).robustness, 'healthy');
    const { client: again } = await NbdTestClient.attach(nbdPort, 'vol-1');
    defer(t, () => again.destroy());
    assert.deepEqual(await again.read(2 * MiB, data.length), data);
    again.destroy();

    // A replica taken out of the volume stays out when the engine starts again.
    await manager.removeReplica('vol-1-e-0', `127.0.0.1:${two.port}`);
    assert.deepEqual(manager.get('vol-1-e-0').engine?.replicaAddresses, [`127.0.0.1:${one.port}`]);
    await manager.stopEngine('vol-1-e-0');
    await manager.startEngine('vol-1-e-0');
    const single = await manager.engineStatus('vol-1-e-0');
    assert.deepEqual(
      single.replicas.map((replica) => [replica.address, replica.mode]),
      [[`127.0.0.1:${one.port}`, 'RW']],
    );
    assert.equal(single.robustness, 'healthy');

    assert.deepEqual(await manager.deleteEngine('vol-1-e-0'), { found: true, dataRemoved: false });
    await assert.rejects(NbdTestClient.attach(nbdPort, 'vol-1'), /refused/);
    assert.deepEqual(
      manager.list('engine').map((view) => view.name),
      [],
    );
  });

  test('an engine whose thread dies is in error and off its frontend; its replicas go on; it starts again', async (t) => {
    const { manager, disk } = await startManager(t);
    const replica = await manager.createReplica(replicaRequest(disk, 'r-1'));
    await manager.createEngine({
      name: 'vol-1-e-0',
      volumeName: 'vol-1',
      sizeBytes: SIZE,
      replicaAddresses: [`127.0.0.1:${replica.port}`],
      frontend: 'nbd',
      workers: 1,
    });
    const nbdPort = manager.info().nbd.port;
    const { client: nbd } = await NbdTestClient.attach(nbdPort, 'vol-1');
    defer(t, () => nbd.destroy());
    await nbd.write(0, patternBytes(21, 65536));
    assert.equal(await nbd.command(3), 0, 'flush');
    // The engine's worker thread ends as a crash would (the test reaches into the device).
    const device = Reflect.get(Reflect.get(manager, 'instances').get('vol-1-e-0'), 'device');
    await device.channel.terminateWorker(0);
    await until(() => manager.get('vol-1-e-0').state === 'error', 'the engine in error');
    assert.equal(manager.get('vol-1-e-0').error?.code, 'INSTANCE_FAILED');
    assert.equal(manager.info().counters.engineFailures, 1);
    await until(() => !manager.info().counters.nbdConnections, 'the NBD session to end');
    await assert.rejects(NbdTestClient.attach(nbdPort, 'vol-1'), /refused/);
    assert.equal(manager.get('r-1').state, 'running');
    assert.equal((await manager.replicaInfo('r-1')).revisionCounter, 1);

    assert.equal((await manager.startEngine('vol-1-e-0')).state, 'running');
    const { client: again } = await NbdTestClient.attach(nbdPort, 'vol-1');
    defer(t, () => again.destroy());
    assert.deepEqual(await again.read(0, 65536), patternBytes(21, 65536));
  });

  test('an engine whose replicas are all unreachable fails to start with DEVICE_NOT_READY', async (t) => {
    const { manager } = await startManager(t);
    const free = 23190;
    await assert.rejects(
      manager.createEngine({
        name: 'vol-9-e-0',
        volumeName: 'vol-9',
        sizeBytes: SIZE,
        replicaAddresses: [`127.0.0.1:${free}`],
        frontend: 'none',
        workers: 0,
        replicaTimeoutMs: 1000,
      }),
      (error) => isHornbillError(error, 'DEVICE_NOT_READY'),
    );
    const view: InstanceView = manager.get('vol-9-e-0');
    assert.equal(view.state, 'error');
    assert.equal(view.endpoint, '');
  });
});

test('close stops engines and replicas; afterwards nothing new is taken', async (t) => {
  const { manager, disk } = await startManager(t);
  const replica = await manager.createReplica(replicaRequest(disk, 'r-1'));
  await manager.createEngine({
    name: 'vol-1-e-0',
    volumeName: 'vol-1',
    sizeBytes: SIZE,
    replicaAddresses: [`127.0.0.1:${replica.port}`],
    frontend: 'none',
    workers: 1,
  });
  const order: string[] = [];
  manager.watch((event) => order.push(`${event.instance.name}:${event.instance.state}`));
  await manager.close();
  assert.deepEqual(order, ['vol-1-e-0:stopping', 'vol-1-e-0:stopped', 'r-1:stopping', 'r-1:stopped']);
  assert.equal(await isPortFree('127.0.0.1', replica.port), true);
  await assert.rejects(manager.createReplica(replicaRequest(disk, 'r-2')), (error) =>
    isHornbillError(error, 'INSTANCE_MANAGER_CLOSED'),
  );
});
