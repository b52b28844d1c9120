/** StorageClass parameters, name mapping, capacity ranges and page tokens. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sizeForRange } from '../../../src/csi/capabilities.ts';
import { attachTicketId, paginate, parseSnapshotId, resourceNameFor } from '../../../src/csi/names.ts';
import {
  DEFAULT_NFS_OPTIONS,
  parseStorageClassParameters,
  STORAGE_CLASS_PARAMETERS,
} from '../../../src/csi/parameters.ts';
import { isHornbillError } from '../../../src/errors.ts';

const MiB = 1024 ** 2;

test('every documented StorageClass parameter parses into the Volume spec or the volume context', () => {
  const parsed = parseStorageClassParameters({
    numberOfReplicas: '3',
    staleReplicaTimeout: '2880',
    dataLocality: 'disabled',
    diskSelector: 'ssd, fast',
    nodeSelector: 'storage',
    replicaSoftAntiAffinity: 'false',
    replicaZoneSoftAntiAffinity: 'true',
    replicaDiskSoftAntiAffinity: 'ignored',
    fromBackup: '',
    snapshotMaxCount: '100',
    snapshotMaxSize: '0',
    replicaRebuildingBandwidthLimit: '0',
    fsType: 'ext4',
    mkfsParams: '-O ^metadata_csum',
    nfsOptions: 'vers=4.2,hard',
    'csi.storage.k8s.io/pvc/name': 'data',
  });
  assert.deepEqual(parsed.spec.diskSelector, ['ssd', 'fast']);
  assert.equal(parsed.spec.replicaSoftAntiAffinity, 'disabled');
  assert.equal(parsed.spec.replicaZoneSoftAntiAffinity, 'enabled');
  assert.equal(parsed.spec.fromBackup, undefined);
  assert.deepEqual(parsed.context, {
    fsType: 'ext4',
    mkfsParams: '-O ^metadata_csum',
    nfsOptions: 'vers=4.2,hard',
  });
  assert.equal(parsed.kubernetes.pvcName, 'data');
  assert.ok(STORAGE_CLASS_PARAMETERS.includes('nfsOptions'));
  assert.equal(DEFAULT_NFS_OPTIONS, 'vers=4.1,noresvport,timeo=600,retrans=5,softerr');
});

test('bad StorageClass parameters name themselves', () => {
  for (const [key, value] of [
    ['numberOfReplicas', '21'],
    ['numberOfReplicas', 'three'],
    ['dataLocality', 'somewhere'],
    ['fsType', 'btrfs'],
    ['diskSelector', 'a b'],
    ['nfsOptions', 'vers=4.1;rm -rf'],
    ['mkfsParams', '/dev/sda'],
    ['mkfsParams', '-d /etc'],
    ['unknownKey', 'x'],
  ]) {
    assert.throws(
      () => parseStorageClassParameters({ [key]: value }),
      (error: unknown) => isHornbillError(error, 'CSI_PARAMETER_INVALID') && error.details.parameter === key,
      `${key}=${value}`,
    );
  }
  assert.throws(() => parseStorageClassParameters({ dataLocality: 'strict-local' }), /numberOfReplicas/);
  assert.equal(
    parseStorageClassParameters({ dataLocality: 'strict-local', numberOfReplicas: '1' }).spec
      .numberOfReplicas,
    1,
  );
});

test('CSI names map to resource names deterministically', () => {
  assert.equal(
    resourceNameFor('pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33', 'name'),
    'pvc-5242ccd4-5a41-4bb4-b5f8-6f64118f4d33',
  );
  const derived = resourceNameFor('My Volume_01', 'name');
  assert.match(derived, /^my-volume-01-[0-9a-f]{16}$/);
  assert.equal(resourceNameFor('My Volume_01', 'name'), derived);
  assert.notEqual(resourceNameFor('My Volume_02', 'name'), derived);
  assert.ok(resourceNameFor('x'.repeat(200), 'name').length <= 63);
  assert.throws(() => resourceNameFor('bad\u0001name', 'name'), /control characters/);
  assert.throws(() => resourceNameFor('', 'name'), /required/);
  assert.match(attachTicketId('v', 'node-1'), /^csi-[0-9a-f]{64}$/);
  assert.deepEqual(parseSnapshotId('snap://v/snapshot-1'), { volume: 'v', snapshot: 'snapshot-1' });
  assert.equal(parseSnapshotId('snap://V/x'), undefined);
  assert.equal(parseSnapshotId('vol://v'), undefined);
});

test('capacity ranges round up to 2 MiB within the limit', () => {
  assert.equal(sizeForRange({ required_bytes: 1, limit_bytes: 0 }, { fallbackBytes: 0 }), 2 * MiB);
  assert.equal(sizeForRange(null, { fallbackBytes: 5 * MiB }), 6 * MiB);
  assert.equal(
    sizeForRange({ required_bytes: 0, limit_bytes: 7 * MiB }, { fallbackBytes: 100 * MiB }),
    6 * MiB,
  );
  assert.throws(
    () => sizeForRange({ required_bytes: -1, limit_bytes: 0 }, { fallbackBytes: 0 }),
    /non-negative/,
  );
  assert.throws(
    () => sizeForRange({ required_bytes: 5 * MiB, limit_bytes: 5 * MiB }, { fallbackBytes: 0 }),
    (error: unknown) => isHornbillError(error, 'CSI_CAPACITY_OUT_OF_RANGE'),
  );
});

test('pagination walks every item once and refuses foreign tokens', () => {
  const items = ['a', 'b', 'c', 'd', 'e'];
  const first = paginate(items, (item) => item, { max_entries: 2, starting_token: '' });
  assert.deepEqual(first.page, ['a', 'b']);
  const second = paginate(items, (item) => item, { max_entries: 2, starting_token: first.nextToken });
  assert.deepEqual(second.page, ['c', 'd']);
  const third = paginate(items, (item) => item, { max_entries: 2, starting_token: second.nextToken });
  assert.deepEqual(third, { page: ['e'], nextToken: '' });
  // An item deleted between pages does not make the next page skip or repeat.
  const shrunk = paginate(['a', 'c', 'd', 'e'], (item) => item, {
    max_entries: 2,
    starting_token: first.nextToken,
  });
  assert.deepEqual(shrunk.page, ['c', 'd']);
  assert.throws(
    () => paginate(items, (item) => item, { max_entries: 0, starting_token: 'v1:!!' }),
    (error: unknown) => isHornbillError(error, 'CSI_PAGINATION_TOKEN_INVALID'),
  );
});
