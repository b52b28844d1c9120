/**
 * `hornbill manager`: the control plane — store, controllers, HTTP API (docs/manager.md).
 * Embedded mode (`--store embedded:DIR`) runs src/manager/manager.ts; Kubernetes mode
 * (`--store kubernetes`) runs src/manager/kubernetes-mode.ts, loading client-node only then.
 */
import os from 'node:os';
import path from 'node:path';
import { HornbillError } from '../errors.ts';
import { type Logger, type LogLevel, stderrLogger } from '../logging.ts';
import { DEFAULT_INSTANCE_MANAGER_SELECTOR } from '../manager/instance-manager-discovery.ts';
import { type InstanceManagerEndpoint, startManager, TOKENS_FILE_NAME } from '../manager/manager.ts';
import { RESOURCE_API_PREFIX } from '../manager/resource-api.ts';
import { DEFAULT_NAMESPACE } from '../resources/api.ts';
import { parseLabelSelector } from '../resources/labels.ts';
import { LEADER_LEASE_NAME } from '../resources/leader-election.ts';
import { announce, parseAddress, parseFlags, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const MANAGER_USAGE = `Usage:
  hornbill manager --store embedded:DIR [--listen 127.0.0.1:9500]
                   [--instance-manager NODE=HOST:PORT[,disk=PATH…][,address=IP] …]
                   [--setting NAME=VALUE …] [--namespace hornbill-system] [--log-level info]
                   [--change-log-limit 10000] [--no-controllers] [--tokens FILE]
  hornbill manager --store kubernetes [--kubeconfig FILE] [--identity POD_NAME]
                   [--listen 127.0.0.1:9500] [--namespace hornbill-system]
                   [--instance-manager NODE=HOST:PORT… … | --instance-manager-selector LABELS]
                   [--setting NAME=VALUE …] [--tokens FILE] [--log-level info]
      Runs the control plane: the state store, the controllers, and an HTTP server on
      --listen with /healthz, /metrics and /graphql (GraphQL tokens from --tokens; default
      DIR/${TOKENS_FILE_NAME} in the embedded mode, /etc/hornbill/tokens/${TOKENS_FILE_NAME}
      in Kubernetes mode, where deploy/manager.yaml mounts the Secret hornbill-api-tokens).
      Embedded: the store is LMDB in DIR, the controllers run in this one manager, and the
      resource API is served under ${RESOURCE_API_PREFIX}; --change-log-limit is how many
      changes the store keeps for watches to resume from; --no-controllers serves the store alone.
      Kubernetes: the store is the API server's custom resources (KUBECONFIG, ~/.kube/config
      or the pod's service account; --kubeconfig names a file), there is no resource API
      (use kubectl), and of all replicas only the holder of the Lease NAMESPACE/${LEADER_LEASE_NAME}
      runs the controllers; --identity names this replica in the Lease (default $POD_NAME,
      else the host name). A leader that loses the Lease stops its controllers and exits 1.
      The instance managers are the pods matching --instance-manager-selector in NAMESPACE
      (default ${DEFAULT_INSTANCE_MANAGER_SELECTOR}),
      or the static --instance-manager list.
      Each --instance-manager names a node, the gRPC address of its instance manager and its
      disks (address defaults to the gRPC host). --setting writes a Setting resource before
      the controllers start (in Kubernetes mode: by each new leader). Port 0 picks a free
      port. Prints one JSON line on stdout when ready, logs JSON lines to stderr, stops
      cleanly on SIGTERM or SIGINT.`;

interface CommonManagerFlags {
  listen: { host: string; port: number };
  namespace: string;
  settings: Record<string, string>;
  logLevel: LogLevel;
  /** The GraphQL token file (default: DIR/api-tokens.json, or DEFAULT_KUBERNETES_TOKENS_FILE). */
  tokensFile: string | undefined;
}

export interface EmbeddedManagerFlags extends CommonManagerFlags {
  store: 'embedded';
  storeDirectory: string;
  instanceManagers: InstanceManagerEndpoint[];
  changeLogLimit: number | undefined;
  controllers: boolean;
}

export interface KubernetesManagerFlags extends CommonManagerFlags {
  store: 'kubernetes';
  /** Absent: KUBECONFIG, ~/.kube/config, then the pod's service account. */
  kubeconfig: string | undefined;
  /** This replica's name in the Lease. */
  identity: string;
  /** A static list; undefined: discovery by `instanceManagerSelector`. */
  instanceManagers: InstanceManagerEndpoint[] | undefined;
  instanceManagerSelector: string;
}

export type ManagerFlags = EmbeddedManagerFlags | KubernetesManagerFlags;

/** Where deploy/manager.yaml mounts the (optional) Secret hornbill-api-tokens. */
export const DEFAULT_KUBERNETES_TOKENS_FILE = `/etc/hornbill/tokens/${TOKENS_FILE_NAME}`;

/** Flags that only one mode takes, with that mode. */
const EMBEDDED_ONLY = ['change-log-limit', 'no-controllers'] as const;
const KUBERNETES_ONLY = ['kubeconfig', 'identity', 'instance-manager-selector'] as const;
/** Longest --identity (a pod name is at most 253 characters). */
const MAX_IDENTITY_LENGTH = 253;

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${MANAGER_USAGE}`);
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `node-1=127.0.0.11:8500,disk=/data/a,disk=/data/b[,address=127.0.0.11]` */
export function parseInstanceManagerSpec(text: string): InstanceManagerEndpoint {
  const [head, ...options] = text.split(',');
  const equals = head.indexOf('=');
  const nodeID = equals < 0 ? '' : head.slice(0, equals);
  if (!NODE_NAME.test(nodeID) || nodeID.length > 253)
    throw usage(`--instance-manager must start with NODE=HOST:PORT, not ${JSON.stringify(text)}`);
  const grpc = parseAddress(head.slice(equals + 1), '--instance-manager');
  const disks: string[] = [];
  let address = grpc.host;
  for (const option of options) {
    const [key, ...rest] = option.split('=');
    const value = rest.join('=');
    if (key === 'disk' && value !== '') disks.push(path.resolve(value));
    else if (key === 'address' && value !== '') address = value;
    else throw usage(`--instance-manager option ${JSON.stringify(option)} is not disk=PATH or address=IP`);
  }
  return { nodeID, grpcAddress: `${grpc.host}:${grpc.port}`, address, disks };
}

export function parseManagerFlags(
  argv: string[],
  environment: NodeJS.ProcessEnv = process.env,
): ManagerFlags {
  const { values } = parseFlags(
    argv,
    {
      store: { type: 'string' },
      listen: { type: 'string' },
      namespace: { type: 'string' },
      'instance-manager': { type: 'string', multiple: true },
      'instance-manager-selector': { type: 'string' },
      setting: { type: 'string', multiple: true },
      'log-level': { type: 'string' },
      'change-log-limit': { type: 'string' },
      'no-controllers': { type: 'boolean' },
      kubeconfig: { type: 'string' },
      identity: { type: 'string' },
      tokens: { type: 'string' },
    },
    MANAGER_USAGE,
  );
  const store = values.store ?? '';
  const kubernetes = store === 'kubernetes';
  if (!kubernetes && (!store.startsWith('embedded:') || store.length === 'embedded:'.length))
    throw usage(`--store must be embedded:DIR or kubernetes, not ${JSON.stringify(store)}`);
  for (const flag of kubernetes ? EMBEDDED_ONLY : KUBERNETES_ONLY)
    if (values[flag] !== undefined)
      throw usage(`--${flag} is for --store ${kubernetes ? 'embedded:DIR' : 'kubernetes'} only`);
  const staticList = values['instance-manager'];
  const instanceManagers = (staticList ?? []).map(parseInstanceManagerSpec);
  const nodes = instanceManagers.map((endpoint) => endpoint.nodeID);
  if (new Set(nodes).size !== nodes.length) throw usage('a node is given twice in --instance-manager');
  const settings: Record<string, string> = {};
  for (const setting of values.setting ?? []) {
    const equals = setting.indexOf('=');
    if (equals <= 0) throw usage(`--setting must be NAME=VALUE, not ${JSON.stringify(setting)}`);
    settings[setting.slice(0, equals)] = setting.slice(equals + 1);
  }
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw usage('--log-level must be debug, info, warn or error');
  if (values.tokens === '') throw usage('--tokens must name a file');
  const common: CommonManagerFlags = {
    listen: parseAddress(values.listen ?? '127.0.0.1:9500', '--listen'),
    namespace: values.namespace ?? DEFAULT_NAMESPACE,
    settings,
    logLevel,
    tokensFile: values.tokens === undefined ? undefined : path.resolve(values.tokens),
  };
  if (kubernetes)
    return kubernetesFlags(
      values,
      common,
      staticList === undefined ? undefined : instanceManagers,
      environment,
    );
  const limitText = values['change-log-limit'];
  if (limitText !== undefined && !/^[1-9]\d{0,8}$/.test(limitText))
    throw usage('--change-log-limit must be a positive number of changes');
  return {
    ...common,
    store: 'embedded',
    changeLogLimit: limitText === undefined ? undefined : Number(limitText),
    controllers: values['no-controllers'] !== true,
    storeDirectory: path.resolve(store.slice('embedded:'.length)),
    instanceManagers,
  };
}

function kubernetesFlags(
  values: { kubeconfig?: string; identity?: string; 'instance-manager-selector'?: string },
  common: CommonManagerFlags,
  instanceManagers: InstanceManagerEndpoint[] | undefined,
  environment: NodeJS.ProcessEnv,
): KubernetesManagerFlags {
  const selector = values['instance-manager-selector'];
  if (instanceManagers !== undefined && selector !== undefined)
    throw usage('give either --instance-manager flags or --instance-manager-selector, not both');
  if (!NODE_NAME.test(common.namespace) || common.namespace.length > 63 || common.namespace.includes('.'))
    throw usage(`--namespace must be a DNS label, not ${JSON.stringify(common.namespace)}`);
  const instanceManagerSelector = selector ?? DEFAULT_INSTANCE_MANAGER_SELECTOR;
  try {
    if (parseLabelSelector(instanceManagerSelector).length === 0) throw new Error('it selects every pod');
  } catch (error) {
    throw usage(
      `--instance-manager-selector ${JSON.stringify(instanceManagerSelector)} is not a label selector: ${(error as Error).message}`,
    );
  }
  const identity = values.identity ?? (environment.POD_NAME || os.hostname());
  if (identity === '' || identity.length > MAX_IDENTITY_LENGTH || /\s/.test(identity))
    throw usage(`--identity must be 1-${MAX_IDENTITY_LENGTH} characters without spaces (the pod name)`);
  if (values.kubeconfig === '') throw usage('--kubeconfig must name a file');
  return {
    ...common,
    store: 'kubernetes',
    kubeconfig: values.kubeconfig === undefined ? undefined : path.resolve(values.kubeconfig),
    identity,
    instanceManagers,
    instanceManagerSelector,
  };
}

/** After leadership is lost, the process exits by this time even if something still hangs. */
const LEADERSHIP_LOST_EXIT_DEADLINE_MS = 10_000;

export async function managerCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${MANAGER_USAGE}\n`);
    return ExitCode.OK;
  }
  const flags = parseManagerFlags(argv);
  const log = stderrLogger('manager', flags.logLevel);
  return flags.store === 'kubernetes' ? runKubernetesManager(flags, log) : runEmbeddedManager(flags, log);
}

