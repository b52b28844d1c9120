/**
 * `hornbill support-bundle [--output FILE.tar.gz] [--data DIR]`: everything needed to
 * diagnose a cluster in one tar.gz, as Longhorn's "Generate Support Bundle" does —
 * resources of every kind (YAML), the GraphQL views, events, settings, the metrics of the
 * manager and of each instance manager, each instance's log history, log files kept under
 * `DIR/logs/`, and summary.json (versions, nodes, time, what could not be collected).
 * Tokens and secrets are never included (support-bundle-sources.ts).
 *
 * Layout, under one folder `hornbill-support-bundle-<UTC time>/`:
 * ```
 * summary.json                       versions, nodes, instance managers, counts, problems
 * resources/<plural>/<ns>/<name>.yaml   every object of every kind (resource API)
 * resources/events.yaml              every Event (resource API)
 * graphql/{volumes,nodes,settings,events,instance-managers,backups}.yaml
 * metrics/manager.txt, metrics/<node>.txt
 * instance-managers/<node>/{info,instances}.json
 * logs/<node>/<instance>.log         StreamLogs history (JSON lines)
 * logs/files/<name>.log              DIR/logs/*.log (last 16 MiB each)
 * ```
 */
import fs from 'node:fs';
import path from 'node:path';
import { HornbillError } from '../../errors.ts';
import { type CommandIO, clientFor, printUsage, reportOperatorError } from './command.ts';
import { parseCommand, stringFlag } from './flags.ts';
import {
  collectGraphQLViews,
  collectInstanceManagers,
  collectLogFiles,
  collectManager,
  collectResources,
  type Entries,
  type InstanceManagerView,
  problemList,
} from './support-bundle-sources.ts';
import { TarWriter } from './tar.ts';

const USAGE = `Usage: hornbill support-bundle [--output FILE.tar.gz] [--data DIR] [--metrics-url NODE=URL …]

  Writes a tar.gz of every resource (YAML), events, settings, the metrics of the manager
  and of each instance manager, the instances' log histories, DIR/logs/*.log, and a
  summary.json. Tokens and secrets are never included.

  --output FILE        default hornbill-support-bundle-<time>.tar.gz in the current folder
  --data DIR           the data folder of hornbill up (default ./hornbill-data when it exists): its logs/
  --metrics-url N=URL  an instance manager's /metrics (default http://<its address>:--metrics-port/metrics)
  --metrics-port P     default 9502 (hornbill up's default)
  --server URL, --token TOKEN   as for every operator command`;

function bundleName(now: Date): string {
  return `hornbill-support-bundle-${now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}`;
}

