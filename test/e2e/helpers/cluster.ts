/**
 * The e2e harness: a real cluster of processes — N `hornbill instance-manager` and one
 * `hornbill manager`, launched by the same code as `hornbill up` (src/manager/local-cluster.ts)
 * — in a temp folder, with a ResourceStore that talks to the manager over HTTP.
 *
 * ```ts
 * const cluster = await startCluster({ t, nodes: 3, settings: { 'replica-soft-anti-affinity': 'true' } });
 * await cluster.store.create({ kind: 'Volume', metadata: { name: 'vol1', namespace: cluster.namespace }, spec: { size: '1Gi' } });
 * await cluster.nodes[1].kill();           // SIGKILL; not restarted until…
 * await cluster.nodes[1].start();          // …the test starts it again (same address and ports)
 * await cluster.manager.kill(); await cluster.manager.start();
 * ```
 *
 * - Each cluster has its own loopback block, 127.<2-250>.<0-255>.10 (manager) and .11+
 *   (nodes), and every port is picked by its process at the first start (port 0), then
 *   kept for restarts; so two clusters run side by side (tests run with concurrency 2).
 * - Settings are written as Setting resources before the controllers start.
 * - Nothing leaks: with `t`, `stop()` runs when the test ends (pass or fail); every child
 *   is also SIGKILLed if the test process exits. `stop()` removes the temp folder, unless
 *   HORNBILL_E2E_KEEP=1 (then it prints where it is). Each process's stderr is in
 *   `<dataDirectory>/logs/<name>.log` and, the last 2,000 lines, in `cluster.logs(name)`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../../src/logging.ts';
import { HttpResourceStore } from '../../../src/manager/http-store.ts';
import { LocalCluster } from '../../../src/manager/local-cluster.ts';
import type { ReadyLine, SupervisedProcess } from '../../../src/manager/supervisor.ts';
import { DEFAULT_NAMESPACE } from '../../../src/resources/api.ts';
import type { ResourceStore } from '../../../src/resources/store/types.ts';

export interface ClusterOptions {
  /** Registers stop() on t.after. Without it the caller must call stop(). */
  t?: TestContext;
  /** Default 3. */
  nodes?: number;
  /** Setting name → value (Setting resources written before the controllers start). */
  settings?: Record<string, string>;
  /** Manager log level (default info). */
  managerLogLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** false: the manager runs without controllers (tests of the harness itself). Default true. */
  controllers?: boolean;
  /** Extra environment for every child (e.g. HORNBILL_INSTANCE_FAILPOINT). */
  env?: Record<string, string>;
}

export interface ClusterProcess {
  /** Sends `signal` (default SIGKILL) and waits for the exit. Not restarted by itself. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again (same address and ports) and waits until it is ready. */
  start(): Promise<void>;
  readonly running: boolean;
  readonly pid: number | undefined;
}

export interface ClusterNode extends ClusterProcess {
  /** node-1 … */
  name: string;
  /** The node's loopback address (replicas and frontends listen here). */
  address: string;
  /** host:port of its instance manager's gRPC service. */
  grpcAddress: string;
  iscsiPort: number;
  nbdPort: number;
  /** http://ADDRESS:PORT/metrics of its instance manager. */
  metricsUrl: string;
  /** Its one disk folder. */
  disk: string;
}

export interface ClusterManager extends ClusterProcess {
  /** http://HOST:PORT */
  url: string;
}

export interface Cluster {
  store: ResourceStore;
  namespace: string;
  nodes: ClusterNode[];
  manager: ClusterManager;
  dataDirectory: string;
  /** The last 2,000 stderr lines of `manager` or `node-K`. */
  logs(name: string): string[];
  /** Stops everything, closes the store, removes the temp folder. Idempotent. */
  stop(): Promise<void>;
}

const LOG_LINES_KEPT = 2000;