async function runEmbeddedManager(flags: EmbeddedManagerFlags, log: Logger): Promise<number> {
  let onStoreFailed: () => void = () => {};
  const storeFailed = new Promise<void>((resolve) => {
    onStoreFailed = resolve;
  });
  const manager = await startManager({
    onStoreFailed: () => onStoreFailed(),
    storeDirectory: flags.storeDirectory,
    listen: flags.listen,
    namespace: flags.namespace,
    instanceManagers: flags.instanceManagers,
    settings: flags.settings,
    changeLogLimit: flags.changeLogLimit,
    controllers: flags.controllers,
    tokensFile: flags.tokensFile,
    log,
  });
  log('info', 'manager serving', {
    url: manager.url,
    store: flags.storeDirectory,
    controllers: manager.controllersRunning,
    instanceManagers: flags.instanceManagers,
  });
  announce({
    role: 'manager',
    url: manager.url,
    api: `${manager.url}${RESOURCE_API_PREFIX}`,
    metrics: `${manager.url}/metrics`,
    listen: { host: manager.host, port: manager.port },
    namespace: flags.namespace,
    store: { backend: 'embedded', directory: flags.storeDirectory },
    controllers: manager.controllersRunning,
    instanceManagers: flags.instanceManagers,
  });
  const signalled = untilSignal(async () => {
    log('info', 'manager stopping', {});
    await manager.close();
  }).then(() => ExitCode.OK);
  const failed = storeFailed.then(async () => {
    await manager.close();
    return ExitCode.FAILED;
  });
  return Promise.race([signalled, failed]);
}

