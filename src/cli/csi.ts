/** `hornbill csi`: the CSI plugin (identity + controller and/or node services) on a unix socket (docs/csi.md). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type HostReportResult, writeHostReport } from '../csi/host/node-report.ts';
import { type HostCondition, hostConditions } from '../csi/host/requirements.ts';
import type { HostOperations } from '../csi/host/types.ts';
import { CSI_MODES, type CsiMode, servesController } from '../csi/identity.ts';
import { type CsiServer, startCsiServer } from '../csi/server.ts';
import { HornbillError } from '../errors.ts';
import { type Logger, type LogLevel, stderrLogger } from '../logging.ts';
import { DEFAULT_NAMESPACE } from '../resources/api.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import { announce, parseDuration, parseFlags, untilSignal } from './args.ts';
import { ExitCode } from './output.ts';

export const CSI_USAGE = `Usage:
  hornbill csi --endpoint unix:///PATH.sock --node-id NODE [--mode controller|node|all]
               [--store embedded:DIR | http://MANAGER:PORT | kubernetes] [--namespace hornbill-system]
               [--zone ZONE] [--region REGION] [--attach-wait 60s] [--host-namespaces]
               [--log-level info]
      Serves the CSI identity service and, by --mode, the controller service (volumes,
      attach tickets, snapshots, capacity: needs --store) and the node service (iSCSI
      login, mkfs, mounts on this host). --node-id is the Kubernetes node name (default: the
      NODE_ID environment variable, else the host name). --store http:// talks to the
      manager's resource API; embedded:DIR opens a state folder no manager holds.
      --host-namespaces runs iscsiadm, mkfs and mount in the host's mount and network
      namespaces (nsenter; the pod needs hostPID), as a node plugin in Kubernetes does. A node
      plugin with a store writes its host check to its Node resource as the conditions
      RequiredPackages, NFSClientInstalled and Multipathd. Prints one JSON line when ready
      with the host tools found; stops on SIGTERM or SIGINT.`;

export interface CsiFlags {
  endpoint: string;
  nodeId: string;
  mode: CsiMode;
  store:
    | { backend: 'embedded'; directory: string }
    | { backend: 'http'; url: string }
    | { backend: 'kubernetes' }
    | undefined;
  namespace: string;
  zone: string | undefined;
  region: string | undefined;
  attachWaitMs: number;
  hostNamespaces: boolean;
  logLevel: LogLevel;
}

function usage(message: string): HornbillError {
  return new HornbillError('CLI_USAGE', `${message}\n${CSI_USAGE}`);
}

export function parseCsiFlags(argv: string[], environment: NodeJS.ProcessEnv = process.env): CsiFlags {
  const { values } = parseFlags(
    argv,
    {
      endpoint: { type: 'string' },
      'node-id': { type: 'string' },
      mode: { type: 'string' },
      store: { type: 'string' },
      namespace: { type: 'string' },
      zone: { type: 'string' },
      region: { type: 'string' },
      'attach-wait': { type: 'string' },
      'host-namespaces': { type: 'boolean' },
      'log-level': { type: 'string' },
    },
    CSI_USAGE,
  );
  const endpoint = values.endpoint ?? '';
  if (!/^unix:(\/\/)?\/.+/.test(endpoint))
    throw usage(`--endpoint must be unix:///PATH, not ${JSON.stringify(endpoint)}`);
  const nodeId = values['node-id'] ?? environment.NODE_ID ?? os.hostname();
  if (
    !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(nodeId) ||
    nodeId.length > 253
  )
    throw usage(`--node-id must be a node name (DNS subdomain), not ${JSON.stringify(nodeId)}`);
  const mode = (values.mode ?? 'all') as CsiMode;
  if (!CSI_MODES.includes(mode)) throw usage('--mode must be controller, node or all');
  const text = values.store;
  let store: CsiFlags['store'];
  if (text === undefined || text === '') store = undefined;
  else if (text.startsWith('embedded:') && text.length > 'embedded:'.length)
    store = { backend: 'embedded', directory: path.resolve(text.slice('embedded:'.length)) };
  else if (/^https?:\/\/[^/\s]+\/?$/.test(text)) store = { backend: 'http', url: text.replace(/\/$/, '') };
  else if (text === 'kubernetes') store = { backend: 'kubernetes' };
  else
    throw usage(`--store must be embedded:DIR, http://HOST:PORT or kubernetes, not ${JSON.stringify(text)}`);
  if (servesController(mode) && store === undefined)
    throw usage(`--mode ${mode} serves the controller and needs --store`);
  const logLevel = (values['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel))
    throw usage('--log-level must be debug, info, warn or error');
  return {
    endpoint,
    nodeId,
    mode,
    store,
    namespace: values.namespace ?? DEFAULT_NAMESPACE,
    zone: values.zone,
    region: values.region,
    attachWaitMs: parseDuration(values['attach-wait'] ?? '60s', '--attach-wait'),
    hostNamespaces: values['host-namespaces'] === true,
    logLevel,
  };
}

async function openStore(flags: CsiFlags): Promise<ResourceStore | undefined> {
  const store = flags.store;
  if (store === undefined) return undefined;
  if (store.backend === 'embedded') {
    const { openEmbeddedStore } = await import('../resources/store/embedded.ts');
    return openEmbeddedStore({ directory: store.directory });
  }
  if (store.backend === 'http') {
    const { HttpResourceStore } = await import('../manager/http-store.ts');
    return new HttpResourceStore({ url: store.url });
  }
  const { openKubernetesStore } = await import('../resources/store/kubernetes.ts');
  return openKubernetesStore({ namespace: flags.namespace });
}

function packageVersion(): string {
  try {
    const text = fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8');
    return String((JSON.parse(text) as { version?: string }).version ?? '0.0.0');
  } catch {
    return '0.0.0';
  }
}

export interface CsiPlugin {
  server: CsiServer;
  /** Undefined without --store. */
  store: ResourceStore | undefined;
  conditions: HostCondition[];
  /** The host report's write to the Node resource (settles undefined without a store, or when stopped first). */
  hostReport: Promise<HostReportResult | undefined>;
  close(): Promise<void>;
}

