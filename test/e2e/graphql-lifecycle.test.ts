import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from '../helpers/tools.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';
import { adminApi } from './helpers/graphql.ts';
import { openNbd, pattern, readBlock, writeBlock } from './volume-helpers.ts';

/**
 * Issue 6, must-holds 1 and 4: a volume's whole life — create, attach, write, snapshot,
 * degrade (a replica deleted), rebuild, detach, delete — driven only through GraphQL
 * mutations against real processes, while a subscriber (SSE) records every change: it sees
 * the transitions in order. The manager's /metrics shows the volume degraded while it is.
 */

const VOLUME = 'gql-vol';

interface Change {
  type: string;
  kind: string;
  state: string | null;
  robustness: string | null;
}

test('a volume driven only through GraphQL; a subscriber sees each transition in order', {
  timeout: 300_000,
}, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 3,
    settings: { 'storage-minimal-available-percentage': '0', 'replica-replenishment-wait-interval': '1' },
  });
  const { api, mutate } = await adminApi(cluster, 'graphql-e2e');

  // The subscriber, before anything exists.
  const changes: Change[] = [];
  const abort = new AbortController();
  t.after(() => abort.abort());
  const subscriber = (async () => {
    for await (const data of api.subscribe<{ volumeChanged: Change }>(
      `subscription ($name: String) { volumeChanged(name: $name) { type kind state robustness } }`,
      { name: VOLUME },
      abort.signal,
    ))
      changes.push(data.volumeChanged);
  })();
  await sleep(500);

  const volume = () =>
    api.query<{
      volume: {
        state: string;
        robustness: string;
        endpoint: string | null;
        replicas: { name: string; mode: string | null }[];
      } | null;
    }>(
      `query ($name: String!) { volume(name: $name) { state robustness endpoint replicas { name mode } } }`,
      {
        name: VOLUME,
      },
    );
  const until = (what: string, check: (current: Awaited<ReturnType<typeof volume>>['volume']) => boolean) =>
    waitFor(async () => {
      const found = (await volume()).volume;
      // GraphQL enums are upper case (ATTACHED, HEALTHY); the resources' values lower case.
      const current =
        found === null
          ? null
          : { ...found, state: found.state?.toLowerCase(), robustness: found.robustness?.toLowerCase() };
      assert.ok(check(current), `${what}: ${JSON.stringify(current)}`);
      return current;
    }, 120_000);

  await mutate(
    `mutation ($input: CreateVolumeInput!) { createVolume(input: $input) { errors { code message } } }`,
    { input: { name: VOLUME, size: '64Mi', numberOfReplicas: 3, frontend: 'NBD' } },
    'createVolume',
  );
  await until('detached', (current) => current?.state === 'detached');
  await mutate(
    `mutation ($name: String!) { attachVolume(name: $name, node: "node-1", frontend: NBD) { errors { code message } } }`,
    { name: VOLUME },
    'attachVolume',
  );
  const attached = await until(
    'attached and healthy',
    (current) =>
      current?.state === 'attached' && current.robustness === 'healthy' && current.endpoint !== null,
  );
  const client = await openNbd(attached!.endpoint!);
  t.after(() => client.close());
  const data = pattern(7, 1024 * 1024);
  await writeBlock(client, 0, data);
  await mutate(
    `mutation ($volume: String!) { createSnapshot(volume: $volume, name: "first") { errors { code message } } }`,
    { volume: VOLUME },
    'createSnapshot',
  );

  // Degrade: one replica deleted; a new one is scheduled and rebuilt.
  const victim = attached!.replicas[1].name;
  await mutate(
    `mutation ($volume: String!, $replica: String!) { deleteReplica(volume: $volume, replica: $replica) { errors { code message } } }`,
    { volume: VOLUME, replica: victim },
    'deleteReplica',
  );
  await until('degraded', (current) => current?.robustness === 'degraded');
  // /metrics shows it while it lasts (a scrape interval is 15 s; the figure is read at scrape time).
  const metrics = await (await fetch(`${cluster.manager.url}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`hornbill_volume_robustness\\{volume="${VOLUME}",robustness="degraded"\\} 1`),
    'the manager’s /metrics reports the volume degraded',
  );
  const reconciles =
    /hornbill_controller_reconciles_total\{controller="volume",result="success"\} (\d+)/.exec(metrics);
  assert.ok(
    reconciles !== null && Number(reconciles[1]) > 0,
    'the volume controller’s reconciles are counted',
  );
  if (requireTool(t, 'promtool', 'prometheus')) {
    const checked = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    assert.equal(checked.status, 0, `promtool check metrics:\n${checked.stdout}${checked.stderr}`);
  }
  const healed = await until(
    'healthy again with three RW replicas',
    (current) =>
      current?.robustness === 'healthy' &&
      current.replicas.length === 3 &&
      current.replicas.every((replica) => replica.mode === 'RW' && replica.name !== victim),
  );
  assert.equal(healed!.replicas.length, 3);
  assert.ok((await readBlock(client, 0, data.length)).equals(data), 'the data survived the rebuild');
  client.close();

  await mutate(
    `mutation ($name: String!) { detachVolume(name: $name) { errors { code message } } }`,
    { name: VOLUME },
    'detachVolume',
  );
  await until('detached again', (current) => current?.state === 'detached');
  await mutate(
    `mutation ($name: String!) { deleteVolume(name: $name) { errors { code message } } }`,
    { name: VOLUME },
    'deleteVolume',
  );
  await until('gone', (current) => current === null);
  await sleep(1000);
  abort.abort();
  await subscriber;

  // The subscriber saw the volume's transitions, in the order they happened.
  const volumeChanges = changes.filter((change) => change.kind === 'Volume');
  const steps: string[] = [];
  for (const change of volumeChanges) {
    const step =
      change.type === 'DELETED'
        ? 'deleted'
        : `${change.state?.toLowerCase()}/${change.robustness?.toLowerCase() ?? ''}`;
    if (steps.at(-1) !== step) steps.push(step);
  }
  const expected = [
    'detached/',
    'attached/healthy',
    'attached/degraded',
    'attached/healthy',
    'detached/',
    'deleted',
  ];
  let position = 0;
  for (const step of steps) {
    const wanted = expected[position];
    if (wanted !== undefined && step.startsWith(wanted.replace(/\/$/, '/'))) position++;
  }
  assert.equal(position, expected.length, `the subscriber saw ${steps.join(' → ')}`);
  t.diagnostic(`volume transitions seen: ${steps.join(' → ')}`);
});
