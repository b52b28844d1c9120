import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { ERROR_CODE_KEY } from '../../../src/dataplane/instance-manager/grpc-errors.ts';
import { IscsiInitiator } from '../../../src/dataplane/iscsi/initiator/initiator.ts';
import { type ErrorCode, HornbillError } from '../../../src/errors.ts';
import { ReplicaStore } from '../../../src/storage/replica-store.ts';
import { startHornbill } from '../../helpers/processes.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { MiB, startInstanceManager } from './fixture.ts';

/**
 * One instance manager process on 127.0.0.13: hostile and malformed requests, idempotent
 * create/start/stop/delete with their statuses, an iSCSI engine, and SIGTERM with
 * instances running.
 */

const SIZE = 16 * MiB;
const SERVICE = '/hornbill.instancemanager.v1.InstanceManager';

async function refused(
  call: Promise<unknown>,
  grpcStatus: status,
  code: ErrorCode,
  what: string,
): Promise<void> {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof HornbillError, `${what}: ${String(error)}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    assert.equal(error.details.grpcStatus, grpcStatus, `${what}: gRPC status`);
    return true;
  });
}

/** A unary call with raw request bytes (what a broken or hostile client sends). */
function rawCall(address: string, method: string, bytes: Buffer): Promise<ServiceError> {
  const client = new Client(address, credentials.createInsecure());
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `${SERVICE}/${method}`,
      (value: Buffer) => value,
      (value: Buffer) => value,
      bytes,
      (error) => {
        client.close();
        if (error === null) reject(new Error(`${method} accepted ${bytes.toString('hex')}`));
        else resolve(error);
      },
    );
  });
}

test('malformed and hostile requests are INVALID_ARGUMENT and change nothing', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'disk');
  const node = await startInstanceManager(t, { node: 'node-3', address: '127.0.0.13', disk });
  const im = node.client;
  const replica = {
    name: 'vol-r-1',
    volume_name: 'vol',
    size_bytes: SIZE,
    disk_path: disk,
    data_directory_name: 'vol-r-1',
  };
  const engine = {
    name: 'vol-e-0',
    volume_name: 'vol',
    size_bytes: SIZE,
    replica_addresses: ['127.0.0.13:10000'],
    frontend: 'nbd',
  };
  const bad: [string, Record<string, unknown>, ErrorCode][] = [
    ['CreateReplica', {}, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, name: '' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, name: '../../etc' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, name: 'x'.repeat(100_000) }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, volume_name: 'Vol_1' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, data_directory_name: '../../etc' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, data_directory_name: '..' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, data_directory_name: 'a/b' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, disk_path: '/etc' }, 'INSTANCE_DISK_UNKNOWN'],
    ['CreateReplica', { ...replica, disk_path: `${disk}/../../etc` }, 'INSTANCE_DISK_UNKNOWN'],
    ['CreateReplica', { ...replica, disk_path: 'relative' }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, size_bytes: 0 }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, size_bytes: 4097 }, 'INVALID_ARGUMENT'],
    ['CreateReplica', { ...replica, size_bytes: 2 ** 60 }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, frontend: 'floppy' }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, frontend: '' }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, replica_addresses: [] }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, replica_addresses: ['no-port'] }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, replica_addresses: ['127.0.0.13:99999'] }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, workers: 7 }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, replica_timeout_ms: 5 }, 'INVALID_ARGUMENT'],
    ['CreateEngine', { ...engine, volume_name: 'a'.repeat(64) }, 'INVALID_ARGUMENT'],
    ['GetInstance', { name: '../../etc/passwd' }, 'INVALID_ARGUMENT'],
    [
      'DeleteReplica',
      { name: 'x', remove_data: true, disk_path: disk, data_directory_name: '../../etc' },
      'INVALID_ARGUMENT',
    ],
    [
      'DeleteReplica',
      { name: 'x', remove_data: true, disk_path: '/', data_directory_name: 'etc' },
      'INSTANCE_DISK_UNKNOWN',
    ],
    ['CreateSnapshot', { name: 'vol-e-0', snapshot_name: '../x' }, 'INVALID_ARGUMENT'],
    ['AddReplica', { name: 'vol-e-0', address: 'x' }, 'INVALID_ARGUMENT'],
    ['ExpandEngine', { name: 'vol-e-0', size_bytes: 1 }, 'INVALID_ARGUMENT'],
    ['ListInstances', { kind: 'pod' }, 'INVALID_ARGUMENT'],
    ['DiskStats', { disk_paths: ['/etc'] }, 'INSTANCE_DISK_UNKNOWN'],
  ];
  for (const [method, request, code] of bad)
    await refused(
      im.call(method, request),
      status.INVALID_ARGUMENT,
      code,
      `${method} ${JSON.stringify(request).slice(0, 120)}`,
    );

  // Streams refuse bad requests the same way.
  for (const [method, request] of [
    ['StreamLogs', { name: '../etc' }],
    ['WatchInstances', { kind: 'pod' }],
  ] as const) {
    const error = await new Promise<ServiceError>((resolve) => {
      const stream = im.stream(method, request);
      stream.on('data', () => {});
      stream.on('error', resolve);
    });
    assert.equal(error.code, status.INVALID_ARGUMENT, method);
    assert.deepEqual(error.metadata.get(ERROR_CODE_KEY), ['INVALID_ARGUMENT'], method);
  }

  // Bytes that are not the message the method takes.
  const address = `127.0.0.13:${node.grpcPort}`;
  for (const [what, bytes] of [
    ['a name sent as a number (decodes to no name)', Buffer.from([0x08, 0x2a])],
    ['a truncated varint', Buffer.from([0x18, 0xff])],
    ['a size sent as bytes', Buffer.from([0x1a, 0x02, 0x01, 0x02])],
    ['a field tag cut short', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
  ] as const) {
    const error = await rawCall(address, 'CreateReplica', bytes);
    assert.equal(error.code, status.INVALID_ARGUMENT, what);
    assert.deepEqual(error.metadata.get(ERROR_CODE_KEY), ['INVALID_ARGUMENT'], what);
  }

  // Nothing changed: no instance, no folder, no file outside the disk.
  assert.deepEqual((await im.call('ListInstances', {})).instances, []);
  assert.deepEqual(fs.readdirSync(path.join(disk, 'replicas')), []);
  assert.deepEqual(fs.readdirSync(root).sort(), ['disk']);
  const info = await im.call('GetInfo', {});
  assert.equal(info.counters.replicasCreated, 0);
  assert.equal(info.counters.enginesCreated, 0);
  assert.ok(info.counters['grpcStatus.INVALID_ARGUMENT'] >= bad.length);
  assert.equal(node.process.child.exitCode, null, 'the instance manager is still running');
});

test('create, start, stop and delete are idempotent, with the status a controller can act on', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'disk');
  const node = await startInstanceManager(t, {
    node: 'node-3',
    address: '127.0.0.13',
    disk,
    replicaPorts: '24200-24209',
  });
  const im = node.client;
  const spec = {
    name: 'vol-r-1',
    volume_name: 'vol',
    size_bytes: SIZE,
    disk_path: disk,
    data_directory_name: 'vol-r-1',
  };
  const created = await im.call('CreateReplica', spec);
  assert.equal((await im.call('CreateReplica', spec)).port, created.port);
  await refused(
    im.call('CreateReplica', { ...spec, size_bytes: 2 * SIZE }),
    status.ALREADY_EXISTS,
    'INSTANCE_EXISTS',
    'other size',
  );
  await refused(
    im.call('CreateReplica', { ...spec, name: 'vol-r-2' }),
    status.FAILED_PRECONDITION,
    'INSTANCE_CONFLICT',
    'same folder',
  );
  await refused(
    im.call('GetInstance', { name: 'missing' }),
    status.NOT_FOUND,
    'INSTANCE_NOT_FOUND',
    'missing',
  );
  await refused(
    im.call('GetEngineStatus', { name: 'vol-r-1' }),
    status.NOT_FOUND,
    'INSTANCE_NOT_FOUND',
    'wrong kind',
  );

  const engineSpec = {
    name: 'vol-e-0',
    volume_name: 'vol',
    size_bytes: SIZE,
    replica_addresses: [`127.0.0.13:${created.port}`],
    frontend: 'iscsi',
    workers: 0,
  };
  const engine = await im.call('CreateEngine', engineSpec);
  assert.equal(engine.endpoint, `iscsi://127.0.0.13:${node.iscsiPort}/iqn.2026-11.io.hornbill:vol/0`);
  assert.equal(engine.engine.workers, 0);
  assert.equal((await im.call('CreateEngine', engineSpec)).restart_count, 0);
  await refused(
    im.call('CreateEngine', { ...engineSpec, frontend: 'nbd' }),
    status.ALREADY_EXISTS,
    'INSTANCE_EXISTS',
    'engine with another frontend',
  );
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.13',
    port: node.iscsiPort,
    targetName: 'iqn.2026-11.io.hornbill:vol',
  });
  const data = patternBytes(9, 128 * 1024);
  await initiator.write(2048, data);
  const readBack = Buffer.alloc(data.length);
  await initiator.read(2048, readBack);
  assert.deepEqual(readBack, data);
  await initiator.logout();

  assert.equal((await im.call('StopEngine', { name: 'vol-e-0' })).state, 'stopped');
  assert.equal((await im.call('StopEngine', { name: 'vol-e-0' })).state, 'stopped');
  await refused(
    im.call('CreateSnapshot', { name: 'vol-e-0', snapshot_name: 's' }),
    status.FAILED_PRECONDITION,
    'INSTANCE_NOT_RUNNING',
    'snapshot of a stopped engine',
  );
  assert.equal((await im.call('StartEngine', { name: 'vol-e-0' })).state, 'running');
  assert.equal((await im.call('StartEngine', { name: 'vol-e-0' })).state, 'running');
  await im.call('CreateSnapshot', { name: 'vol-e-0', snapshot_name: 's' });
  await refused(
    im.call('CreateSnapshot', { name: 'vol-e-0', snapshot_name: 's' }),
    status.ALREADY_EXISTS,
    'STORE_SNAPSHOT_EXISTS',
    'snapshot twice',
  );
  await refused(
    im.call('DeleteSnapshot', { name: 'vol-e-0', snapshot_name: 'nope' }),
    status.NOT_FOUND,
    'STORE_SNAPSHOT_NOT_FOUND',
    'missing snapshot',
  );
  const hash = await im.call('HashSnapshot', { name: 'vol-e-0', snapshot_name: 's' });
  assert.match(hash.hash, /^[0-9a-f]+$/);
  const deleted = await im.call('DeleteSnapshot', { name: 'vol-e-0', snapshot_name: 's' });
  assert.equal(deleted.robustness, 'healthy');
  const purged = await im.call('PurgeSnapshots', { name: 'vol-e-0' });
  assert.equal(purged.state, 'done');
  assert.equal(purged.purged_layers, 1);
  const expanded = await im.call('ExpandEngine', { name: 'vol-e-0', size_bytes: 2 * SIZE });
  assert.equal(expanded.size_bytes, 2 * SIZE);
  assert.equal(expanded.is_expanding, false);

  assert.deepEqual(await im.call('DeleteEngine', { name: 'vol-e-0' }), { found: true, data_removed: false });
  assert.deepEqual(await im.call('DeleteEngine', { name: 'vol-e-0' }), { found: false, data_removed: false });
  assert.equal((await im.call('StopReplica', { name: 'vol-r-1' })).state, 'stopped');
  assert.deepEqual(await im.call('DeleteReplica', { name: 'vol-r-1', remove_data: true }), {
    found: true,
    data_removed: true,
  });
  assert.deepEqual(await im.call('DeleteReplica', { name: 'vol-r-1', remove_data: true }), {
    found: false,
    data_removed: false,
  });
  assert.deepEqual(fs.readdirSync(path.join(disk, 'replicas')), []);
});

