/**
 * `hornbill manager` as a process: its ready line, /healthz and /metrics, settings written
 * at start, and a SIGTERM that ends open watches cleanly, exits 0 and leaves the store
 * closed (a second manager opens it and finds the objects). In Kubernetes mode, without a
 * cluster: an API server that cannot be reached stops it at start with a coded error.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { HttpResourceStore } from '../../../src/manager/http-store.ts';
import { startHornbill } from '../../helpers/processes.ts';
import { defer, tempDirectory } from '../../helpers/temp.ts';

const namespace = 'hornbill-system';

test('manager: ready line, health, metrics, settings, clean stop on SIGTERM', async (t) => {
  const directory = tempDirectory(t);
  const args = [
    'manager',
    '--store',
    `embedded:${directory}/state`,
    '--listen',
    '127.0.0.1:0',
    '--no-controllers',
  ];
  const manager = await startHornbill(t, [...args, '--setting', 'replica-soft-anti-affinity=true']);
  assert.equal(manager.ready.role, 'manager');
  assert.equal(manager.ready.controllers, false);
  assert.equal(manager.ready.api, `${manager.ready.url}/apis/hornbill.io/v1beta1`);
  const store = new HttpResourceStore({ url: manager.ready.url });
  defer(t, () => void store.close());
  assert.deepEqual(await (await fetch(`${manager.ready.url}/healthz`)).json(), {
    ok: true,
    store: 'embedded',
    controllers: false,
  });
  const setting = await store.get({ kind: 'Setting', namespace, name: 'replica-soft-anti-affinity' });
  assert.equal(setting.spec.value, 'true');
  await store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace }, spec: { size: '1Gi' } });
  const watch = store.watch('Volume', { namespace });
  assert.equal((await watch.next()).done, false);
  const metrics = await (await fetch(manager.ready.metrics)).text();
  assert.match(
    metrics,
    /hornbill_manager_store_writes_total\{operation="create",kind="Volume",outcome="ok"\} 1/,
  );
  assert.match(metrics, /hornbill_manager_watches_open 1/);
  assert.match(
    metrics,
    /hornbill_manager_http_requests_total\{method="GET",route="\/healthz",status="200"\} 1/,
  );

  manager.child.kill('SIGTERM');
  assert.deepEqual(await watch.next(), { value: undefined, done: true }, 'the watch ends cleanly');
  assert.deepEqual(await manager.exited, { code: 0, signal: null });
  assert.match(manager.stderr(), /"message":"manager stopping"/);

  const again = await startHornbill(t, args);
  const reopened = new HttpResourceStore({ url: again.ready.url });
  defer(t, () => void reopened.close());
  const volume = await reopened.get({ kind: 'Volume', namespace, name: 'vol1' });
  assert.equal(volume.spec.size, '1Gi');
  await again.stop();
});

test('manager --store kubernetes: an API server that cannot be reached is a coded error and exit 1', async (t) => {
  const directory = tempDirectory(t);
  const kubeconfig = path.join(directory, 'kubeconfig');
  // Port 1 on loopback: the connection is refused at once.
  fs.writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'nowhere', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'user', user: { token: 'unused' } }],
      contexts: [{ name: 'context', context: { cluster: 'nowhere', user: 'user' } }],
      'current-context': 'context',
    }),
  );
  const hornbill = path.join(import.meta.dirname, '..', '..', '..', 'bin', 'hornbill.mjs');
  const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [hornbill, 'manager', '--store', 'kubernetes', '--kubeconfig', kubeconfig, '--identity', 'test'],
      { timeout: 60_000 },
      (error, _stdout, stderr) => resolve({ code: error === null ? 0 : (error.code as number), stderr }),
    );
  });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /KUBERNETES_UNREACHABLE/);
});
