import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  PURGE_HANDLED_ANNOTATION,
  PURGE_REQUESTED_ANNOTATION,
  REVERT_SNAPSHOT_ANNOTATION,
} from '../../src/controllers/context.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';
import { adminApi } from './helpers/graphql.ts';
import { openNbd, pattern, readBlock, writeBlock } from './volume-helpers.ts';

/**
 * Issue 5 / 6: a snapshot revert and a purge driven through GraphQL against real processes.
 * Data A is written over NBD, snapshot `before` taken, data B written over it; the volume is
 * attached again without a frontend, revertSnapshot asked for; the engine controller
 * reverts every replica (Event SnapshotReverted, the annotation goes), a purge request is
 * carried out once (Event SnapshotsPurged); attached with NBD again, the volume reads A.
 */

const VOLUME = 'revert-vol';
const ENGINE = `${VOLUME}-e-0`;

interface EngineEvent {
  type: string;
  reason: string;
  message: string;
}

test('revertSnapshot through the engine controller: the volume reads what the snapshot held', {
  timeout: 180_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 2,
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const { api, mutate, snapshotReady } = await adminApi(cluster, 'snapshot-revert-e2e');
  const volume = async () =>
    (
      await api.query<{ volume: { state: string; endpoint: string | null } | null }>(
        `query ($name: String!) { volume(name: $name) { state endpoint } }`,
        { name: VOLUME },
      )
    ).volume;
  const untilState = (state: string, withEndpoint: boolean) =>
    waitFor(async () => {
      const current = await volume();
      assert.ok(
        current?.state === state && (!withEndpoint || current.endpoint !== null),
        `waiting for ${state}: ${JSON.stringify(current)}`,
      );
      return current;
    }, 60_000);
  const attach = async (disableFrontend: boolean) => {
    await mutate(
      `mutation ($name: String!, $disable: Boolean) { attachVolume(name: $name, node: "node-1", frontend: NBD, disableFrontend: $disable) { errors { code message } } }`,
      { name: VOLUME, disable: disableFrontend },
      'attachVolume',
    );
    return untilState('ATTACHED', !disableFrontend);
  };
  const detach = async () => {
    await mutate(
      `mutation ($name: String!) { detachVolume(name: $name) { errors { code message } } }`,
      { name: VOLUME },
      'detachVolume',
    );
    await untilState('DETACHED', false);
  };
  const engineEvents = async () =>
    (
      await api.query<{ events: EngineEvent[] }>(
        `query ($name: String!) { events(kind: "Engine", name: $name) { type reason message } }`,
        { name: ENGINE },
      )
    ).events;
  const engineAnnotations = async () =>
    (await cluster.store.get({ kind: 'Engine', namespace: cluster.namespace, name: ENGINE })).metadata
      .annotations ?? {};

  await mutate(
    `mutation ($input: CreateVolumeInput!) { createVolume(input: $input) { errors { code message } } }`,
    { input: { name: VOLUME, size: '32Mi', numberOfReplicas: 2, frontend: 'NBD' } },
    'createVolume',
  );
  await untilState('DETACHED', false);
  let attached = await attach(false);
  let client = await openNbd(attached!.endpoint!);
  const dataA = pattern(51, 1024 * 1024);
  const dataB = pattern(52, 1024 * 1024);
  await writeBlock(client, 0, dataA);
  await mutate(
    `mutation ($volume: String!) { createSnapshot(volume: $volume, name: "before") { errors { code message } } }`,
    { volume: VOLUME },
    'createSnapshot',
  );
  await snapshotReady(VOLUME, 'before');
  await writeBlock(client, 0, dataB);
  assert.ok((await readBlock(client, 0, dataB.length)).equals(dataB));
  client.close();

  // revertSnapshot needs the volume attached without a frontend.
  await detach();
  await attach(true);
  await mutate(
    `mutation ($volume: String!) { revertSnapshot(volume: $volume, name: "before") { errors { code message } } }`,
    { volume: VOLUME },
    'revertSnapshot',
  );
  const reverted = await waitFor(async () => {
    const events = await engineEvents();
    const failure = events.find((event) => event.reason === 'SnapshotRevertFailed');
    assert.equal(failure, undefined, `revert failed: ${failure?.message}`);
    const event = events.find((candidate) => candidate.reason === 'SnapshotReverted');
    assert.ok(event !== undefined, 'waiting for Event SnapshotReverted');
    assert.equal((await engineAnnotations())[REVERT_SNAPSHOT_ANNOTATION], undefined);
    return event;
  }, 30_000);
  assert.equal(reverted.type, 'Normal');
  assert.match(reverted.message, /reverted to snapshot before/);

  // A purge request is carried out once and remembered.
  await mutate(
    `mutation ($volume: String!) { purgeSnapshots(volume: $volume) { errors { code message } } }`,
    { volume: VOLUME },
    'purgeSnapshots',
  );
  await waitFor(async () => {
    const events = await engineEvents();
    assert.ok(
      events.some((event) => event.reason === 'SnapshotsPurged'),
      `waiting for Event SnapshotsPurged: ${JSON.stringify(events.map((event) => event.reason))}`,
    );
    const annotations = await engineAnnotations();
    assert.equal(annotations[PURGE_HANDLED_ANNOTATION], annotations[PURGE_REQUESTED_ANNOTATION]);
    return annotations;
  }, 30_000);

  await detach();
  attached = await attach(false);
  client = await openNbd(attached!.endpoint!);
  t.after(() => client.close());
  // Reads rotate over the replicas: read twice so that both answer.
  for (let round = 0; round < 2; round++) {
    assert.ok(
      (await readBlock(client, 0, dataA.length)).equals(dataA),
      `round ${round}: the volume holds the snapshot's data`,
    );
  }
  client.close();
});
