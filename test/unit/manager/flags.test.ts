/** The command lines of `hornbill manager` (both modes) and `hornbill up`, and the node address plan. */
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import {
  DEFAULT_KUBERNETES_TOKENS_FILE,
  parseInstanceManagerSpec,
  parseManagerFlags,
} from '../../../src/cli/manager.ts';
import { parseUpFlags } from '../../../src/cli/up.ts';
import { isHornbillError } from '../../../src/errors.ts';
import { nodeAddresses } from '../../../src/manager/launch.ts';

const usageError = (error: unknown) => isHornbillError(error, 'CLI_USAGE');

test('manager flags: store, listen default on loopback, instance managers, settings', () => {
  const flags = parseManagerFlags([
    '--store',
    'embedded:/var/lib/hornbill/state',
    '--instance-manager',
    'node-1=127.0.0.11:8500,disk=/data/a,disk=/data/b',
    '--instance-manager',
    'node-2=127.0.0.12:8500,address=10.0.0.2',
    '--setting',
    'replica-soft-anti-affinity=true',
    '--setting',
    'default-data-path=/x=y',
  ]);
  assert.ok(flags.store === 'embedded');
  assert.equal(flags.tokensFile, undefined, 'DIR/api-tokens.json by default (startManager)');
  assert.equal(flags.storeDirectory, '/var/lib/hornbill/state');
  assert.deepEqual(flags.listen, { host: '127.0.0.1', port: 9500 });
  assert.equal(flags.namespace, 'hornbill-system');
  assert.equal(flags.controllers, true);
  assert.deepEqual(flags.instanceManagers, [
    {
      nodeID: 'node-1',
      grpcAddress: '127.0.0.11:8500',
      address: '127.0.0.11',
      disks: ['/data/a', '/data/b'],
    },
    { nodeID: 'node-2', grpcAddress: '127.0.0.12:8500', address: '10.0.0.2', disks: [] },
  ]);
  assert.deepEqual(flags.settings, { 'replica-soft-anti-affinity': 'true', 'default-data-path': '/x=y' });
  assert.equal(parseInstanceManagerSpec('node-3=127.0.0.13:0,disk=rel').disks[0], path.resolve('rel'));
});

test('manager flags: every mistake is CLI_USAGE', () => {
  const bad = [
    [],
    ['--store', 'lmdb:/x'],
    ['--store', 'embedded:'],
    ['--store', 'kubernetes:/x'],
    ['--store', 'embedded:/x', '--kubeconfig', '/k'],
    ['--store', 'embedded:/x', '--identity', 'pod-1'],
    ['--store', 'embedded:/x', '--instance-manager-selector', 'app=im'],
    ['--store', 'embedded:/x', '--tokens', ''],
    ['--store', 'embedded:/x', '--listen', 'localhost'],
    ['--store', 'embedded:/x', '--instance-manager', 'Node_1=127.0.0.1:1'],
    ['--store', 'embedded:/x', '--instance-manager', 'node-1=127.0.0.1'],
    ['--store', 'embedded:/x', '--instance-manager', 'node-1=127.0.0.1:1,color=red'],
    ['--store', 'embedded:/x', '--instance-manager', 'n=1.1.1.1:1', '--instance-manager', 'n=1.1.1.2:1'],
    ['--store', 'embedded:/x', '--setting', 'novalue'],
    ['--store', 'embedded:/x', '--log-level', 'loud'],
    ['--store', 'embedded:/x', '--change-log-limit', '0'],
    ['--store', 'embedded:/x', '--unknown'],
  ];
  for (const argv of bad) assert.throws(() => parseManagerFlags(argv), usageError, argv.join(' '));
});

