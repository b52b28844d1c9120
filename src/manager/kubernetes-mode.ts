/**
 * The manager in Kubernetes mode (`hornbill manager --store kubernetes`): every replica
 * serves HTTP (/healthz with the leader state, /metrics, /graphql; no resource API — the
 * API server is that), and campaigns for the Lease `hornbill-manager`; only the leader runs
 * the controllers (docs/manager.md, "Kubernetes mode").
 *
 * - Started leading: the `--setting` values are written, then the controllers start with
 *   the instance managers — a static list, or the one discovery reports (they wait for its
 *   first list, so that no node is taken for down before it is known). A new list restarts
 *   them (leader-controllers.ts).
 * - Stopped leading (the Lease could not be renewed in time, or someone else holds it): the
 *   controllers stop (waited for at most `stopTimeoutMs`), then `onLeadershipLost` is called
 *   with MANAGER_LEADERSHIP_LOST — the command closes everything and exits 1, as client-go
 *   controllers do, so the pod restarts as a plain candidate with nothing left over from
 *   its term. Without `onLeadershipLost` the replica goes on as a follower and campaigns again.
 * - close(): the elector stops (a leader stops its controllers and releases the Lease, so a
 *   follower takes over within a retry period), then discovery, HTTP, and the store.
 *
 * Nothing here talks to Kubernetes itself: the store, the Lease client and the discovery
 * source are handed in (the command builds them with client-node), so that tests run it on
 * an embedded store with an in-memory Lease.
 *
 * ```ts
 * const manager = await startKubernetesManager({ store, lease: kubernetesLeaseClient(store.kubeConfig, { namespace }),
 *   shareManagerLeases: kubernetesShareManagerLeases(store.kubeConfig, { namespace }),
 *   identity: process.env.POD_NAME, namespace, listen, instanceManagers: { discover: (onChange) => watchPods(onChange) },
 *   tokensFile: '/etc/hornbill/tokens/api-tokens.json', log, onLeadershipLost: () => shutdown(1) });
 * ```
 */
import type http from 'node:http';
import { type RunningControllers, startControllers as startAllControllers } from '../controllers/index.ts';
import type { ShareManagerHosting } from '../controllers/share-manager/hosting.ts';
import type { ShareManagerServices } from '../controllers/share-manager/services.ts';
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import { registerClusterMetrics } from '../metrics/cluster-metrics.ts';
import { registerControllerMetrics } from '../metrics/controller-metrics.ts';
import {
  type ElectionClock,
  LEADER_LEASE_NAME,
  type LeaderElectionTiming,
  LeaderElector,
  type LeaseClient,
} from '../resources/leader-election.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import type { ShareManagerLeases } from '../share-manager/index.ts';
import { recordLogger, serveManagerHttp } from './http-server.ts';
import { LeaderControllers } from './leader-controllers.ts';
import { applySettings, type InstanceManagerEndpoint } from './manager.ts';
import { ManagerMetrics, meteredStore } from './metrics.ts';
import type { HttpRouter } from './router.ts';

/** Below the 5 s between the renew deadline (10 s) and a take-over (15 s). */
export const DEFAULT_STOP_TIMEOUT_MS = 4_000;
/** Rounds of writing the settings at the start of a term, 1 s apart. */
const SETTINGS_ATTEMPTS = 3;

/** Where the instance managers come from: a fixed list, or a discovery that reports lists. */
export type InstanceManagerSource =
  | { static: readonly InstanceManagerEndpoint[] }
  | {
      /** Starts discovery; `onChange` gets every list (the first one once it has listed). */
      discover(onChange: (endpoints: readonly InstanceManagerEndpoint[]) => void): {
        stop(): Promise<void> | void;
      };
    };

export interface KubernetesManagerOptions {
  /** The Kubernetes store (or any ResourceStore, in tests); closed by close(). */
  store: ResourceStore;
  lease: LeaseClient;
  /**
   * The RWX share managers' leases for the share-manager controller: the command passes
   * `kubernetesShareManagerLeases` (Lease objects `share-manager-<volume>` in the namespace).
   */
  shareManagerLeases?: ShareManagerLeases;
  /**
   * The RWX share managers' stable address: the command passes
   * `kubernetesShareManagerServices` (a Service and EndpointSlice `share-manager-<volume>`).
   */
  shareManagerServices?: ShareManagerServices;
  /**
   * Where the RWX share managers run: the command passes `kubernetesPodHosting` (a Pod
   * `share-manager-<volume>` on the chosen node).
   */
  shareManagerHosting?: ShareManagerHosting;
  /** Unique per replica: the pod name. */
  identity: string;
  namespace: string;
  listen: { host: string; port: number };
  instanceManagers: InstanceManagerSource;
  settings?: Readonly<Record<string, string>>;
  /** The GraphQL token file (a mounted Secret); a missing file means no tokens. */
  tokensFile: string;
  log: Logger;
  /** Called once when leadership ends other than by close(). Absent: keep serving as a follower. */
  onLeadershipLost?(error: HornbillError): void;
  timing?: Partial<LeaderElectionTiming>;
  clock?: ElectionClock;
  stopTimeoutMs?: number;
  /** Default: the controllers of src/controllers/index.ts. */
  startControllers?: typeof startAllControllers;
}

