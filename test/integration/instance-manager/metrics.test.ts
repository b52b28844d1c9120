import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { NBD } from '../../helpers/nbd-client.ts';
import { defer, patternBytes, tempDirectory } from '../../helpers/temp.ts';
import { requireTool } from '../../helpers/tools.ts';
import { attachNbd, MiB, startInstanceManager, waitFor } from './fixture.ts';

/**
 * The instance manager's /metrics: frontend I/O counted exactly, engine robustness and
 * replica modes follow the engine (a stopped replica shows as ERR and the volume as
 * degraded), disks and replicas reported, and the output passes `promtool check metrics`.
 */

async function scrape(host: string, port: number): Promise<string> {
  const response = await fetch(`http://${host}:${port}/metrics`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
  return response.text();
}

/** The value of the one sample of `name` whose labels include all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-z_:][a-z0-9_:]*)(?:\{(.*)\})? (\S+)$/i.exec(line);
    if (match === null || match[1] !== name) continue;
    const present = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      present.set(pair[1], pair[2]);
    if (Object.entries(labels).every(([key, value]) => present.get(key) === value)) return Number(match[3]);
  }
  return undefined;
}

test('/metrics counts frontend I/O, follows robustness and replica modes, and passes promtool', async (t) => {
  const root = tempDirectory(t);
  const disk = path.join(root, 'node-1');
  const node = await startInstanceManager(t, { node: 'node-1', address: '127.0.0.14', disk });
  const im = node.client;
  const replicas = [];
  for (const name of ['vol1-r-1', 'vol1-r-2']) {
    const view = await im.call('CreateReplica', {
      name,
      volume_name: 'vol1',
      size_bytes: 16 * MiB,
      disk_path: disk,
      data_directory_name: name,
    });
    replicas.push(`127.0.0.14:${view.port}`);
  }
  await im.call('CreateEngine', {
    name: 'vol1-e-0',
    volume_name: 'vol1',
    size_bytes: 16 * MiB,
    replica_addresses: replicas,
    frontend: 'nbd',
    replica_timeout_ms: 3000,
  });
  const nbd = await attachNbd(t, '127.0.0.14', node.nbdPort, 'vol1');
  const writes = 37;
  const reads = 11;
  for (let index = 0; index < writes; index++) await nbd.write(index * 8192, patternBytes(index, 8192));
  for (let index = 0; index < reads; index++) await nbd.read(index * 4096, 4096);
  assert.equal(await nbd.command(NBD.CMD_FLUSH), 0);
  const engine = { volume: 'vol1', engine: 'vol1-e-0' };

  const healthy = await waitFor('robustness healthy in /metrics', async () => {
    const text = await scrape('127.0.0.14', node.metricsPort);
    return sample(text, 'hornbill_engine_robustness', { ...engine, robustness: 'healthy' }) === 1
      ? text
      : undefined;
  });
  assert.equal(
    sample(healthy, 'hornbill_volume_io_operations_total', { ...engine, operation: 'write' }),
    writes,
  );
  assert.equal(
    sample(healthy, 'hornbill_volume_io_bytes_total', { ...engine, operation: 'write' }),
    writes * 8192,
  );
  assert.equal(
    sample(healthy, 'hornbill_volume_io_operations_total', { ...engine, operation: 'read' }),
    reads,
  );
  assert.equal(sample(healthy, 'hornbill_volume_io_operations_total', { ...engine, operation: 'flush' }), 1);
  assert.equal(sample(healthy, 'hornbill_volume_io_errors_total', { ...engine, operation: 'write' }), 0);
  assert.equal(
    sample(healthy, 'hornbill_volume_io_latency_seconds_count', { ...engine, operation: 'write' }),
    writes,
  );
  assert.equal(
    sample(healthy, 'hornbill_volume_io_latency_seconds_bucket', {
      ...engine,
      operation: 'write',
      le: '+Inf',
    }),
    writes,
  );
  assert.equal(sample(healthy, 'hornbill_engine_state', { ...engine, state: 'running' }), 1);
  assert.equal(sample(healthy, 'hornbill_replica_state', { replica: 'vol1-r-2', state: 'running' }), 1);
  for (const address of replicas)
    assert.equal(
      sample(healthy, 'hornbill_engine_replica_mode', { replica_address: address, mode: 'RW' }),
      1,
    );
  assert.ok((sample(healthy, 'hornbill_disk_capacity_bytes', { disk }) ?? 0) > 0);
  assert.ok(
    (sample(healthy, 'hornbill_replica_allocated_bytes', { replica: 'vol1-r-1' }) ?? 0) >= writes * 8192,
  );
  assert.ok((sample(healthy, 'hornbill_instance_manager_process_resident_memory_bytes', {}) ?? 0) > 0);

  // A replica goes away: the next writes drop it; /metrics shows degraded and ERR.
  await im.call('StopReplica', { name: 'vol1-r-2' });
  await nbd.write(0, patternBytes(99, 4096));
  const degraded = await waitFor('robustness degraded in /metrics', async () => {
    const text = await scrape('127.0.0.14', node.metricsPort);
    return sample(text, 'hornbill_engine_robustness', { ...engine, robustness: 'degraded' }) === 1
      ? text
      : undefined;
  });
  assert.equal(sample(degraded, 'hornbill_engine_robustness', { ...engine, robustness: 'healthy' }), 0);
  assert.equal(
    sample(degraded, 'hornbill_engine_replica_mode', { replica_address: replicas[1], mode: 'ERR' }),
    1,
  );
  assert.equal(
    sample(degraded, 'hornbill_engine_replica_mode', { replica_address: replicas[0], mode: 'RW' }),
    1,
  );
  assert.equal(sample(degraded, 'hornbill_replica_state', { replica: 'vol1-r-2', state: 'stopped' }), 1);

  // Anything but GET /metrics and /healthz is refused without harm.
  assert.equal((await fetch(`http://127.0.0.14:${node.metricsPort}/nope`)).status, 404);
  assert.equal(
    (await fetch(`http://127.0.0.14:${node.metricsPort}/metrics`, { method: 'POST' })).status,
    405,
  );
  assert.equal((await fetch(`http://127.0.0.14:${node.metricsPort}/healthz`)).status, 200);

  if (!requireTool(t, 'promtool', 'prometheus')) return;
  const checked = spawnSync('promtool', ['check', 'metrics'], { input: degraded, encoding: 'utf8' });
  defer(t, () => {});
  assert.equal(checked.status, 0, `promtool check metrics failed:\n${checked.stdout}${checked.stderr}`);
});
