/**
 * CreateShareManager's lease fields: lease backend `file` (the default, as before) passes
 * `--lease file --lease-file`; `kubernetes` passes `--lease kubernetes --lease-namespace`
 * (the Lease `share-manager-<volume>`, through the instance manager pod's service account),
 * and the two never mix. The arguments are ones `hornbill share-manager` accepts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { leaseLocationOf, parseShareManagerFlags } from '../../../../src/cli/share-manager.ts';
import {
  shareManagerArguments,
  shareManagerSpec,
} from '../../../../src/dataplane/instance-manager/share-manager-spec.ts';
import { isHornbillError } from '../../../../src/errors.ts';

const disks = ['/var/lib/hornbill'];
const base = { name: 'share-manager-pvc-1', volumeName: 'pvc-1', address: '127.200.0.9', port: 2049 };

test('lease backend file: the default, with a lease file', () => {
  const spec = shareManagerSpec({ ...base, leaseFile: '/var/lib/hornbill/leases/pvc-1.json' }, disks);
  assert.equal(spec.leaseBackend, 'file');
  assert.equal(spec.leaseNamespace, '');
  const argv = shareManagerArguments(spec, { nodeName: 'node-1' });
  const flags = parseShareManagerFlags(argv);
  assert.deepEqual(leaseLocationOf(flags), { backend: 'file', file: '/var/lib/hornbill/leases/pvc-1.json' });
});

test('lease backend kubernetes: the Lease share-manager-<volume> in the namespace given', () => {
  const spec = shareManagerSpec(
    { ...base, leaseBackend: 'kubernetes', leaseNamespace: 'hornbill-system' },
    disks,
  );
  assert.equal(spec.leaseBackend, 'kubernetes');
  assert.equal(spec.leaseFile, '');
  const argv = shareManagerArguments(spec, { nodeName: 'node-1' });
  assert.ok(!argv.includes('--lease-file'));
  const flags = parseShareManagerFlags(argv);
  assert.deepEqual(leaseLocationOf(flags), {
    backend: 'kubernetes',
    namespace: 'hornbill-system',
    name: 'share-manager-pvc-1',
  });
  assert.equal(flags.leaseIdentity, 'node-1/share-manager-pvc-1');
});

test('lease fields that do not go together are INVALID_ARGUMENT naming the field', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ leaseBackend: 'etcd', leaseFile: '/l/v.json' }, 'lease_backend'],
    [{ leaseBackend: 'kubernetes' }, 'lease_namespace'],
    [{ leaseBackend: 'kubernetes', leaseNamespace: 'Bad_Namespace' }, 'lease_namespace'],
    [{ leaseBackend: 'kubernetes', leaseNamespace: 'ns', leaseFile: '/l/v.json' }, 'lease_file'],
    [{ leaseBackend: 'file', leaseFile: '/l/v.json', leaseNamespace: 'ns' }, 'lease_namespace'],
    [{ leaseBackend: 'file' }, 'lease_file'],
  ];
  for (const [change, field] of cases)
    assert.throws(
      () => shareManagerSpec({ ...base, ...change }, disks),
      (error) => isHornbillError(error, 'INVALID_ARGUMENT') && error.details.field === field,
      JSON.stringify(change),
    );
});
