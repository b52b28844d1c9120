/**
 * What `hornbill support-bundle` collects, one source per function; each returns archive
 * entries (path → text) and never throws for a source that is merely unavailable — the
 * problem is recorded instead, so that one dead node does not cost the whole bundle.
 *
 * Sources: the manager's resource API (every kind, one YAML per object; served in the
 * embedded mode), the GraphQL views (volumes with engines, replicas and snapshots; nodes;
 * settings with defaults; events; instance managers), the manager's /metrics, each
 * instance manager's GetInfo, ListInstances, the log history of each of its instances
 * (StreamLogs) and its /metrics, and the log files under `--data DIR/logs/`.
 *
 * Secrets never enter the bundle: the API token is only sent, the token file and the state
 * store are not read, `redact` blanks secret-looking fields and URL credentials, and
 * `redactText` blanks bearer tokens in logs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { InstanceManagerClient } from '../../dataplane/instance-manager/grpc-client.ts';
import { toYaml } from '../../resources/yaml.ts';
import type { GraphQLClient } from './client.ts';
import { EVENT_FIELDS } from './event.ts';
import { SNAPSHOT_FIELDS } from './snapshot.ts';
import { VOLUME_FIELDS } from './volume-view.ts';

export type Entries = Map<string, string>;

export interface Problems {
  add(source: string, error: unknown): void;
  readonly list: { source: string; error: string }[];
}

export function problemList(): Problems {
  const list: { source: string; error: string }[] = [];
  return {
    list,
    add(source, error) {
      const code = (error as { code?: string }).code;
      list.push({ source, error: `${code ? `${code}: ` : ''}${(error as Error)?.message ?? String(error)}` });
    },
  };
}

const SECRET_KEY =
  /^(password|passwd|token|.*Token|apiKey|accessKey|accessKeyId|secretKey|secretAccessKey|privateKey|authorization|.*Password)$/i;
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)[^/@\s:]+(:[^/@\s]*)?@/gi;
const BEARER = /(bearer\s+)[A-Za-z0-9._~+/=-]{8,}/gi;
const REDACTED = 'REDACTED';

/** Blanks bearer tokens and credentials in URLs in free text (log lines). */
export function redactText(text: string): string {
  return text.replace(BEARER, `$1${REDACTED}`).replace(URL_CREDENTIALS, `$1${REDACTED}@`);
}

/** A deep copy of `value` with secret-looking keys and URL credentials blanked. */
export function redact(value: unknown): unknown {
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map(redact);
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) {
      copy[key] = SECRET_KEY.test(key) && typeof item === 'string' && item !== '' ? REDACTED : redact(item);
    }
    return copy;
  }
  return value;
}

/** A file name from an object name: the name itself when it is safe, else escaped. */
function fileName(name: string): string {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$/.test(name) ? name : encodeURIComponent(name).slice(0, 200);
}

const API_PREFIX = '/apis/hornbill.io/v1beta1';

/** Every kind the resource API lists (discovery), each object as resources/<plural>/<name>.yaml. */
export async function collectResources(
  client: GraphQLClient,
  entries: Entries,
  problems: Problems,
): Promise<number> {
  let plurals: string[];
  try {
    const discovery = JSON.parse(await client.getText(API_PREFIX)) as { resources: { name: string }[] };
    plurals = discovery.resources.map((resource) => resource.name).filter((name) => !name.includes('/'));
  } catch (error) {
    problems.add(`resource API ${API_PREFIX} (served by the embedded manager only)`, error);
    return 0;
  }
  let count = 0;
  for (const plural of plurals) {
    try {
      const list = JSON.parse(await client.getText(`${API_PREFIX}/${plural}`)) as {
        items: { metadata: { name: string; namespace?: string } }[];
      };
      for (const item of list.items) {
        const namespace = item.metadata.namespace ? `${fileName(item.metadata.namespace)}/` : '';
        entries.set(
          `resources/${plural}/${namespace}${fileName(item.metadata.name)}.yaml`,
          toYaml(redact(item)),
        );
        count++;
      }
    } catch (error) {
      problems.add(`resource API ${plural}`, error);
    }
  }
  try {
    const events = JSON.parse(await client.getText('/api/v1/events')) as { items: unknown[] };
    entries.set('resources/events.yaml', toYaml(redact({ kind: 'EventList', items: events.items })));
  } catch (error) {
    problems.add('resource API events', error);
  }
  return count;
}

