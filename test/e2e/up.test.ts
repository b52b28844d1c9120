/**
 * `hornbill up` as an operator runs it: a manager and 3 instance managers come up on a temp
 * data folder, the API and metrics answer (and the controllers register the nodes, when
 * this build has them), a killed node and a killed manager are restarted by up's
 * supervision, SIGINT stops every child and frees every port, and a second `up` on the same
 * folder keeps what was created.
 * Each run uses a loopback block of its own (127.<random>.<random>.10+) and free ports.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { type TestContext, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpResourceStore } from '../../src/manager/http-store.ts';
import { applySettings } from '../../src/manager/manager.ts';
import { DEFAULT_NAMESPACE } from '../../src/resources/api.ts';
import { type HornbillProcess, startHornbill } from '../helpers/processes.ts';
import { defer, tempDirectory } from '../helpers/temp.ts';
import { waitFor } from './helpers/cluster.ts';

const namespace = DEFAULT_NAMESPACE;

interface UpReady {
  url: string;
  graphql: string;
  adminToken?: string;
  api: string;
  metrics: string;
  manager: { pid: number; listen: { host: string; port: number } };
  nodes: {
    name: string;
    address: string;
    grpc: string;
    iscsi: string;
    nbd: string;
    metrics: string;
    disk: string;
    pid: number;
  }[];
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves when host:port can be bound again (nothing listens there any more). */
function portFree(address: string): Promise<boolean> {
  const separator = address.lastIndexOf(':');
  const host = address.slice(0, separator);
  const port = Number(address.slice(separator + 1));
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

async function up(
  t: TestContext,
  data: string,
  block: string,
): Promise<{ process: HornbillProcess; ready: UpReady }> {
  const started = await startHornbill(t, [
    'up',
    '--data',
    data,
    '--nodes',
    '3',
    '--base-address',
    `${block}.11`,
    '--listen',
    `${block}.10:0`,
    '--grpc-port',
    '0',
    '--iscsi-port',
    '0',
    '--nbd-port',
    '0',
    '--metrics-port',
    '0',
    '--output',
    'json',
  ]);
  const ready = started.ready as unknown as UpReady;
  // up's children live in their own process group: if up itself is SIGKILLed by the
  // helper at the end of a failed test, they must be killed here.
  defer(t, () => {
    for (const pid of [ready.manager.pid, ...ready.nodes.map((node) => node.pid)]) {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
  return { process: started, ready };
}

/** Waits for up's log line saying that `name` was restarted; returns the new pid. */
async function restartedPid(running: HornbillProcess, name: string): Promise<number> {
  const pattern = new RegExp(
    `"message":"process restarted","process":"${name}","restarts":\\d+,"pid":(\\d+)`,
  );
  return waitFor(async () => {
    const match = pattern.exec(running.stderr());
    assert.ok(match !== null, `${name} was not restarted`);
    return Number(match[1]);
  }, 30_000);
}

async function interrupt(running: HornbillProcess): Promise<void> {
  running.child.kill('SIGINT');
  const timer = setTimeout(() => running.child.kill('SIGKILL'), 60_000);
  const { code, signal } = await running.exited;
  clearTimeout(timer);
  assert.equal(signal, null, running.stderr().slice(-2000));
  assert.equal(code, 0, running.stderr().slice(-2000));
}

test('hornbill up: comes up, answers, restarts a dead node and manager, stops cleanly, resumes', async (t) => {
  const data = tempDirectory(t, 'hornbill-up-');
  const block = `127.${2 + Math.floor(Math.random() * 249)}.${Math.floor(Math.random() * 256)}`;
  const first = await up(t, data, block);
  const { ready } = first;
  assert.equal(ready.nodes.length, 3);
  assert.deepEqual(
    ready.nodes.map((node) => [node.name, node.address]),
    [
      ['node-1', `${block}.11`],
      ['node-2', `${block}.12`],
      ['node-3', `${block}.13`],
    ],
  );
  assert.equal(ready.api, `${ready.url}/apis/hornbill.io/v1beta1`);
  const store = new HttpResourceStore({ url: ready.url });
  defer(t, () => void store.close());

  const health = (await (await fetch(`${ready.url}/healthz`)).json()) as {
    ok: boolean;
    controllers: boolean;
  };
  assert.equal(health.ok, true);
  const metrics = await (await fetch(ready.metrics)).text();
  assert.match(metrics, /hornbill_manager_process_cpu_seconds_total/);
  for (const name of ['manager', 'node-1', 'node-2', 'node-3'])
    assert.match(fs.readFileSync(path.join(data, 'logs', `${name}.log`), 'utf8'), /"level"/, `${name}.log`);

  // GraphQL is served with the admin token printed once; without a token it is refused.
  assert.equal(ready.graphql, `${ready.url}/graphql`);
  assert.ok(
    ready.adminToken !== undefined && ready.adminToken.length >= 32,
    'the first up prints an admin token',
  );
  const graphql = (token: string | undefined, query: string) =>
    fetch(ready.graphql, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify({ query }),
    });
  const anonymous = await graphql(undefined, '{ settings { name } }');
  assert.equal(anonymous.status, 401);
  const answered = (await (await graphql(ready.adminToken, '{ settings { name } }')).json()) as {
    data?: { settings: { name: string }[] };
  };
  assert.ok((answered.data?.settings.length ?? 0) > 10, JSON.stringify(answered).slice(0, 500));
  assert.equal(health.controllers, true);
  const nodes = await waitFor(async () => {
    const listed = await store.list('Node', { namespace });
    assert.deepEqual(
      listed.items.map((node) => node.metadata.name),
      ['node-1', 'node-2', 'node-3'],
    );
    return listed.items;
  });
  assert.equal(nodes.length, 3);
  await applySettings(store, namespace, { 'default-replica-count': '2' });
  const volume = await store.create({
    kind: 'Volume',
    metadata: { name: 'kept', namespace, labels: { test: 'up' } },
    spec: { size: '64Mi', numberOfReplicas: 1 },
  });

  // Supervision: a node that dies is started again, at the same address and port; so is
  // the manager, and the API answers at the same URL.
  const victim = ready.nodes[1];
  process.kill(victim.pid, 'SIGKILL');
  const nodePid = await restartedPid(first.process, 'node-2');
  assert.equal(await portFree(victim.grpc), false, 'the restarted node listens on its gRPC port again');
  process.kill(ready.manager.pid, 'SIGKILL');
  const managerPid = await restartedPid(first.process, 'manager');
  assert.equal(
    (await store.get({ kind: 'Volume', namespace, name: 'kept' })).metadata.uid,
    volume.metadata.uid,
  );

  await interrupt(first.process);
  const pids = [ready.manager.pid, ...ready.nodes.map((node) => node.pid), nodePid, managerPid];
  for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is still alive after SIGINT`);
  const addresses = [
    `${ready.manager.listen.host}:${ready.manager.listen.port}`,
    ...ready.nodes.flatMap((node) => [node.grpc, node.iscsi, node.nbd, new URL(node.metrics).host]),
  ];
  for (const address of addresses) assert.equal(await portFree(address), true, `${address} is still in use`);
  await store.close();

  const second = await up(t, data, block);
  assert.equal(second.ready.adminToken, undefined, 'the token is shown only once');
  const still = await fetch(second.ready.graphql, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ready.adminToken}` },
    body: JSON.stringify({ query: '{ settings { name } }' }),
  });
  assert.equal(still.status, 200, 'the first token still works after a restart');
  const again = new HttpResourceStore({ url: second.ready.url });
  defer(t, () => void again.close());
  const kept = await again.get({ kind: 'Volume', namespace, name: 'kept' });
  assert.equal(kept.metadata.uid, volume.metadata.uid);
  assert.deepEqual(kept.metadata.labels, { test: 'up' });
  const setting = await again.get({ kind: 'Setting', namespace, name: 'default-replica-count' });
  assert.equal(setting.spec.value, '2');
  await again.close();
  // up killed outright (no chance to stop its children): they notice and stop on their own.
  second.process.child.kill('SIGKILL');
  await second.process.exited;
  const orphans = [second.ready.manager.pid, ...second.ready.nodes.map((node) => node.pid)];
  await waitFor(async () => {
    for (const pid of orphans) assert.equal(alive(pid), false, `pid ${pid} outlived a killed up`);
  });
  await sleep(0);
});
