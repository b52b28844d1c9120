import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { status } from '@grpc/grpc-js';
import type { InstanceManagerClient } from '../../../src/dataplane/instance-manager/grpc-client.ts';
import { HornbillError } from '../../../src/errors.ts';
import { NBD } from '../../helpers/nbd-client.ts';
import { patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { attachNbd, MiB, startInstanceManager } from './fixture.ts';

/**
 * CloneSnapshot on one instance manager (127.0.0.17): a source volume with a chain of two
 * snapshots and a head that moved on; a new two-replica volume is filled from the second
 * snapshot through the first source address that answers. The clone reads as the snapshot
 * did — blocks resolved through the snapshot's ancestors, a range trimmed in the second
 * snapshot reads as zeros — only data crossed, holes stayed holes, and a volume that holds
 * data is refused.
 */

const SIZE = 16 * MiB;
const HOST = '127.0.0.17';

async function createReplicas(im: InstanceManagerClient, disk: string, volume: string, count: number) {
  const addresses: string[] = [];
  for (let index = 1; index <= count; index++) {
    const name = `${volume}-r-${index}`;
    const replica = await im.call('CreateReplica', {
      name,
      volume_name: volume,
      size_bytes: volume === 'dst' ? 2 * SIZE : SIZE,
      disk_path: disk,
      data_directory_name: name,
    });
    addresses.push(`${HOST}:${replica.port}`);
  }
  return addresses;
}

async function waitForClone(im: InstanceManagerClient, engine: string) {
  for (let attempt = 0; attempt < 400; attempt++) {
    const clone = (await im.call('GetEngineStatus', { name: engine })).clone;
    if (clone !== null && clone !== undefined && !clone.is_cloning) return clone;
    await sleep(50);
  }
  assert.fail('the clone did not finish within 20 s');
}

test('CloneSnapshot fills a new volume with a snapshot of another, resolved through its chain', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'disk');
  const node = await startInstanceManager(t, { node: 'node-7', address: HOST, disk });
  const im = node.client;

  // The source: s1 = A at 0 and at 8 MiB; s2 = C at 12 MiB and 8 MiB trimmed; head = B at 0.
  const sourceAddresses = await createReplicas(im, disk, 'src', 1);
  await im.call('CreateEngine', {
    name: 'src-e-0',
    volume_name: 'src',
    size_bytes: SIZE,
    replica_addresses: sourceAddresses,
    frontend: 'nbd',
  });
  const a = patternBytes(41, MiB);
  const a2 = patternBytes(42, MiB);
  const b = patternBytes(43, MiB);
  const c = patternBytes(44, 512 * 1024);
  const source = await attachNbd(t, HOST, node.nbdPort, 'src');
  await source.write(0, a);
  await source.write(8 * MiB, a2);
  await im.call('CreateSnapshot', { name: 'src-e-0', snapshot_name: 's1' });
  await source.write(12 * MiB, c);
  assert.equal(await source.command(NBD.CMD_TRIM, 8 * MiB, MiB), 0);
  await im.call('CreateSnapshot', { name: 'src-e-0', snapshot_name: 's2' });
  await source.write(0, b);

  // The clone: twice the size; the first source address answers nothing.
  const targetAddresses = await createReplicas(im, disk, 'dst', 2);
  const engineSpec = (frontend: 'nbd' | 'none') => ({
    name: 'dst-e-0',
    volume_name: 'dst',
    size_bytes: 2 * SIZE,
    replica_addresses: targetAddresses,
    frontend,
  });
  await im.call('CreateEngine', engineSpec('none'));
  await assert.rejects(
    im.call('CloneSnapshot', {
      name: 'dst-e-0',
      source_replica_addresses: sourceAddresses,
      snapshot_name: 'missing',
      origin: 'snap://src/missing',
    }),
    (error: unknown) =>
      error instanceof HornbillError &&
      error.code === 'STORE_SNAPSHOT_NOT_FOUND' &&
      error.details.grpcStatus === status.NOT_FOUND,
  );
  const started = await im.call('CloneSnapshot', {
    name: 'dst-e-0',
    source_replica_addresses: ['127.0.0.17:1', ...sourceAddresses],
    snapshot_name: 's2',
    origin: 'snap://src/s2',
  });
  assert.ok(started.clone, 'the answer carries the clone status');
  const clone = await waitForClone(im, 'dst-e-0');
  assert.equal(clone.state, 'done', clone.error);
  assert.equal(clone.progress, 100);
  assert.equal(clone.source, sourceAddresses[0]);
  assert.equal(Number(clone.total_bytes), SIZE, 'the source is the smaller: its size is examined');
  assert.equal(Number(clone.transferred_bytes), a.length + c.length, 'only data crosses: A and C');

  for (const name of ['dst-r-1', 'dst-r-2']) {
    const info = await im.call('GetReplicaInfo', { name });
    const chain = info.chain as { name: string; parent: string; is_head: boolean }[];
    assert.deepEqual(
      chain.map((layer) => [layer.name, layer.parent || null, layer.is_head]),
      [
        ['s2', null, false],
        ['volume-head', 's2', true],
      ],
      `${name}: one layer under the head`,
    );
  }

  await im.call('DeleteEngine', { name: 'dst-e-0' });
  await im.call('CreateEngine', engineSpec('nbd'));
  const target = await attachNbd(t, HOST, node.nbdPort, 'dst');
  // Reads rotate over the RW replicas: read twice so that both answer.
  for (let round = 0; round < 2; round++) {
    assert.deepEqual(await target.read(0, MiB), a, `round ${round}: A, from s1 through s2`);
    assert.deepEqual(await target.read(8 * MiB, MiB), Buffer.alloc(MiB), `round ${round}: trimmed in s2`);
    assert.deepEqual(await target.read(12 * MiB, c.length), c, `round ${round}: C, from s2`);
    assert.deepEqual(await target.read(SIZE, MiB), Buffer.alloc(MiB), `round ${round}: beyond the source`);
  }
  assert.deepEqual(await source.read(0, MiB), b, 'the source is unchanged');

  // The clone is a volume of its own; filling it again is refused.
  await target.write(MiB, b);
  await target.disconnect();
  await im.call('DeleteEngine', { name: 'dst-e-0' });
  await im.call('CreateEngine', engineSpec('none'));
  await assert.rejects(
    im.call('CloneSnapshot', {
      name: 'dst-e-0',
      source_replica_addresses: sourceAddresses,
      snapshot_name: 's1',
      origin: 'snap://src/s1',
    }),
    (error: unknown) =>
      error instanceof HornbillError &&
      error.code === 'ENGINE_CLONE_NOT_EMPTY' &&
      error.details.grpcStatus === status.FAILED_PRECONDITION,
  );
  await assert.rejects(
    im.call('CloneSnapshot', { name: 'dst-e-0', source_replica_addresses: [], snapshot_name: 's1' }),
    (error: unknown) => error instanceof HornbillError && error.code === 'INVALID_ARGUMENT',
  );
  await source.disconnect();
});