test('SIGTERM stops engines and replicas cleanly; the replica folder reopens with its data', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'disk');
  const node = await startInstanceManager(t, { node: 'node-3', address: '127.0.0.13', disk });
  const im = node.client;
  const replica = await im.call('CreateReplica', {
    name: 'vol-r-1',
    volume_name: 'vol',
    size_bytes: SIZE,
    disk_path: disk,
    data_directory_name: 'vol-r-1',
  });
  await im.call('CreateEngine', {
    name: 'vol-e-0',
    volume_name: 'vol',
    size_bytes: SIZE,
    replica_addresses: [`127.0.0.13:${replica.port}`],
    frontend: 'iscsi',
  });
  const initiator = await IscsiInitiator.connect({
    host: '127.0.0.13',
    port: node.iscsiPort,
    targetName: 'iqn.2026-11.io.hornbill:vol',
  });
  const data = patternBytes(12, 64 * 1024);
  await initiator.write(0, data);
  await initiator.logout();

  await node.process.stop();
  const exit = await node.process.exited;
  assert.equal(exit.code, 0, node.process.stderr());
  const records = node.process
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line));
  const order = records
    .filter((record) =>
      ['engine stopped', 'replica stopped', 'instance manager stopped'].includes(record.message),
    )
    .map((record) => `${record.message}/${record.source ?? ''}`);
  assert.deepEqual(order, [
    'engine stopped/instance-manager',
    'replica stopped/replica',
    'replica stopped/instance-manager',
    'instance manager stopped/',
  ]);
  const store = ReplicaStore.open(path.join(disk, 'replicas', 'vol-r-1'));
  const stored = Buffer.alloc(data.length);
  try {
    store.read(0, stored);
  } finally {
    store.close();
  }
  assert.deepEqual(stored, data);
});