const GRAPHQL_VIEWS: Record<string, string> = {
  volumes: `query($after: String) { volumes(first: 20, after: $after) { totalCount pageInfo { endCursor hasNextPage }
    nodes { ${VOLUME_FIELDS} nodeSelector diskSelector
    conditions { type status reason message lastTransitionTime }
    engine { name nodeID currentState desireState endpoint instanceManagerName ip port salvageRequested
      rebuilds { address fromReplicaAddress progress isRebuilding state error } replicaModes { replica mode address } }
    replicas { name nodeID diskPath dataDirectoryName mode currentState rebuilding rebuildProgress address failedAt healthyAt }
    snapshots { ${SNAPSHOT_FIELDS} } attachmentTickets { id type nodeID satisfied } } } }`,
  nodes: `{ nodes { name ready schedulable allowScheduling evictionRequested tags zone region creationTimestamp
    conditions { type status reason message lastTransitionTime }
    disks { name path allowScheduling evictionRequested storageMaximum storageAvailable storageScheduled storageReserved tags
      conditions { type status reason message } scheduledReplicas { name size } } } }`,
  settings: '{ settings { name value default isSet type options minimum maximum unit applied category } }',
  events: `{ events(first: 500) { ${EVENT_FIELDS} } }`,
  'instance-managers': `{ instanceManagers { name nodeID type currentState ip port apiVersion creationTimestamp
    conditions { type status reason message } engines { name state ip port startedAt errorMessage }
    replicas { name state ip port startedAt errorMessage } } }`,
  backups:
    '{ backupTargets { name url available lastSyncedAt conditions { type status reason message } } backups { name volumeName snapshotName state progress size url error backupCreatedAt } }',
};

/** Volumes with their details come 20 a page (the query cost limit); this joins the pages. */
async function allVolumes(client: GraphQLClient, query: string): Promise<Record<string, unknown>> {
  const nodes: unknown[] = [];
  let after: string | null = null;
  for (let page = 0; page < 5_000; page++) {
    const data: {
      volumes: { nodes: unknown[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } };
    } = await client.query(query, { after });
    nodes.push(...data.volumes.nodes);
    if (!data.volumes.pageInfo.hasNextPage) break;
    after = data.volumes.pageInfo.endCursor;
  }
  return { volumes: { totalCount: nodes.length, nodes } };
}

export interface InstanceManagerView {
  name: string;
  nodeID: string;
  ip: string | null;
  port: number | null;
}

/**
 * The GraphQL views as graphql/<view>.yaml. The first query also proves the token: an
 * authentication failure is thrown, not recorded. Returns the data of each view.
 */
export async function collectGraphQLViews(
  client: GraphQLClient,
  entries: Entries,
  problems: Problems,
): Promise<Record<string, Record<string, unknown>>> {
  const results: Record<string, Record<string, unknown>> = {};
  let first = true;
  for (const [view, query] of Object.entries(GRAPHQL_VIEWS)) {
    try {
      const data =
        view === 'volumes'
          ? await allVolumes(client, query)
          : await client.query<Record<string, unknown>>(query);
      results[view] = data;
      entries.set(`graphql/${view}.yaml`, toYaml(redact(data)));
    } catch (error) {
      if (first) throw error;
      problems.add(`GraphQL ${view}`, error);
    }
    first = false;
  }
  return results;
}

/** Text from an HTTP URL (metrics), or the problem recorded; undefined then. */
async function fetchText(url: string, problems: Problems, source: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return await response.text();
  } catch (error) {
    problems.add(`${source} ${url}`, (error as { cause?: Error }).cause ?? error);
    return undefined;
  }
}

/** Records kept per instance at most (StreamLogs sends the kept history; this bounds a bundle). */
const LOG_RECORDS_PER_INSTANCE_MAX = 20_000;

function streamLogs(client: InstanceManagerClient, name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const lines: string[] = [];
    const stream = client.stream('StreamLogs', { name, follow: false, tail: LOG_RECORDS_PER_INSTANCE_MAX });
    const timer = setTimeout(() => stream.cancel(), 15_000);
    stream.on('data', (record: Record<string, unknown>) => {
      let details: unknown = {};
      try {
        details = JSON.parse(String(record.details_json || '{}'));
      } catch {}
      lines.push(
        redactText(
          JSON.stringify({
            time: record.time,
            level: record.level,
            source: record.source,
            instance: record.instance,
            message: record.message,
            ...(details as object),
          }),
        ),
      );
    });
    stream.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(lines);
    });
  });
}

