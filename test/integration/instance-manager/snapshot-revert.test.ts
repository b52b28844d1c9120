import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { type ErrorCode, HornbillError } from '../../../src/errors.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { attachNbd, MiB, startInstanceManager } from './fixture.ts';

/**
 * RevertSnapshot on one instance manager (127.0.0.16) with two replicas: data written
 * through NBD, a snapshot, more data; the engine is created again with frontend none and
 * reverted; served over NBD again, the volume holds what it held at the snapshot. A revert
 * under a frontend is refused.
 */

const SIZE = 16 * MiB;
const HOST = '127.0.0.16';

async function refused(call: Promise<unknown>, grpcStatus: status, code: ErrorCode, what: string) {
  await assert.rejects(call, (error: unknown) => {
    assert.ok(error instanceof HornbillError, `${what}: ${String(error)}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    assert.equal(error.details.grpcStatus, grpcStatus, `${what}: gRPC status`);
    return true;
  });
}

test('RevertSnapshot reverts every replica of an engine without frontend, and is refused under one', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'disk');
  const node = await startInstanceManager(t, { node: 'node-6', address: HOST, disk });
  const im = node.client;
  const replicaAddresses: string[] = [];
  for (const name of ['vol-r-1', 'vol-r-2']) {
    const replica = await im.call('CreateReplica', {
      name,
      volume_name: 'vol',
      size_bytes: SIZE,
      disk_path: disk,
      data_directory_name: name,
    });
    replicaAddresses.push(`${HOST}:${replica.port}`);
  }
  const engineSpec = (frontend: 'nbd' | 'none') => ({
    name: 'vol-e-0',
    volume_name: 'vol',
    size_bytes: SIZE,
    replica_addresses: replicaAddresses,
    frontend,
  });

  await im.call('CreateEngine', engineSpec('nbd'));
  const before = patternBytes(31, MiB);
  const after = patternBytes(32, MiB);
  const beyond = patternBytes(33, 64 * 1024);
  let nbd = await attachNbd(t, HOST, node.nbdPort, 'vol');
  await nbd.write(0, before);
  await im.call('CreateSnapshot', { name: 'vol-e-0', snapshot_name: 'first' });
  await nbd.write(0, after);
  await nbd.write(4 * MiB, beyond);
  assert.deepEqual(await nbd.read(0, MiB), after);
  await refused(
    im.call('RevertSnapshot', { name: 'vol-e-0', snapshot_name: 'first' }),
    status.FAILED_PRECONDITION,
    'ENGINE_FRONTEND_ACTIVE',
    'revert under an NBD frontend',
  );
  assert.deepEqual(await nbd.read(0, MiB), after, 'a refused revert changes nothing');
  await nbd.disconnect();

  // The frontend is part of the engine's spec: the engine is created again without one.
  await im.call('DeleteEngine', { name: 'vol-e-0' });
  assert.equal((await im.call('CreateEngine', engineSpec('none'))).state, 'running');
  await refused(
    im.call('RevertSnapshot', { name: 'vol-e-0', snapshot_name: 'missing' }),
    status.NOT_FOUND,
    'STORE_SNAPSHOT_NOT_FOUND',
    'revert to a snapshot that does not exist',
  );
  await refused(
    im.call('RevertSnapshot', { name: 'vol-e-0', snapshot_name: '../x' }),
    status.INVALID_ARGUMENT,
    'INVALID_ARGUMENT',
    'revert to a malformed name',
  );
  const reverted = await im.call('RevertSnapshot', { name: 'vol-e-0', snapshot_name: 'first' });
  assert.equal(reverted.robustness, 'healthy');
  assert.deepEqual(Object.values(reverted.replica_mode_map), ['RW', 'RW']);
  for (const name of ['vol-r-1', 'vol-r-2']) {
    const info = await im.call('GetReplicaInfo', { name });
    const head = (info.chain as { parent: string; is_head: boolean }[]).find((layer) => layer.is_head);
    assert.equal(head?.parent, 'first', `${name}: the head's parent is the snapshot`);
  }

  await im.call('DeleteEngine', { name: 'vol-e-0' });
  await im.call('CreateEngine', engineSpec('nbd'));
  nbd = await attachNbd(t, HOST, node.nbdPort, 'vol');
  // Reads rotate over the RW replicas: read twice so that both answer.
  for (let round = 0; round < 2; round++) {
    assert.deepEqual(await nbd.read(0, MiB), before, `round ${round}: the snapshot's data`);
    assert.deepEqual(await nbd.read(4 * MiB, beyond.length), Buffer.alloc(beyond.length));
  }
  await nbd.disconnect();
});
