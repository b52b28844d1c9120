/**
 * Instance manager discovery in Kubernetes mode, the client-node side: a list and watch
 * (client-node's informer) of the instance-manager pods in the manager's namespace, by label
 * selector; after the first list and after every change, the endpoints that
 * instance-manager-discovery.ts makes of them go to `onChange` (only when they differ from
 * the last ones reported). A failed list or a broken watch is logged and started again
 * after 1 s, doubling up to 30 s. Needs `list` and `watch` on pods in that namespace
 * (deploy/rbac.yaml).
 *
 * ```ts
 * const discovery = watchInstanceManagerPods(store.kubeConfig, { namespace, labelSelector, log,
 *   onChange: (endpoints) => controllers.setInstanceManagers(endpoints) });
 * await discovery.stop();
 * ```
 */
import { CoreV1Api, type KubeConfig, makeInformer, type V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../logging.ts';
import { kubernetesRequestOptions } from '../resources/store/kubernetes-config.ts';
import { fromKubernetesError } from '../resources/store/kubernetes-errors.ts';
import { compareInstanceManagers, endpointsFromPods } from './instance-manager-discovery.ts';
import type { InstanceManagerEndpoint } from './manager.ts';

const RESTART_DELAY_MS_MIN = 1_000;
const RESTART_DELAY_MS_MAX = 30_000;
/** Per list request (the watch has its own timeouts in client-node). */
const LIST_TIMEOUT_MS = 30_000;

export interface InstanceManagerPodsOptions {
  namespace: string;
  labelSelector: string;
  log: Logger;
  onChange(endpoints: readonly InstanceManagerEndpoint[]): void;
  /** Default `/var/lib/hornbill`. */
  defaultDisks?: readonly string[];
}

export function watchInstanceManagerPods(
  kubeConfig: KubeConfig,
  options: InstanceManagerPodsOptions,
): { stop(): Promise<void> } {
  const { namespace, labelSelector, log } = options;
  const api = kubeConfig.makeApiClient(CoreV1Api);
  const informer = makeInformer<V1Pod>(
    kubeConfig,
    `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods`,
    () =>
      api.listNamespacedPod(
        { namespace, labelSelector },
        kubernetesRequestOptions({ timeoutMs: LIST_TIMEOUT_MS }),
      ),
    labelSelector,
  );
  let reported: readonly InstanceManagerEndpoint[] | undefined;
  let stopped = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDelayMs = RESTART_DELAY_MS_MIN;
  const lastProblems = new Set<string>();
  let synced = false;
  let failedSinceStart = false;

  const report = () => {
    // Not before the first whole list: a partial one would leave nodes out.
    if (stopped || !synced) return;
    const { endpoints, problems } = endpointsFromPods(informer.list(namespace), {
      previous: reported,
      defaultDisks: options.defaultDisks,
    });
    for (const problem of problems)
      if (!lastProblems.has(problem)) log('warn', 'an instance-manager pod cannot be used', { problem });
    lastProblems.clear();
    for (const problem of problems) lastProblems.add(problem);
    if (reported !== undefined && !compareInstanceManagers(reported, endpoints).restartNeeded) return;
    const changes = reported === undefined ? undefined : compareInstanceManagers(reported, endpoints);
    reported = endpoints;
    log('info', 'instance managers discovered', {
      nodes: endpoints.map((endpoint) => `${endpoint.nodeID}=${endpoint.grpcAddress}`),
      ...changes,
    });
    options.onChange(endpoints);
  };

  const start = async () => {
    if (stopped) return;
    failedSinceStart = false;
    await informer.start().catch(scheduleRestart);
    // start() resolves after the list and the watch request (or after a failure, reported as an error).
    if (failedSinceStart || stopped) return;
    restartDelayMs = RESTART_DELAY_MS_MIN;
    synced = true;
    report();
  };

  const scheduleRestart = (error: unknown) => {
    failedSinceStart = true;
    if (stopped || restartTimer !== undefined) return;
    const mapped = fromKubernetesError(error, { operation: 'watch', kind: 'Pod', namespace });
    log('warn', 'listing or watching the instance-manager pods failed; retrying', {
      code: mapped.code,
      error: mapped.message,
      delayMs: restartDelayMs,
    });
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      void start();
    }, restartDelayMs);
    restartDelayMs = Math.min(restartDelayMs * 2, RESTART_DELAY_MS_MAX);
  };

  informer.on('error', (error: unknown) => scheduleRestart(error));
  informer.on('add', report);
  informer.on('update', report);
  informer.on('delete', report);
  void start();
  return {
    async stop() {
      stopped = true;
      if (restartTimer !== undefined) clearTimeout(restartTimer);
      await informer.stop();
    },
  };
}