function randomLoopbackBlock(): string {
  const second = 2 + Math.floor(Math.random() * 249);
  const third = Math.floor(Math.random() * 256);
  return `127.${second}.${third}`;
}

function processHandle(process: SupervisedProcess): ClusterProcess {
  return {
    kill: (signal = 'SIGKILL') => process.kill(signal),
    start: async () => {
      await process.start();
    },
    get running() {
      return process.running;
    },
    get pid() {
      return process.pid;
    },
  };
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const nodeCount = options.nodes ?? 3;
  const dataDirectory = fs.mkdtempSync(path.join(os.tmpdir(), 'hornbill-e2e-'));
  const logDirectory = path.join(dataDirectory, 'logs');
  fs.mkdirSync(logDirectory, { recursive: true });
  const logFiles = new Map<string, fs.WriteStream>();
  const logLines = new Map<string, string[]>();
  const onStderrLine = (name: string, line: string) => {
    let file = logFiles.get(name);
    if (file === undefined) {
      file = fs.createWriteStream(path.join(logDirectory, `${name}.log`), { flags: 'a' });
      file.on('error', () => {});
      logFiles.set(name, file);
    }
    file.write(`${line}\n`);
    const lines = logLines.get(name) ?? [];
    lines.push(line);
    if (lines.length > LOG_LINES_KEPT) lines.shift();
    logLines.set(name, lines);
  };
  const harnessLog: Logger = (level, message, details) =>
    onStderrLine('harness', JSON.stringify({ time: new Date().toISOString(), level, message, ...details }));
  const block = randomLoopbackBlock();
  let local: LocalCluster | undefined;
  let store: HttpResourceStore | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      await store?.close();
      await local?.stop();
      for (const file of logFiles.values()) file.end();
      if (process.env.HORNBILL_E2E_KEEP === '1') {
        process.stderr.write(`hornbill e2e: cluster data kept in ${dataDirectory}\n`);
      } else {
        fs.rmSync(dataDirectory, { recursive: true, force: true, maxRetries: 3 });
      }
    })();
    return stopping;
  };
  options.t?.after(stop);
  try {
    local = await LocalCluster.start({
      dataDirectory,
      nodeCount,
      baseAddress: `${block}.11`,
      ports: { grpc: 0, iscsi: 0, nbd: 0, metrics: 0 },
      listen: { host: `${block}.10`, port: 0 },
      settings: options.settings,
      log: harnessLog,
      restart: false,
      onStderrLine,
      env: { ...process.env, ...options.env },
      managerLogLevel: options.managerLogLevel,
      controllers: options.controllers,
      // In the test's process group: a Ctrl-C on the test run reaches them too.
      detached: false,
    });
  } catch (error) {
    await stop();
    throw error;
  }
  const cluster = local;
  const managerReady = cluster.manager.ready as ReadyLine;
  store = new HttpResourceStore({ url: managerReady.url });
  const nodes: ClusterNode[] = cluster.nodes.map(({ spec, process }) => {
    const ready = process.ready as ReadyLine;
    return Object.assign(processHandle(process), {
      name: spec.name,
      address: spec.address,
      grpcAddress: `${ready.grpc.host}:${ready.grpc.port}`,
      iscsiPort: Number(ready.iscsi.port),
      nbdPort: Number(ready.nbd.port),
      metricsUrl: `http://${ready.metrics.host}:${ready.metrics.port}/metrics`,
      disk: spec.disk,
    }) as ClusterNode;
  });
  const manager: ClusterManager = Object.assign(processHandle(cluster.manager), { url: managerReady.url });
  return {
    store,
    namespace: DEFAULT_NAMESPACE,
    nodes,
    manager,
    dataDirectory,
    logs: (name) => [...(logLines.get(name) ?? [])],
    stop,
  };
}

/** Polls `check` until it returns without throwing (default 60 s), then returns its value. */
export async function waitFor<T>(check: () => Promise<T>, timeoutMs = 60_000, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(intervalMs);
    }
  }
}