/**
 * The plugin of `hornbill csi` started in this process: host check, store, server, and the
 * host conditions written to this node's Node resource in the background (waiting for the
 * manager to create it). `close` stops all of it and closes the store.
 */
export async function startCsiPlugin(
  flags: CsiFlags,
  options: { host?: HostOperations; log?: Logger; hostReportRetryMs?: number } = {},
): Promise<CsiPlugin> {
  const log = options.log ?? stderrLogger('csi', flags.logLevel);
  const host =
    options.host ??
    new (await import('../csi/host/linux.ts')).LinuxHostOperations({ hostNamespaces: flags.hostNamespaces });
  const report = await host.checkTools();
  const conditions = hostConditions(report);
  for (const condition of conditions)
    if ((condition.type !== 'Multipathd') === (condition.status === 'False'))
      log('warn', 'host check', {
        condition: condition.type,
        reason: condition.reason,
        message: condition.message,
      });
  const store = await openStore(flags);
  let server: CsiServer;
  try {
    server = await startCsiServer({
      endpoint: flags.endpoint,
      mode: flags.mode,
      nodeId: flags.nodeId,
      namespace: flags.namespace,
      version: packageVersion(),
      store,
      host,
      log,
      zone: flags.zone,
      region: flags.region,
      attachWaitMs: flags.attachWaitMs,
    });
  } catch (error) {
    await store?.close();
    throw error;
  }
  const stopReport = new AbortController();
  // Only a node plugin reports its host: a controller-only plugin runs on no particular node.
  const hostReport =
    store === undefined || flags.mode === 'controller'
      ? Promise.resolve(undefined)
      : writeHostReport({
          store,
          namespace: flags.namespace,
          nodeId: flags.nodeId,
          conditions,
          log,
          signal: stopReport.signal,
          retryMs: options.hostReportRetryMs,
        }).catch((error: unknown) => {
          log('warn', 'the host report was not written', { error: String(error) });
          return undefined;
        });
  return {
    server,
    store,
    conditions,
    hostReport,
    async close() {
      stopReport.abort();
      await hostReport;
      await server.close();
      await store?.close();
    },
  };
}

export async function csiCommand(argv: string[], options: { host?: HostOperations } = {}): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${CSI_USAGE}\n`);
    return ExitCode.OK;
  }
  const flags = parseCsiFlags(argv);
  const log = stderrLogger('csi', flags.logLevel);
  const plugin = await startCsiPlugin(flags, { host: options.host, log });
  announce({
    role: 'csi',
    endpoint: flags.endpoint,
    mode: flags.mode,
    nodeId: flags.nodeId,
    driver: plugin.server.context.driverName,
    store: flags.store?.backend ?? 'none',
    hostConditions: plugin.conditions,
  });
  await untilSignal(async () => {
    log('info', 'csi plugin stopping', {});
    await plugin.close();
  });
  return ExitCode.OK;
}