test('a bad command line exits 2; a gRPC port in use exits 1 with INSTANCE_MANAGER_LISTEN_FAILED', async (t) => {
  const root = tempDirectory(t);
  const bin = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');
  const usage = spawnSync(
    process.execPath,
    [bin, 'instance-manager', '--node', 'n', '--address', 'nowhere'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(usage.status, 2, usage.stderr);
  assert.match(usage.stderr, /CLI_USAGE/);
  assert.match(usage.stderr, /--address must be an IPv4 address/);

  const first = await startInstanceManager(t, {
    node: 'node-3',
    address: '127.0.0.13',
    disk: path.join(root, 'a'),
  });
  await assert.rejects(
    startHornbill(t, [
      'instance-manager',
      '--node',
      'node-4',
      '--address',
      '127.0.0.13',
      '--grpc-port',
      String(first.grpcPort),
      '--iscsi-port',
      '0',
      '--nbd-port',
      '0',
      '--metrics-port',
      '0',
      '--disk',
      path.join(root, 'b'),
    ]),
    /exited \(1\) before it was ready:[\s\S]*INSTANCE_MANAGER_LISTEN_FAILED/,
  );
  assert.equal((await first.client.call('GetInfo', {})).node_name, 'node-3', 'the first one is unharmed');
});