/**
 * For each instance manager: instance-managers/<node>/info.json and instances.json (gRPC),
 * logs/<node>/<instance>.log (StreamLogs, JSON lines) and metrics/<node>.txt.
 */
export async function collectInstanceManagers(
  instanceManagers: InstanceManagerView[],
  metricsUrls: Map<string, string>,
  defaultMetricsPort: number,
  entries: Entries,
  problems: Problems,
): Promise<Record<string, unknown>[]> {
  const summaries: Record<string, unknown>[] = [];
  for (const manager of instanceManagers) {
    const node = fileName(manager.nodeID || manager.name);
    const summary: Record<string, unknown> = { name: manager.name, node: manager.nodeID, address: null };
    summaries.push(summary);
    const metricsUrl =
      metricsUrls.get(manager.nodeID) ??
      metricsUrls.get(manager.name) ??
      (manager.ip ? `http://${manager.ip}:${defaultMetricsPort}/metrics` : undefined);
    if (metricsUrl !== undefined) {
      const metrics = await fetchText(metricsUrl, problems, `metrics of ${manager.nodeID}`);
      if (metrics !== undefined) entries.set(`metrics/${node}.txt`, metrics);
    }
    if (!manager.ip || !manager.port) {
      problems.add(`instance manager ${manager.name}`, new Error('no gRPC address reported yet'));
      continue;
    }
    const address = `${manager.ip}:${manager.port}`;
    summary.address = address;
    const client = new InstanceManagerClient(address, { deadlineMs: 10_000 });
    try {
      const info = await client.call('GetInfo');
      summary.apiVersion = info.api_version;
      summary.startedAt = info.started_at;
      entries.set(`instance-managers/${node}/info.json`, `${JSON.stringify(redact(info), null, 2)}\n`);
      const { instances = [] } = (await client.call('ListInstances')) as { instances?: { name: string }[] };
      entries.set(
        `instance-managers/${node}/instances.json`,
        `${JSON.stringify(redact(instances), null, 2)}\n`,
      );
      for (const instance of instances) {
        try {
          const lines = await streamLogs(client, instance.name);
          entries.set(
            `logs/${node}/${fileName(instance.name)}.log`,
            lines.length === 0 ? '' : `${lines.join('\n')}\n`,
          );
        } catch (error) {
          problems.add(`logs of ${instance.name} on ${manager.nodeID}`, error);
        }
      }
    } catch (error) {
      problems.add(`instance manager ${manager.name} at ${address}`, error);
    } finally {
      client.close();
    }
  }
  return summaries;
}

/** The manager's /metrics and /healthz; the health answer (or undefined). */
export async function collectManager(server: string, entries: Entries, problems: Problems): Promise<unknown> {
  const metrics = await fetchText(`${server}/metrics`, problems, 'manager metrics');
  if (metrics !== undefined) entries.set('metrics/manager.txt', metrics);
  const health = await fetchText(`${server}/healthz`, problems, 'manager health');
  try {
    return health === undefined ? undefined : JSON.parse(health);
  } catch {
    return health;
  }
}

/** The tail kept of each log file: a bundle stays small enough to attach to an issue. */
const LOG_FILE_BYTES_MAX = 16 * 1024 * 1024;

/**
 * `DIR/logs/*.log` (the e2e harness keeps each process's stderr there; `hornbill up 2>
 * DIR/logs/up.log` puts up's and its children's logs there) as logs/files/<name>, the
 * last 16 MiB of each, bearer tokens blanked.
 */
export function collectLogFiles(dataDirectory: string, entries: Entries, problems: Problems): number {
  const folder = path.join(dataDirectory, 'logs');
  let names: string[];
  try {
    names = fs.readdirSync(folder).filter((name) => name.endsWith('.log'));
  } catch (error) {
    problems.add(`log files in ${folder}`, error);
    return 0;
  }
  for (const name of names.sort()) {
    try {
      const file = path.join(folder, name);
      const { size } = fs.statSync(file);
      const start = Math.max(0, size - LOG_FILE_BYTES_MAX);
      const buffer = Buffer.alloc(size - start);
      const descriptor = fs.openSync(file, 'r');
      try {
        fs.readSync(descriptor, buffer, 0, buffer.length, start);
      } finally {
        fs.closeSync(descriptor);
      }
      entries.set(`logs/files/${fileName(name)}`, redactText(buffer.toString('utf8')));
    } catch (error) {
      problems.add(`log file ${name}`, error);
    }
  }
  return names.length;
}
