import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { startCluster, waitFor } from './helpers/cluster.ts';
import { adminApi } from './helpers/graphql.ts';
import { openNbd, pattern, readBlock, writeBlock } from './volume-helpers.ts';

/**
 * Issue 8 (CSI volume sources): volumes created from a snapshot and from a volume hold the
 * source's data. A source is written (A), snapshotted (s1), written again (B over A, C
 * beside it) and detached. `snap://source/s1` and `vol://source` volumes are created and an
 * attach is asked for at once: the attach waits until the manager has attached the source
 * and the new volume without frontend on one node and copied the data (cloneStatus
 * completed, Event Cloned); then it goes ahead with its frontend and the volumes read A
 * and zeros, and B and C. The source's clone tickets are gone afterwards.
 */

const SOURCE = 'clone-source';
const HORNBILL = path.join(import.meta.dirname, '..', '..', 'bin', 'hornbill.mjs');
const MiB = 1024 * 1024;

interface CloneView {
  state: string;
  endpoint: string | null;
  cloneStatus: {
    state: string;
    sourceVolume: string;
    snapshot: string;
    progress: number;
    transferredBytes: string | null;
    error: string | null;
  } | null;
  attachmentTickets: { id: string; type: string }[];
}

test('volumes cloned from a snapshot and from a volume hold the source data', {
  timeout: 240_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 2,
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { api, token, mutate, snapshotReady } = await adminApi(cluster, 'clone-e2e');
  const view = async (name: string) =>
    (
      await api.query<{ volume: CloneView | null }>(
        `query ($name: String!) { volume(name: $name) { state endpoint
           cloneStatus { state sourceVolume snapshot progress transferredBytes error }
           attachmentTickets { id type } } }`,
        { name },
      )
    ).volume;
  const until = (name: string, what: string, check: (volume: CloneView) => boolean, timeoutMs = 90_000) =>
    waitFor(async () => {
      const current = await view(name);
      assert.ok(
        current !== null && check(current),
        `${name}: waiting for ${what}: ${JSON.stringify(current)}`,
      );
      return current;
    }, timeoutMs);
  const create = (name: string, dataSource?: string) =>
    mutate(
      `mutation ($input: CreateVolumeInput!) { createVolume(input: $input) { errors { code message } } }`,
      {
        input: {
          name,
          size: '32Mi',
          numberOfReplicas: 2,
          frontend: 'NBD',
          ...(dataSource ? { dataSource } : {}),
        },
      },
      'createVolume',
    );
  const attach = (name: string) =>
    mutate(
      `mutation ($name: String!) { attachVolume(name: $name, node: "node-2", frontend: NBD) { errors { code message } } }`,
      { name },
      'attachVolume',
    );
  const detach = (name: string) =>
    mutate(
      `mutation ($name: String!) { detachVolume(name: $name) { errors { code message } } }`,
      { name },
      'detachVolume',
    );

  const dataA = pattern(61, MiB);
  const dataB = pattern(62, MiB);
  const dataC = pattern(63, MiB);
  await create(SOURCE);
  await until(SOURCE, 'detached', (volume) => volume.state === 'DETACHED');
  await attach(SOURCE);
  let source = await until(
    SOURCE,
    'attached',
    (volume) => volume.state === 'ATTACHED' && volume.endpoint !== null,
  );
  let client = await openNbd(source.endpoint!);
  await writeBlock(client, 0, dataA);
  await mutate(
    `mutation ($volume: String!) { createSnapshot(volume: $volume, name: "s1") { errors { code message } } }`,
    { volume: SOURCE },
    'createSnapshot',
  );
  await snapshotReady(SOURCE, 's1');
  await writeBlock(client, 0, dataB);
  await writeBlock(client, 4 * MiB, dataC);
  client.close();
  await detach(SOURCE);
  await until(SOURCE, 'detached', (volume) => volume.state === 'DETACHED');

  // A snapshot of a detached volume: attached for it (a snapshot ticket), then detached again;
  // deleting it attaches it again for the deletion.
  await mutate(
    `mutation ($volume: String!) { createSnapshot(volume: $volume, name: "while-detached") { errors { code message } } }`,
    { volume: SOURCE },
    'createSnapshot',
  );
  await snapshotReady(SOURCE, 'while-detached', 60_000);
  await until(
    SOURCE,
    'detached again without tickets',
    (volume) => volume.state === 'DETACHED' && volume.attachmentTickets.length === 0,
  );
  await mutate(
    `mutation ($volume: String!) { deleteSnapshot(volume: $volume, name: "while-detached") { errors { code message } } }`,
    { volume: SOURCE },
    'deleteSnapshot',
  );
  await waitFor(async () => {
    const { snapshots } = await api.query<{ snapshots: { name: string; removed: boolean }[] }>(
      `query ($volume: String!) { snapshots(volume: $volume) { name removed } }`,
      { volume: SOURCE },
    );
    const left = snapshots.find((snapshot) => snapshot.name === 'while-detached');
    assert.ok(left === undefined || left.removed === true, JSON.stringify(snapshots));
    return snapshots;
  }, 60_000);
  await until(
    SOURCE,
    'detached after the deletion',
    (volume) => volume.state === 'DETACHED' && volume.attachmentTickets.length === 0,
  );

  const expectations: [string, string, [number, Buffer][]][] = [
    [
      'from-snapshot',
      `snap://${SOURCE}/s1`,
      [
        [0, dataA],
        [4 * MiB, Buffer.alloc(MiB)],
      ],
    ],
    [
      'from-volume',
      `vol://${SOURCE}`,
      [
        [0, dataB],
        [4 * MiB, dataC],
      ],
    ],
  ];
  for (const [name, dataSource, blocks] of expectations) {
    await create(name, dataSource);
    await attach(name);
    const attached = await until(
      name,
      'the clone, then the attach it held back',
      (volume) => volume.state === 'ATTACHED' && volume.endpoint !== null,
      120_000,
    );
    assert.equal(attached.cloneStatus?.state, 'completed', JSON.stringify(attached.cloneStatus));
    assert.equal(attached.cloneStatus?.sourceVolume, SOURCE);
    assert.equal(attached.cloneStatus?.progress, 100);
    // Only data crossed: A (from the snapshot) or B and C (from the volume).
    const dataBytes = blocks.filter(([, data]) => data.some((byte) => byte !== 0)).length * MiB;
    assert.equal(Number(attached.cloneStatus?.transferredBytes), dataBytes);
    assert.deepEqual(
      attached.attachmentTickets.filter((ticket) => ticket.type === 'CLONE' || ticket.type === 'clone'),
      [],
      'the clone ticket is gone',
    );
    client = await openNbd(attached.endpoint!);
    // Reads rotate over the two replicas: read twice so that both answer.
    for (let round = 0; round < 2; round++) {
      for (const [offset, data] of blocks)
        assert.ok(
          (await readBlock(client, offset, data.length)).equals(data),
          `${name} at ${offset}, round ${round}`,
        );
    }
    client.close();
    // The operator CLI shows where the volume's data came from.
    const inspected = execFileSync(process.execPath, [HORNBILL, 'volume', 'inspect', name], {
      env: { ...process.env, HORNBILL_SERVER: cluster.manager.url, HORNBILL_TOKEN: token },
      encoding: 'utf8',
    });
    assert.match(
      inspected,
      new RegExp(`^Data source: +${dataSource}: completed 100% \\(snapshot \\S+, [^)]+ copied\\)$`, 'm'),
      inspected,
    );
    const events = (
      await api.query<{ events: { reason: string; message: string }[] }>(
        `query ($name: String!) { events(kind: "Volume", name: $name) { reason message } }`,
        { name },
      )
    ).events;
    assert.ok(
      events.some((event) => event.reason === 'Cloned' && event.message.includes(dataSource)),
      JSON.stringify(events.map((event) => event.reason)),
    );
  }
  source = await until(
    SOURCE,
    'detached again, without clone tickets',
    (volume) => volume.state === 'DETACHED',
  );
  assert.deepEqual(source.attachmentTickets, []);
});
