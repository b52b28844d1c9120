/**
 * Must-hold 2 of issue 6: the volume life cycle through the operator CLI, run as a user
 * runs it (`bin/hornbill.mjs` in a child process) against a real cluster — create, ls
 * (the kubectl table), attach / detach with --wait, a `volume ls --watch` that sees the
 * attach and a `volume inspect --watch` that follows the detach, snapshot create / ls,
 * setting set / get, event ls, the exit codes of a bad token, a read-only token, a
 * missing volume, an unreachable manager and a bad command line, a support bundle that
 * `tar` can read and that holds the volume's YAML and no token, then delete. Everything
 * asserted is what the commands printed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { TokenStore } from '../../src/graphql/index.ts';
import { TOKENS_FILE_NAME } from '../../src/manager/manager.ts';
import { startCluster, waitFor } from './helpers/cluster.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const HORNBILL = path.join(ROOT, 'bin', 'hornbill.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A free loopback port nobody listens on (for the unreachable-manager case). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Splits a table line into cells at the column starts of its header. */
function cells(header: string, line: string): Record<string, string> {
  const titles = header.split(/ {3,}/);
  const starts = titles.map((title) => header.indexOf(title));
  return Object.fromEntries(
    titles.map((title, index) => [title, line.slice(starts[index], starts[index + 1]).trim()]),
  );
}