function cliVersion(): string {
  try {
    const text = fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
    return String((JSON.parse(text) as { version?: string }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

function parseMetricsUrls(values: unknown): Map<string, string> {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  const urls = new Map<string, string>();
  for (const text of list) {
    const match = /^([^=\s]+)=(https?:\/\/\S+)$/.exec(String(text));
    if (match === null)
      throw new HornbillError(
        'CLI_USAGE',
        `--metrics-url must be NODE=http://…, not ${JSON.stringify(text)}`,
      );
    urls.set(match[1], match[2]);
  }
  return urls;
}

/** Writes `content` to `file` through a temporary file and a rename (no half-written bundle). */
function writeAtomically(file: string, content: Buffer): void {
  const temporary = `${file}.${process.pid}.partial`;
  try {
    fs.writeFileSync(temporary, content, { mode: 0o600 });
    fs.renameSync(temporary, file);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw new HornbillError(
      'CLI_SUPPORT_BUNDLE_FAILED',
      `cannot write ${file}: ${(error as Error).message}`,
      {
        path: file,
      },
    );
  }
}

function countBy(items: Record<string, unknown>[], field: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) {
    const key = String(item[field] ?? 'unknown').toLowerCase();
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function writeSupportBundle(argv: string[], io: CommandIO): Promise<number> {
  const options = {
    data: { type: 'string' },
    'metrics-url': { type: 'string', multiple: true },
    'metrics-port': { type: 'string' },
  } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 0, max: 0, names: '' }, false);
  if (parsed.values.help) return printUsage(io, USAGE);
  const now = new Date();
  const name = bundleName(now);
  // -o is the output file here (as in `curl -o`), not a print format.
  const output = path.resolve(stringFlag(parsed, 'output') ?? `${name}.tar.gz`);
  const metricsPort = Number(stringFlag(parsed, 'metrics-port') ?? 9502);
  if (!Number.isInteger(metricsPort) || metricsPort < 1 || metricsPort > 65535) {
    throw new HornbillError('CLI_USAGE', '--metrics-port must be a port number');
  }
  const metricsUrls = parseMetricsUrls(parsed.values['metrics-url']);
  const dataFlag = stringFlag(parsed, 'data');
  const dataDirectory = dataFlag ?? (fs.existsSync('hornbill-data') ? 'hornbill-data' : undefined);

  const client = clientFor(parsed);
  const entries: Entries = new Map();
  const problems = problemList();
  const views = await collectGraphQLViews(client, entries, problems);
  const resourceCount = await collectResources(client, entries, problems);
  const health = await collectManager(client.server, entries, problems);
  const instanceManagers = (views['instance-managers']?.instanceManagers ?? []) as InstanceManagerView[];
  const instanceSummaries = await collectInstanceManagers(
    instanceManagers,
    metricsUrls,
    metricsPort,
    entries,
    problems,
  );
  const logFiles = dataDirectory === undefined ? 0 : collectLogFiles(dataDirectory, entries, problems);
  if (dataDirectory === undefined) {
    problems.add(
      'log files',
      new Error('no --data folder (and no ./hornbill-data): the manager and up logs are not included'),
    );
  }
  const volumes = ((views.volumes?.volumes as { nodes?: Record<string, unknown>[] })?.nodes ?? []) as Record<
    string,
    unknown
  >[];
  const nodes = (views.nodes?.nodes ?? []) as Record<string, unknown>[];
  const summary = {
    bundle: name,
    createdAt: now.toISOString(),
    versions: {
      hornbill: cliVersion(),
      node: process.version,
      platform: `${process.platform}/${process.arch}`,
    },
    server: client.server,
    manager: health ?? null,
    nodes: nodes.map((node) => ({
      name: node.name,
      ready: node.ready,
      schedulable: node.schedulable,
      allowScheduling: node.allowScheduling,
      tags: node.tags,
      disks: (node.disks as unknown[] | undefined)?.length ?? 0,
    })),
    instanceManagers: instanceSummaries,
    volumes: {
      total: volumes.length,
      byState: countBy(volumes, 'state'),
      byRobustness: countBy(volumes, 'robustness'),
    },
    counts: { resources: resourceCount, logFiles, entries: entries.size + 1 },
    problems: problems.list,
  };
  const archive = new TarWriter({ modifiedMs: now.getTime() });
  archive.add(`${name}/summary.json`, `${JSON.stringify(summary, null, 2)}\n`);
  for (const [entryPath, content] of [...entries].sort(([left], [right]) => left.localeCompare(right))) {
    archive.add(`${name}/${entryPath}`, content);
  }
  const gzipped = archive.gzip();
  writeAtomically(output, gzipped);
  io.print(`${output}\n`);
  io.error(
    `hornbill: support bundle: ${entries.size + 1} files, ${gzipped.length} bytes` +
      (problems.list.length === 0
        ? ''
        : `; ${problems.list.length} sources could not be collected (summary.json lists them)`) +
      '\n',
  );
  return 0;
}

export async function supportBundleCommand(argv: string[], io: CommandIO): Promise<number> {
  try {
    return await writeSupportBundle(argv, io);
  } catch (error) {
    return reportOperatorError(error, io);
  }
}
