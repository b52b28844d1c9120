import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseInstanceManagerFlags } from '../../../../src/cli/instance-manager.ts';
import {
  dataDirectoryName,
  diskPath,
  engineSpec,
  instanceName,
  kindFilter,
  parseReplicaAddress,
  replicaDirectory,
  replicaSpec,
  replicaTimeoutMs,
  sizeBytes,
  snapshotName,
  volumeName,
} from '../../../../src/dataplane/instance-manager/validation.ts';
import { type ErrorCode, HornbillError } from '../../../../src/errors.ts';

const MiB = 1024 * 1024;
const DISKS = ['/var/lib/hornbill/disk-1', '/mnt/disk-2'];

/** Asserts `run` throws a HornbillError with `code` whose details.field is `field`. */
function refuses(run: () => unknown, code: ErrorCode, field?: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof HornbillError, `not a HornbillError: ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (field !== undefined) assert.equal(error.details.field, field);
    return true;
  });
}

describe('names', () => {
  test('instance names are DNS-1123 subdomains of at most 253 characters', () => {
    for (const name of ['pvc-1-r-1a2b3c4d', 'a', 'vol.r-0', `${'a'.repeat(63)}.${'b'.repeat(63)}`])
      assert.equal(instanceName(name), name);
    for (const name of ['', '../../etc', 'Upper', '-lead', 'trail-', 'a/b', 'a..b', 'a_b', ' a', 'a\u0000'])
      refuses(() => instanceName(name), 'INVALID_ARGUMENT', 'name');
    refuses(() => instanceName('a'.repeat(254)), 'INVALID_ARGUMENT', 'name');
    refuses(() => instanceName(42), 'INVALID_ARGUMENT', 'name');
    refuses(() => instanceName(undefined), 'INVALID_ARGUMENT', 'name');
  });

  test('volume names are DNS-1123 labels of at most 63 characters', () => {
    assert.equal(volumeName('pvc-0b3c'), 'pvc-0b3c');
    for (const name of ['a.b', 'a'.repeat(64), '', 'UP', '..'])
      refuses(() => volumeName(name), 'INVALID_ARGUMENT');
  });

  test('data directory names are one folder that cannot climb out of <disk>/replicas', () => {
    for (const name of ['pvc-1-3f2a', 'Vol_1.data', '0']) assert.equal(dataDirectoryName(name), name);
    for (const name of ['..', '.', '../../etc', 'a/b', '/abs', '.hidden', 'a\\b', 'x'.repeat(254), ''])
      refuses(() => dataDirectoryName(name), 'INVALID_ARGUMENT', 'data_directory_name');
    assert.equal(replicaDirectory('/data', 'pvc-1'), '/data/replicas/pvc-1');
    refuses(() => replicaDirectory('/data', '..'), 'INVALID_ARGUMENT', 'data_directory_name');
    refuses(() => replicaDirectory('/data', 'a/b'), 'INVALID_ARGUMENT', 'data_directory_name');
  });

  test('snapshot names follow the store rule', () => {
    assert.equal(snapshotName('before-upgrade_1.0'), 'before-upgrade_1.0');
    for (const name of ['', 'a b', 'a/b', 'x'.repeat(129)])
      refuses(() => snapshotName(name), 'INVALID_ARGUMENT');
  });

  test('kind filters are engine, replica or empty', () => {
    assert.equal(kindFilter(''), undefined);
    assert.equal(kindFilter('engine'), 'engine');
    refuses(() => kindFilter('pod'), 'INVALID_ARGUMENT', 'kind');
  });
});

describe('sizes, addresses, disks', () => {
  test('sizes are positive multiples of 4096 up to the store maximum', () => {
    assert.equal(sizeBytes(64 * MiB), 64 * MiB);
    for (const size of [0, -4096, 4095, 4096.5, 2 ** 60, Number.NaN, '4096'])
      refuses(() => sizeBytes(size), 'INVALID_ARGUMENT', 'size_bytes');
  });

  test('replica addresses are HOST:PORT with a port of 1-65535', () => {
    assert.deepEqual(parseReplicaAddress('127.0.0.12:10000', 'address'), { host: '127.0.0.12', port: 10000 });
    assert.deepEqual(parseReplicaAddress('node-2.local:1', 'address'), { host: 'node-2.local', port: 1 });
    for (const text of [
      '127.0.0.1',
      ':80',
      'host:0',
      'host:65536',
      'host:-1',
      'ho st:80',
      'host:80x',
      '',
      'a:b:c',
    ])
      refuses(() => parseReplicaAddress(text, 'address'), 'INVALID_ARGUMENT', 'address');
  });

  test('a disk path must be one of the disks; the path is resolved first', () => {
    assert.equal(diskPath('/mnt/disk-2/', DISKS), '/mnt/disk-2');
    assert.equal(diskPath('/mnt/x/../disk-2', DISKS), '/mnt/disk-2');
    refuses(() => diskPath('/etc', DISKS), 'INSTANCE_DISK_UNKNOWN', 'disk_path');
    refuses(() => diskPath('/mnt/disk-2/replicas', DISKS), 'INSTANCE_DISK_UNKNOWN', 'disk_path');
    refuses(() => diskPath('relative/disk', DISKS), 'INVALID_ARGUMENT', 'disk_path');
    refuses(() => diskPath('', DISKS), 'INVALID_ARGUMENT', 'disk_path');
  });

  test('replica timeouts: 0 means 8 s; otherwise 1 s to 10 min', () => {
    assert.equal(replicaTimeoutMs(0), 8000);
    assert.equal(replicaTimeoutMs(4000), 4000);
    for (const value of [999, 600_001, 1.5, -1]) refuses(() => replicaTimeoutMs(value), 'INVALID_ARGUMENT');
  });
});

describe('specs', () => {
  const replica = {
    name: 'pvc-1-r-1',
    volumeName: 'pvc-1',
    sizeBytes: 64 * MiB,
    diskPath: '/mnt/disk-2',
    dataDirectoryName: 'pvc-1-3f2a',
  };

  test('a replica spec is checked field by field', () => {
    assert.deepEqual(replicaSpec(replica, DISKS), replica);
    refuses(() => replicaSpec({ ...replica, name: '' }, DISKS), 'INVALID_ARGUMENT', 'name');
    refuses(
      () => replicaSpec({ ...replica, volumeName: undefined }, DISKS),
      'INVALID_ARGUMENT',
      'volume_name',
    );
    refuses(() => replicaSpec({ ...replica, sizeBytes: 0 }, DISKS), 'INVALID_ARGUMENT', 'size_bytes');
    refuses(() => replicaSpec({ ...replica, diskPath: '/tmp' }, DISKS), 'INSTANCE_DISK_UNKNOWN', 'disk_path');
    refuses(
      () => replicaSpec({ ...replica, dataDirectoryName: '../../etc' }, DISKS),
      'INVALID_ARGUMENT',
      'data_directory_name',
    );
  });

  const engine = {
    name: 'pvc-1-e-0',
    volumeName: 'pvc-1',
    sizeBytes: 64 * MiB,
    replicaAddresses: ['127.0.0.11:10000', '127.0.0.12:10000'],
    frontend: 'nbd',
  };

  test('an engine spec gets its defaults: workers from the instance manager, an 8 s timeout', () => {
    assert.deepEqual(engineSpec(engine, 1), {
      ...engine,
      workers: 1,
      replicaTimeoutMs: 8000,
      preferLocalReplica: false,
      inLocalReplicaThread: false,
    });
    assert.equal(engineSpec({ ...engine, workers: 0 }, 1).workers, 0);
    assert.equal(engineSpec({ ...engine, inLocalReplicaThread: true }, 1).inLocalReplicaThread, true);
    assert.equal(engineSpec(engine, 0).workers, 0);
  });

  test('an engine spec with a bad field is refused, naming the field', () => {
    refuses(() => engineSpec({ ...engine, frontend: 'floppy' }, 1), 'INVALID_ARGUMENT', 'frontend');
    refuses(() => engineSpec({ ...engine, frontend: '' }, 1), 'INVALID_ARGUMENT', 'frontend');
    refuses(() => engineSpec({ ...engine, workers: 2 }, 1), 'INVALID_ARGUMENT', 'workers');
    refuses(
      () => engineSpec({ ...engine, inLocalReplicaThread: 'yes' }, 1),
      'INVALID_ARGUMENT',
      'in_local_replica_thread',
    );
    refuses(
      () => engineSpec({ ...engine, replicaAddresses: [] }, 1),
      'INVALID_ARGUMENT',
      'replica_addresses',
    );
    refuses(
      () => engineSpec({ ...engine, replicaAddresses: 'a:1' }, 1),
      'INVALID_ARGUMENT',
      'replica_addresses',
    );
    refuses(
      () => engineSpec({ ...engine, replicaAddresses: ['a:1', 'a:1'] }, 1),
      'INVALID_ARGUMENT',
      'replica_addresses',
    );
    refuses(
      () => engineSpec({ ...engine, replicaAddresses: ['a:1', 'nohost'] }, 1),
      'INVALID_ARGUMENT',
      'replica_addresses[1]',
    );
    refuses(
      () =>
        engineSpec(
          { ...engine, replicaAddresses: Array.from({ length: 33 }, (_, index) => `a:${index + 1}`) },
          1,
        ),
      'INVALID_ARGUMENT',
      'replica_addresses',
    );
    refuses(
      () => engineSpec({ ...engine, preferLocalReplica: 'yes' }, 1),
      'INVALID_ARGUMENT',
      'prefer_local_replica',
    );
  });

  test('long values are shown cut in the error details', () => {
    try {
      instanceName('x'.repeat(100_000));
      assert.fail('accepted a 100,000-character name');
    } catch (error) {
      assert.ok(error instanceof HornbillError);
      assert.ok(String(error.details.value).length < 200);
    }
  });
});

describe('command line', () => {
  const base = ['--node', 'node-1', '--address', '127.0.0.11', '--disk', '/data/d1'];

  test('defaults: gRPC 8500, iSCSI 3260, NBD 10809, metrics 9502, any replica port, 1 worker', () => {
    assert.deepEqual(parseInstanceManagerFlags(base), {
      nodeName: 'node-1',
      address: '127.0.0.11',
      disks: ['/data/d1'],
      grpcPort: 8500,
      iscsiPort: 3260,
      nbdPort: 10809,
      replicaPorts: undefined,
      workers: 1,
      metricsPort: 9502,
      attachDevices: false,
    });
  });

  test('every flag is read and checked', () => {
    const flags = parseInstanceManagerFlags([
      ...base,
      '--disk',
      '/data/d2',
      '--grpc-port',
      '0',
      '--iscsi-port',
      '13260',
      '--nbd-port',
      '0',
      '--replica-ports',
      '10000-10999',
      '--workers',
      '0',
      '--metrics-port',
      '0',
    ]);
    assert.equal(flags.metricsPort, 0);
    assert.equal(parseInstanceManagerFlags([...base, '--attach-devices']).attachDevices, true);
    assert.deepEqual(flags.disks, ['/data/d1', '/data/d2']);
    assert.deepEqual(flags.replicaPorts, { first: 10000, last: 10999 });
    assert.equal(flags.workers, 0);
    assert.equal(flags.iscsiPort, 13260);
  });

  test('bad command lines are CLI_USAGE', () => {
    const bad = [
      ['--address', '127.0.0.11', '--disk', '/d'],
      ['--node', 'node-1', '--disk', '/d'],
      ['--node', 'node-1', '--address', '127.0.0.11'],
      [...base, '--disk', '/data/d1'],
      ['--node', 'Node_1', '--address', '127.0.0.11', '--disk', '/d'],
      ['--node', 'node-1', '--address', '127.0.0.256', '--disk', '/d'],
      ['--node', 'node-1', '--address', 'localhost', '--disk', '/d'],
      [...base, '--grpc-port', '65536'],
      [...base, '--iscsi-port', 'x'],
      [...base, '--replica-ports', '10999-10000'],
      [...base, '--replica-ports', '0-10'],
      [...base, '--replica-ports', '10000'],
      [...base, '--workers', '2'],
      [...base, '--metrics-port', '-1'],
      [...base, '--bogus'],
      [...base, 'positional'],
    ];
    for (const argv of bad) refuses(() => parseInstanceManagerFlags(argv), 'CLI_USAGE');
  });
});