async function runKubernetesManager(flags: KubernetesManagerFlags, log: Logger): Promise<number> {
  const { openKubernetesStore } = await import('../resources/store/kubernetes.ts');
  const { kubernetesLeaseClient } = await import('../resources/store/kubernetes-lease.ts');
  const { startKubernetesManager } = await import('../manager/kubernetes-mode.ts');
  const { watchInstanceManagerPods } = await import('../manager/instance-manager-pods.ts');
  const { kubernetesShareManagerLeases } = await import('../share-manager/kubernetes-leases.ts');
  const { kubernetesShareManagerServices } = await import(
    '../controllers/share-manager/kubernetes-services.ts'
  );
  const { kubernetesPodHosting } = await import('../controllers/share-manager/kubernetes-pods.ts');
  const { namespace } = flags;
  const store = await openKubernetesStore({ kubeconfig: flags.kubeconfig, namespace, logger: log });
  let onLost: (error: HornbillError) => void = () => {};
  const leadershipLost = new Promise<HornbillError>((resolve) => {
    onLost = resolve;
  });
  const manager = await startKubernetesManager({
    store,
    lease: kubernetesLeaseClient(store.kubeConfig, { namespace }),
    shareManagerLeases: kubernetesShareManagerLeases(store.kubeConfig, { namespace }),
    shareManagerServices: kubernetesShareManagerServices(store.kubeConfig, { namespace, store }),
    // A Pod share-manager-<volume> per RWX volume; its image: HORNBILL_IMAGE, else this Pod's own.
    shareManagerHosting: kubernetesPodHosting(store.kubeConfig, { namespace }),
    identity: flags.identity,
    namespace,
    listen: flags.listen,
    settings: flags.settings,
    // No file there: no tokens (GraphQL then answers anonymous reads only, if api-anonymous-read allows them).
    tokensFile: flags.tokensFile ?? DEFAULT_KUBERNETES_TOKENS_FILE,
    log,
    instanceManagers:
      flags.instanceManagers !== undefined
        ? { static: flags.instanceManagers }
        : {
            discover: (onChange) =>
              watchInstanceManagerPods(store.kubeConfig, {
                namespace,
                labelSelector: flags.instanceManagerSelector,
                log,
                onChange,
              }),
          },
    onLeadershipLost: (error) => onLost(error),
  });
  const discovery =
    flags.instanceManagers === undefined
      ? { selector: flags.instanceManagerSelector }
      : { static: flags.instanceManagers };
  log('info', 'manager serving', {
    url: manager.url,
    store: 'kubernetes',
    identity: flags.identity,
    ...discovery,
  });
  announce({
    role: 'manager',
    url: manager.url,
    metrics: `${manager.url}/metrics`,
    graphql: `${manager.url}/graphql`,
    listen: { host: manager.host, port: manager.port },
    namespace,
    store: { backend: 'kubernetes' },
    leaderElection: { lease: `${namespace}/${LEADER_LEASE_NAME}`, identity: flags.identity },
    instanceManagers: discovery,
  });
  const signalled = untilSignal(async () => {
    log('info', 'manager stopping', {});
    await manager.close();
  }).then(() => ExitCode.OK);
  const failed = leadershipLost.then(async (error) => {
    log('error', 'leadership lost: stopping so that the pod restarts as a candidate', {
      code: error.code,
      error: error.message,
      ...error.details,
    });
    // As client-go controllers do: nothing of the lost term may outlive it, even a hung request.
    setTimeout(() => process.exit(ExitCode.FAILED), LEADERSHIP_LOST_EXIT_DEADLINE_MS).unref();
    await manager.close();
    return ExitCode.FAILED;
  });
  return Promise.race([signalled, failed]);
}