export interface LeaderState {
  identity: string;
  lease: string;
  isLeader: boolean;
  /** Who the Lease named when last read ('' for nobody; undefined before the first read). */
  holder: string | undefined;
}

export interface RunningKubernetesManager {
  url: string;
  host: string;
  port: number;
  store: ResourceStore;
  router: HttpRouter;
  httpServer: http.Server;
  leader(): LeaderState;
  /** Whether the controllers run in this replica now. */
  controllersRunning(): boolean;
  /** The instance managers the running controllers were given. */
  instanceManagers(): readonly InstanceManagerEndpoint[];
  /** Stops campaigning (releasing the Lease), the controllers, discovery, HTTP, the store. Idempotent. */
  close(): Promise<void>;
}

/** Resolves when `promise` settles or after `timeoutMs`, whichever is first; true if it settled. */
async function within(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function applySettingsWithRetry(
  store: ResourceStore,
  namespace: string,
  settings: Readonly<Record<string, string>>,
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await applySettings(store, namespace, settings);
      return;
    } catch (error) {
      if (attempt >= SETTINGS_ATTEMPTS) throw error;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
}

export async function startKubernetesManager(
  options: KubernetesManagerOptions,
): Promise<RunningKubernetesManager> {
  const { log, namespace, identity } = options;
  const startControllers = options.startControllers ?? startAllControllers;
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  const metrics = new ManagerMetrics();
  const store = meteredStore(options.store, metrics);
  registerClusterMetrics(metrics.registry, options.store, namespace);
  let closing = false;
  let lostReported = false;
  const controllers = new LeaderControllers({
    log,
    start: (instanceManagers): Promise<RunningControllers> =>
      startControllers({
        store,
        namespace,
        instanceManagers,
        log: recordLogger(log),
        shareManagerLeases: options.shareManagerLeases,
        shareManagerServices: options.shareManagerServices,
        shareManagerHosting: options.shareManagerHosting,
      }),
    beforeStart: async () => {
      const settings = options.settings ?? {};
      if (Object.keys(settings).length === 0) return;
      await applySettingsWithRetry(store, namespace, settings);
      log('info', 'settings written', { settings: Object.keys(settings) });
    },
    onRunningChange: (running) => metrics.controllersRunning.set(running ? 1 : 0),
  });
  registerControllerMetrics(metrics.registry, () => controllers.statistics());
  const elector = new LeaderElector({
    lease: options.lease,
    identity,
    timing: options.timing,
    clock: options.clock,
    logger: log,
    onStartedLeading: () => {
      metrics.leader.set(1);
      void controllers.lead();
    },
    onStoppedLeading: async () => {
      metrics.leader.set(0);
      const stopped = await within(controllers.resign(), stopTimeoutMs);
      if (!stopped) log('error', 'the controllers did not stop in time', { stopTimeoutMs });
      if (closing || lostReported || options.onLeadershipLost === undefined) return;
      lostReported = true;
      options.onLeadershipLost(
        new HornbillError(
          'MANAGER_LEADERSHIP_LOST',
          `${identity} lost the leader Lease ${LEADER_LEASE_NAME}`,
          {
            identity,
            controllersStopped: stopped,
          },
        ),
      );
    },
    onNewLeader: (holder) => log('info', 'the leader Lease changed hands', { holder: holder || '(nobody)' }),
  });

  let discovery: { stop(): Promise<void> | void } | undefined;
  const source = options.instanceManagers;
  if ('static' in source) void controllers.setInstanceManagers(source.static);
  else {
    discovery = source.discover((endpoints) => {
      if (!closing) void controllers.setInstanceManagers(endpoints);
    });
  }
  const leader = (): LeaderState => ({
    identity,
    lease: `${namespace}/${LEADER_LEASE_NAME}`,
    isLeader: elector.isLeader,
    holder: elector.leader,
  });
  let server: Awaited<ReturnType<typeof serveManagerHttp>>;
  try {
    server = await serveManagerHttp({
      store,
      namespace,
      metrics,
      log,
      listen: options.listen,
      tokensFile: options.tokensFile,
      resourceApi: false,
      health: () => ({ store: options.store.backend, controllers: controllers.isRunning, leader: leader() }),
    });
  } catch (error) {
    await discovery?.stop();
    await controllers.close();
    await options.store.close();
    throw error;
  }
  elector.start();
  let closed: Promise<void> | undefined;
  return {
    url: server.url,
    host: server.host,
    port: server.port,
    store,
    router: server.router,
    httpServer: server.httpServer,
    leader,
    controllersRunning: () => controllers.isRunning,
    instanceManagers: () => controllers.instanceManagers,
    close: () => {
      closed ??= (async () => {
        closing = true;
        await elector.stop();
        await within(controllers.close(), stopTimeoutMs);
        metrics.leader.set(0);
        await discovery?.stop();
        await server.close();
        await options.store.close();
      })();
      return closed;
    },
  };
}