test('manager flags, Kubernetes mode: discovery by default, identity from POD_NAME, tokens', () => {
  const flags = parseManagerFlags(['--store', 'kubernetes'], { POD_NAME: 'hornbill-manager-x7k2p' });
  assert.ok(flags.store === 'kubernetes');
  assert.equal(flags.identity, 'hornbill-manager-x7k2p');
  assert.equal(flags.kubeconfig, undefined);
  assert.equal(flags.namespace, 'hornbill-system');
  assert.equal(flags.instanceManagers, undefined, 'discovered, not static');
  assert.equal(flags.instanceManagerSelector, 'app.kubernetes.io/name=hornbill-instance-manager');
  assert.equal(flags.tokensFile, undefined);
  assert.equal(DEFAULT_KUBERNETES_TOKENS_FILE, '/etc/hornbill/tokens/api-tokens.json');
  assert.deepEqual(flags.listen, { host: '127.0.0.1', port: 9500 });

  const explicit = parseManagerFlags(
    [
      '--store',
      'kubernetes',
      '--kubeconfig',
      'kube/config',
      '--identity',
      'manager-a',
      '--namespace',
      'storage',
      '--listen',
      '0.0.0.0:9500',
      '--instance-manager-selector',
      'app=im,tier in (storage)',
      '--tokens',
      '/etc/tokens/api-tokens.json',
      '--setting',
      'auto-salvage=true',
    ],
    { POD_NAME: 'ignored' },
  );
  assert.ok(explicit.store === 'kubernetes');
  assert.equal(explicit.kubeconfig, path.resolve('kube/config'));
  assert.equal(explicit.identity, 'manager-a');
  assert.equal(explicit.namespace, 'storage');
  assert.equal(explicit.instanceManagerSelector, 'app=im,tier in (storage)');
  assert.equal(explicit.tokensFile, '/etc/tokens/api-tokens.json');
  assert.deepEqual(explicit.settings, { 'auto-salvage': 'true' });

  const fixed = parseManagerFlags(
    ['--store', 'kubernetes', '--instance-manager', 'node-1=10.0.0.21:8500,disk=/var/lib/hornbill'],
    {},
  );
  assert.ok(fixed.store === 'kubernetes');
  assert.deepEqual(fixed.instanceManagers, [
    { nodeID: 'node-1', grpcAddress: '10.0.0.21:8500', address: '10.0.0.21', disks: ['/var/lib/hornbill'] },
  ]);
  assert.ok(fixed.identity.length > 0, 'the host name without POD_NAME');
});

test('manager flags, Kubernetes mode: every mistake is CLI_USAGE', () => {
  const bad = [
    ['--store', 'kubernetes', '--change-log-limit', '10'],
    ['--store', 'kubernetes', '--no-controllers'],
    ['--store', 'kubernetes', '--instance-manager', 'n=1.1.1.1:1', '--instance-manager-selector', 'a=b'],
    ['--store', 'kubernetes', '--instance-manager-selector', 'a in b'],
    ['--store', 'kubernetes', '--instance-manager-selector', ''],
    ['--store', 'kubernetes', '--identity', ''],
    ['--store', 'kubernetes', '--identity', 'has space'],
    ['--store', 'kubernetes', '--kubeconfig', ''],
    ['--store', 'kubernetes', '--namespace', 'Not_A_Label'],
    ['--store', 'kubernetes', '--tokens', ''],
  ];
  for (const argv of bad)
    assert.throws(() => parseManagerFlags(argv, { POD_NAME: 'pod-1' }), usageError, argv.join(' '));
});

test('up flags: defaults, and the node addresses from the base address', () => {
  const flags = parseUpFlags([]);
  assert.equal(flags.dataDirectory, path.resolve('hornbill-data'));
  assert.equal(flags.nodeCount, 3);
  assert.deepEqual(flags.listen, { host: '127.0.0.1', port: 9500 });
  assert.equal(flags.baseAddress, '127.0.0.11');
  assert.deepEqual(flags.ports, { grpc: 8500, iscsi: 3260, nbd: 10809, metrics: 9502 });
  assert.equal(flags.output, 'text');
  assert.deepEqual(nodeAddresses('127.0.0.11', 3), ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  const custom = parseUpFlags([
    '--nodes',
    '4',
    '--base-address',
    '127.5.0.21',
    '--grpc-port',
    '0',
    '--output',
    'json',
  ]);
  assert.equal(custom.nodeCount, 4);
  assert.equal(custom.ports.grpc, 0);
  assert.deepEqual(nodeAddresses(custom.baseAddress, 4).at(-1), '127.5.0.24');
  for (const argv of [
    ['--nodes', '0'],
    ['--nodes', '33'],
    ['--nodes', 'x'],
    ['--base-address', '127.0.0.300'],
    ['--base-address', '127.0.0.250', '--nodes', '10'],
    ['--grpc-port', '70000'],
    ['--output', 'yaml'],
    ['--setting', '=1'],
  ]) {
    assert.throws(() => parseUpFlags(argv), usageError, argv.join(' '));
  }
});