test('the operator CLI drives a volume through its life cycle', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster({
    t,
    nodes: 2,
    settings: { 'storage-minimal-available-percentage': '0' },
  });
  const tokens = await TokenStore.open(path.join(cluster.dataDirectory, 'state', TOKENS_FILE_NAME));
  const adminToken = await tokens.create('cli-admin', 'admin');
  const readToken = await tokens.create('cli-reader', 'read');
  // An empty config folder: a token file of the machine's user must not leak into the test.
  const configHome = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-cli-config-'));
  t.after(() => fs.rmSync(configHome, { recursive: true, force: true }));
  const environment = {
    ...process.env,
    HORNBILL_SERVER: cluster.manager.url,
    HORNBILL_TOKEN: adminToken,
    XDG_CONFIG_HOME: configHome,
  };
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  });
  const start = (args: string[], extra: Record<string, string> = {}) => {
    const child = spawn(process.execPath, [HORNBILL, ...args], {
      env: { ...environment, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    const run: Run = { code: null, stdout: '', stderr: '' };
    child.stdout?.on('data', (chunk) => (run.stdout += chunk));
    child.stderr?.on('data', (chunk) => (run.stderr += chunk));
    const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ ...run, code })));
    return { child, run, done };
  };
  const hornbill = (...args: string[]) => start(args).done;
  const ok = async (...args: string[]) => {
    const result = await hornbill(...args);
    assert.equal(result.code, 0, `hornbill ${args.join(' ')}: ${result.stderr}`);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
    return result.stdout;
  };

  // The nodes are there.
  const nodes = (await ok('node', 'ls')).trimEnd().split('\n');
  assert.match(nodes[0], /^NAME {3,}READY {3,}SCHEDULABLE {3,}ALLOW-SCHEDULING {3,}TAGS {3,}DISKS {3,}AGE$/);
  assert.deepEqual(
    nodes.slice(1).map((line) => cells(nodes[0], line).NAME),
    ['node-1', 'node-2'],
  );

  // create → the kubectl table shows it.
  assert.equal(
    await ok('volume', 'create', 'cli-vol', '--size', '1Gi', '--replicas', '2', '--wait'),
    'volume/cli-vol created\n',
  );
  const table = (await ok('volume', 'ls')).trimEnd().split('\n');
  assert.match(table[0], /^NAME {3,}STATE {3,}ROBUSTNESS {3,}SIZE {3,}NODE {3,}AGE$/);
  const row = cells(
    table[0],
    table.find((line) => line.startsWith('cli-vol ')) ?? assert.fail(table.join('\n')),
  );
  assert.equal(row.STATE, 'detached');
  assert.equal(row.SIZE, '1Gi');
  assert.equal(row.NODE, '<none>');
  assert.match(row.AGE, /^\d+s$/);
  const listed = JSON.parse(await ok('volume', 'ls', '-o', 'json')) as {
    items: { name: string; numberOfReplicas: number }[];
  };
  assert.equal(listed.items.find((volume) => volume.name === 'cli-vol')?.numberOfReplicas, 2);

  // A watcher sees the attach.
  const watcher = start(['volume', 'ls', '--watch']);
  await waitFor(async () => assert.match(watcher.run.stdout, /^cli-vol +detached/m), 20_000);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the subscription's watches start
  await ok('volume', 'attach', 'cli-vol', '--node', 'node-1', '--wait', '--timeout', '60s');
  await waitFor(
    async () => assert.match(watcher.run.stdout, /^cli-vol +attached +\S+ +1Gi +node-1/m),
    20_000,
  );
  watcher.child.kill('SIGINT');
  const watched = await watcher.done;
  assert.equal(watched.code, 0, watched.stderr);
  const states = [...watched.stdout.matchAll(/^cli-vol +(\S+)/gm)].map((match) => match[1]);
  assert.equal(states[0], 'detached');
  assert.equal(states.at(-1), 'attached');
  const wide = (await ok('volume', 'ls', '-o', 'wide')).trimEnd().split('\n');
  const wideRow = cells(wide[0], wide.find((line) => line.startsWith('cli-vol ')) as string);
  assert.equal(wideRow.STATE, 'attached');
  assert.equal(wideRow.NODE, 'node-1');
  assert.equal(wideRow.REPLICAS, '2');
  assert.match(wideRow.ENDPOINT, /^iscsi:\/\//);

  // hornbill bench finds the attached volume's endpoint by its name.
  const benched = JSON.parse(
    await ok(
      'bench',
      '--volume',
      'cli-vol',
      '--rw',
      'randrw',
      '--bs',
      '4k',
      '--iodepth',
      '4',
      '--size',
      '8M',
      '--runtime',
      '1',
      '--time_based',
      '--verify',
      'crc32c',
      '--output-format',
      'json',
    ),
  ) as { jobs: { read: { io_bytes: number }; write: { io_bytes: number }; error: number }[] };
  assert.ok(
    benched.jobs[0].write.io_bytes > 0 && benched.jobs[0].read.io_bytes > 0,
    JSON.stringify(benched.jobs[0]),
  );
  assert.equal(benched.jobs[0].error, 0);
  const unattached = await hornbill('bench', '--volume', 'no-such-volume', '--rw', 'read', '--runtime', '1');
  assert.equal(unattached.code, 1);
  assert.match(unattached.stderr, /BENCH_VOLUME_NOT_ATTACHED: volume "no-such-volume" does not exist/);

  // Snapshots.
  assert.equal(
    await ok('snapshot', 'create', 'cli-vol', 'snap-1', '--label', 'purpose=e2e'),
    'snapshot/snap-1 created\n',
  );
  const snapshots = await waitFor(async () => {
    const text = (await ok('snapshot', 'ls', 'cli-vol', '-o', 'wide')).trimEnd().split('\n');
    const line = text.find((entry) => entry.startsWith('snap-1 '));
    assert.ok(line, text.join('\n'));
    return cells(text[0], line);
  }, 20_000);
  assert.equal(snapshots['USER-CREATED'], 'true');
  assert.equal(snapshots.REMOVED, 'false');
  assert.equal(snapshots.LABELS, 'purpose=e2e');
  const inspected = await ok('volume', 'inspect', 'cli-vol');
  assert.match(inspected, /^State: +attached$/m);
  assert.match(inspected, /^Engine: +cli-vol-e-0 on node-1, running/m);
  assert.equal(inspected.match(/^ {2}cli-vol-r-\S+ +node-\d +RW /gm)?.length, 2, inspected);
  assert.match(inspected, /^ {2}snap-1 /m);

  // Settings.
  assert.match(
    await ok('setting', 'set', 'replica-soft-anti-affinity', 'true'),
    /^setting\/replica-soft-anti-affinity set to "true"$/m,
  );
  const setting = JSON.parse(await ok('setting', 'get', 'replica-soft-anti-affinity', '-o', 'json'));
  assert.equal(setting.value, 'true');
  assert.equal(setting.isSet, true);

  // Events, newest first.
  const events = (await ok('event', 'ls', '--object', 'volume/cli-vol')).trimEnd().split('\n');
  assert.match(events[0], /^LAST SEEN {3,}TYPE {3,}REASON {3,}OBJECT {3,}MESSAGE$/);
  assert.ok(
    events.slice(1).every((line) => cells(events[0], line).OBJECT === 'volume/cli-vol'),
    events.join('\n'),
  );
  assert.ok(
    events.some((line) => cells(events[0], line).REASON === 'Attached'),
    events.join('\n'),
  );
  const eventList = JSON.parse(await ok('event', 'ls', '--limit', '20', '-o', 'json')) as {
    items: { lastTimestamp: string }[];
  };
  const times = eventList.items.map((event) => Date.parse(event.lastTimestamp));
  assert.deepEqual(
    times,
    [...times].sort((left, right) => right - left),
  );

  // Exit codes scripts can use.
  const badToken = await start(['volume', 'ls'], { HORNBILL_TOKEN: 'not-a-token' }).done;
  assert.equal(badToken.code, 4);
  assert.match(badToken.stderr, /^hornbill: GRAPHQL_UNAUTHENTICATED: /);
  const readOnly = await start(['volume', 'detach', 'cli-vol'], { HORNBILL_TOKEN: readToken }).done;
  assert.equal(readOnly.code, 4);
  assert.match(readOnly.stderr, /^hornbill: GRAPHQL_FORBIDDEN: /);
  const missing = await hornbill('volume', 'inspect', 'no-such-volume');
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^hornbill: RESOURCE_NOT_FOUND: /);
  const invalid = await hornbill('volume', 'expand', 'cli-vol', '--size', '512Mi');
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^hornbill: [A-Z_]+: .+/);
  const unreachable = await hornbill('volume', 'ls', '--server', `http://127.0.0.1:${await closedPort()}`);
  assert.equal(unreachable.code, 5);
  assert.match(unreachable.stderr, /^hornbill: MANAGER_UNREACHABLE: /);
  const usage = await hornbill('volume', 'attach', 'cli-vol');
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^hornbill: CLI_USAGE: --node is required/);
  for (const result of [badToken, readOnly, missing, invalid, unreachable, usage]) {
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }

  // A support bundle: valid for tar, the volume's YAML in it, no token anywhere.
  const bundleFolder = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-cli-bundle-'));
  t.after(() => fs.rmSync(bundleFolder, { recursive: true, force: true }));
  const bundle = path.join(bundleFolder, 'bundle.tar.gz');
  const metrics = cluster.nodes.flatMap((node) => ['--metrics-url', `${node.name}=${node.metricsUrl}`]);
  assert.equal(
    await ok('support-bundle', '--output', bundle, '--data', cluster.dataDirectory, ...metrics),
    `${bundle}\n`,
  );
  const entries = execFileSync('tar', ['-tzf', bundle], { encoding: 'utf8' }).trimEnd().split('\n');
  const volumeYaml = entries.find((entry) => /\/resources\/volumes\/[^/]+\/cli-vol\.yaml$/.test(entry));
  assert.ok(volumeYaml, entries.join('\n'));
  assert.match(
    execFileSync('tar', ['-xzf', bundle, '-O', volumeYaml], { encoding: 'utf8' }),
    /^kind: Volume$/m,
  );
  for (const expected of [
    'summary.json',
    'metrics/manager.txt',
    'metrics/node-1.txt',
    'graphql/settings.yaml',
    'resources/events.yaml',
  ]) {
    assert.ok(
      entries.some((entry) => entry.endsWith(`/${expected}`)),
      `${expected} in ${entries.join(' ')}`,
    );
  }
  assert.ok(
    entries.some((entry) => /\/logs\/node-1\/cli-vol-[er]-/.test(entry)),
    'instance logs',
  );
  const summaryEntry = entries.find((entry) => entry.endsWith('/summary.json')) as string;
  const summary = JSON.parse(execFileSync('tar', ['-xzf', bundle, '-O', summaryEntry], { encoding: 'utf8' }));
  assert.deepEqual(
    summary.nodes.map((node: { name: string }) => node.name),
    ['node-1', 'node-2'],
  );
  const everything = execFileSync('tar', ['-xzf', bundle, '-O'], { maxBuffer: 256 * 1024 * 1024 }).toString(
    'latin1',
  );
  assert.ok(!everything.includes(adminToken) && !everything.includes(readToken), 'no token in the bundle');

  // detach, followed by `volume inspect --watch`; delete.
  const inspector = start(['volume', 'inspect', 'cli-vol', '--watch']);
  await waitFor(async () => assert.match(inspector.run.stdout, /^Events:$/m), 20_000);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the subscription's watches start
  await ok('volume', 'detach', 'cli-vol', '--wait', '--timeout', '60s');
  await waitFor(
    async () =>
      assert.match(inspector.run.stdout, /^\d\d:\d\d:\d\d {2}Volume\/cli-vol modified {2}state=detached /m),
    20_000,
  );
  inspector.child.kill('SIGINT');
  const inspectedLive = await inspector.done;
  assert.equal(inspectedLive.code, 0, inspectedLive.stderr);
  assert.match(inspectedLive.stdout, /state=detaching/);
  assert.equal(
    await ok('volume', 'delete', 'cli-vol', '--wait', '--timeout', '60s'),
    'volume/cli-vol deleted\n',
  );
  assert.doesNotMatch(await ok('volume', 'ls'), /^cli-vol /m);
});
