/** `hornbill share-manager` command line: defaults, the two sources, the two lease backends, and every refusal as CLI_USAGE. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { leaseLocationOf, leaseTimingFor, parseShareManagerFlags } from '../../../src/cli/share-manager.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { checkTiming } from '../../../src/resources/leader-election.ts';
import { describeLeaseLocation } from '../../../src/share-manager/index.ts';

const BASE = ['--volume', 'pvc-1', '--address', '127.0.0.21', '--state-dir', '/tmp/sm-state'];

function usageError(argv: string[], mention: string): void {
  assert.throws(
    () => parseShareManagerFlags(argv),
    (error) => isHornbillError(error, 'CLI_USAGE') && error.message.includes(mention),
    argv.join(' '),
  );
}

describe('parseShareManagerFlags', () => {
  it('exports a directory with the documented defaults', () => {
    const flags = parseShareManagerFlags([...BASE, '--export-dir', '/srv/export']);
    assert.equal(flags.port, 2049);
    assert.deepEqual(flags.source, { kind: 'directory', path: '/srv/export' });
    assert.equal(flags.leaseFile, '/tmp/sm-state/lease.json');
    assert.equal(flags.healthPort, 0);
    assert.equal(flags.leaseDurationMs, 15_000);
    assert.equal(flags.nfs.minimumMinorVersion, 1);
    assert.match(flags.leaseIdentity, /:\d+$/);
  });

  it('mounts a device on DIR/mount as ext4 unless told otherwise', () => {
    const flags = parseShareManagerFlags([...BASE, '--device', '/dev/sdb', '--port', '20490']);
    assert.deepEqual(flags.source, {
      kind: 'device',
      device: '/dev/sdb',
      fsType: 'ext4',
      mountDirectory: '/tmp/sm-state/mount',
    });
    const xfs = parseShareManagerFlags([
      ...BASE,
      '--device',
      '/dev/sdb',
      '--fs-type',
      'xfs',
      '--mount-dir',
      'm',
    ]);
    assert.deepEqual(xfs.source, {
      kind: 'device',
      device: '/dev/sdb',
      fsType: 'xfs',
      mountDirectory: path.resolve('m'),
    });
    assert.equal(xfs.hostNamespaces, false);
  });

  it('parses --iscsi-target with --host-namespaces (a share-manager Pod logs in itself)', () => {
    const endpoint = 'iscsi://10.0.0.1:3260/iqn.2019-10.io.hornbill:vol/1';
    const flags = parseShareManagerFlags([...BASE, '--iscsi-target', endpoint, '--host-namespaces']);
    assert.equal(flags.source.kind, 'iscsi');
    assert.equal(flags.hostNamespaces, true);
    assert.deepEqual(flags.source, {
      kind: 'iscsi',
      endpoint,
      fsType: 'ext4',
      mountDirectory: path.join(flags.stateDirectory, 'mount'),
    });
    usageError([...BASE, '--iscsi-target', 'nbd://10.0.0.1:1/vol'], '--iscsi-target');
    usageError([...BASE, '--iscsi-target', endpoint, '--device', '/dev/sdb'], 'exactly one');
    usageError([...BASE, '--export-dir', '/e', '--host-namespaces'], '--host-namespaces');
  });

  it('refuses missing, conflicting and hostile flags with CLI_USAGE', () => {
    usageError(['--address', '127.0.0.1', '--state-dir', '/s', '--export-dir', '/e'], '--volume');
    usageError(BASE, 'exactly one of --export-dir, --device and --iscsi-target');
    usageError([...BASE, '--export-dir', '/e', '--device', '/dev/sdb'], 'exactly one');
    usageError([...BASE, '--export-dir', '/e', '--fs-type', 'xfs'], '--fs-type');
    usageError([...BASE, '--device', '/dev/sdb', '--fs-type', 'btrfs'], '--fs-type');
    usageError(
      ['--volume', 'a;b', '--address', '127.0.0.1', '--state-dir', '/s', '--export-dir', '/e'],
      '--volume',
    );
    usageError(
      ['--volume', 'v', '--address', 'localhost', '--state-dir', '/s', '--export-dir', '/e'],
      '--address',
    );
    usageError([...BASE, '--export-dir', '/e x"; }'], 'exportPath');
    usageError([...BASE, '--export-dir', '/e', '--port', '0'], '--port');
    usageError([...BASE, '--export-dir', '/e', '--port', '70000'], '--port');
    usageError([...BASE, '--export-dir', '/e', '--nfs-options', 'min-version=3'], 'min-version');
    usageError([...BASE, '--export-dir', '/e', '--lease-duration', '1s'], '--lease-duration');
    usageError([...BASE, '--export-dir', '/e', '--lease-duration', '3500ms'], 'whole seconds');
    usageError([...BASE, '--export-dir', '/e', '--bogus'], 'bogus');
  });

  it('takes the lease from a file (default) or from a Kubernetes Lease', () => {
    const file = parseShareManagerFlags([...BASE, '--export-dir', '/e', '--lease-file', 'l.json']);
    assert.equal(file.leaseBackend, 'file');
    assert.equal(file.leaseFile, path.resolve('l.json'));
    assert.equal(describeLeaseLocation(leaseLocationOf(file)), `file:${path.resolve('l.json')}`);
    const kubernetes = parseShareManagerFlags([...BASE, '--export-dir', '/e', '--lease', 'kubernetes']);
    assert.equal(kubernetes.leaseBackend, 'kubernetes');
    assert.equal(kubernetes.leaseFile, '');
    assert.equal(kubernetes.leaseNamespace, 'hornbill-system');
    assert.equal(kubernetes.kubeconfig, undefined, 'KUBECONFIG, ~/.kube/config or in-cluster');
    assert.equal(
      describeLeaseLocation(leaseLocationOf(kubernetes)),
      'kubernetes:hornbill-system/share-manager-pvc-1',
    );
    const other = parseShareManagerFlags([
      ...[...BASE, '--export-dir', '/e', '--lease', 'kubernetes'],
      ...['--lease-namespace', 'storage', '--kubeconfig', 'kc.yaml'],
    ]);
    assert.equal(other.leaseNamespace, 'storage');
    assert.equal(other.kubeconfig, path.resolve('kc.yaml'));
    usageError([...BASE, '--export-dir', '/e', '--lease', 'etcd'], '--lease must be file or kubernetes');
    usageError(
      [...BASE, '--export-dir', '/e', '--lease', 'kubernetes', '--lease-file', '/l.json'],
      '--lease-file',
    );
    usageError([...BASE, '--export-dir', '/e', '--lease-namespace', 'x'], '--lease kubernetes');
    usageError([...BASE, '--export-dir', '/e', '--kubeconfig', '/k'], '--lease kubernetes');
    usageError(
      [...BASE, '--export-dir', '/e', '--lease', 'kubernetes', '--lease-namespace', 'Bad_Name'],
      '--lease-namespace',
    );
  });

  it('derives lease timing the leader elector accepts, 15 s giving Kubernetes defaults', () => {
    assert.deepEqual(leaseTimingFor(15_000), {
      leaseDurationMs: 15_000,
      renewPeriodMs: 5_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
    });
    for (const seconds of [3, 4, 7, 30, 120]) checkTiming(leaseTimingFor(seconds * 1_000));
  });
});
