/**
 * The manager process (`hornbill manager`) in the embedded mode: the LMDB resource store, the
 * controllers, and the HTTP server (http-server.ts: /healthz, /metrics, /graphql, the
 * resource API) on one listen address. Kubernetes mode (`--store kubernetes`) is
 * kubernetes-mode.ts.
 *
 * ```ts
 * const manager = await startManager({
 *   storeDirectory: './hornbill-data/state', listen: { host: '127.0.0.1', port: 9500 },
 *   instanceManagers: [{ nodeID: 'node-1', grpcAddress: '127.0.0.11:8500', address: '127.0.0.11', disks: ['/data/node-1'] }],
 *   log: stderrLogger('manager'),
 * });
 * console.log(manager.url);           // http://127.0.0.1:9500
 * await manager.close();              // server, then controllers, then the store
 * ```
 *
 * The controllers (`src/controllers/index.ts`) run in the manager unless it is started with
 * `--no-controllers` (the store and its APIs alone, for tests of the API layer).
 * Settings given at start (`--setting NAME=VALUE`) are written as Setting resources before
 * the controllers start, so that they act on them from their first reconcile.
 */
import type http from 'node:http';
import path from 'node:path';
import { type RunningControllers, startControllers } from '../controllers/index.ts';
import { isHornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { registerClusterMetrics } from '../metrics/cluster-metrics.ts';
import { registerControllerMetrics } from '../metrics/controller-metrics.ts';
import { DEFAULT_NAMESPACE } from '../resources/api.ts';
import { jsonEqual } from '../resources/json.ts';
import { openEmbeddedStore } from '../resources/store/embedded.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import { type ManagerHttp, recordLogger, serveManagerHttp } from './http-server.ts';
import { ManagerMetrics, meteredStore } from './metrics.ts';
import type { HttpRouter } from './router.ts';

/** One node's instance manager, as the controllers are told about it. */
export interface InstanceManagerEndpoint {
  nodeID: string;
  /** host:port of its gRPC service. */
  grpcAddress: string;
  /** The node's address (where its replicas and frontends listen). */
  address: string;
  disks: readonly string[];
}

export interface ManagerOptions {
  /** Folder of the embedded store. */
  storeDirectory: string;
  listen: { host: string; port: number };
  namespace?: string;
  instanceManagers: readonly InstanceManagerEndpoint[];
  /** Setting name → value, written before the controllers start. */
  settings?: Readonly<Record<string, string>>;
  log: Logger;
  /** Changes the store keeps for watches to resume from (default 10 000). */
  changeLogLimit?: number;
  /**
   * The store has failed (RESOURCE_STORE_FAILED: a commit did not reach the disk) and must
   * be reopened: the caller should close the manager and exit non-zero so that a
   * supervisor starts it again. Default: logged only.
   */
  onStoreFailed?: (error: Error) => void;
  /** Run the controllers (default true). */
  controllers?: boolean;
  /** The GraphQL API's token file (hashed tokens; default `<storeDirectory>/api-tokens.json`). */
  tokensFile?: string;
}

export interface RunningManager {
  url: string;
  host: string;
  port: number;
  store: ResourceStore;
  controllersRunning: boolean;
  /** More routes may be added at any time (`router.mount('/graphql', listener)`). */
  router: HttpRouter;
  /** The listening node:http server (for WebSocket upgrades). */
  httpServer: http.Server;
  /** Stops serving, stops the controllers, closes the store. Idempotent. */
  close(): Promise<void>;
}

/** Where the manager and `hornbill up` keep the API tokens, in the store's folder. */
export const TOKENS_FILE_NAME = 'api-tokens.json';

/** Creates or updates each Setting so that its value is the given one. */
export async function applySettings(
  store: ResourceStore,
  namespace: string,
  settings: Readonly<Record<string, string>>,
): Promise<void> {
  for (const [name, value] of Object.entries(settings)) {
    try {
      const current = await store.get({ kind: 'Setting', namespace, name });
      if (!jsonEqual(current.spec, { value })) await store.update({ ...current, spec: { value } });
    } catch (error) {
      if (!isHornbillError(error, 'RESOURCE_NOT_FOUND')) throw error;
      await store.create({ kind: 'Setting', metadata: { name, namespace }, spec: { value } });
    }
  }
}

export async function startManager(options: ManagerOptions): Promise<RunningManager> {
  const { log } = options;
  const namespace = options.namespace ?? DEFAULT_NAMESPACE;
  const metrics = new ManagerMetrics();
  const embedded = await openEmbeddedStore({
    directory: options.storeDirectory,
    changeLogLimit: options.changeLogLimit,
  });
  let reported = false;
  const store = meteredStore(embedded, metrics, (error) => {
    if (reported) return;
    reported = true;
    log('error', 'the state store failed; the manager must be restarted', { error: error.message });
    options.onStoreFailed?.(error);
  });
  registerClusterMetrics(metrics.registry, embedded, namespace);
  registerControllerMetrics(metrics.registry, () => controllers?.statistics() ?? []);
  metrics.leader.set(1); // the only manager of its store
  let controllers: RunningControllers | undefined;
  let server: ManagerHttp | undefined;
  try {
    await applySettings(store, namespace, options.settings ?? {});
    if (options.controllers !== false) {
      controllers = await startControllers({
        store,
        namespace,
        instanceManagers: options.instanceManagers,
        log: recordLogger(log),
        shareManagerLeaseDirectory: path.join(path.dirname(options.storeDirectory), 'share-manager-leases'),
      });
      metrics.controllersRunning.set(1);
    }
    server = await serveManagerHttp({
      store,
      namespace,
      metrics,
      log,
      listen: options.listen,
      tokensFile: options.tokensFile ?? path.join(options.storeDirectory, TOKENS_FILE_NAME),
      resourceApi: true,
      health: () => ({ store: embedded.backend, controllers: controllers !== undefined }),
    });
    const listening = server;
    let closing: Promise<void> | undefined;
    return {
      url: listening.url,
      host: listening.host,
      port: listening.port,
      store,
      controllersRunning: controllers !== undefined,
      router: listening.router,
      httpServer: listening.httpServer,
      close: () => {
        closing ??= (async () => {
          await listening.close();
          await stopControllers(controllers, log);
          metrics.controllersRunning.set(0);
          await embedded.close();
        })();
        return closing;
      },
    };
  } catch (error) {
    await server?.close();
    await stopControllers(controllers, log);
    await embedded.close();
    throw error;
  }
}

export async function stopControllers(
  controllers: RunningControllers | undefined,
  log: Logger,
): Promise<void> {
  if (controllers === undefined) return;
  try {
    await controllers.stop();
  } catch (error) {
    log('error', 'controllers failed to stop cleanly', { error: String(error) });
  }
}
