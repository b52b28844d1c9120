import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { HornbillError } from '../errors.ts';
import { ReplicaStore } from '../storage/replica-store.ts';
import { ExitCode, formatBytes, formatTable } from './output.ts';
import { REPLICA_SERVE_USAGE, replicaServe } from './replica-serve.ts';

const USAGE = `Usage:
  hornbill replica inspect --dir DIR [--no-verify] [-o json]
      The chain of a replica folder (names, parents, sizes, removed flags, created), its
      revision counter and volume size, and a verify of every block's checksum.
      Exit 3 when verify finds bad blocks.
  hornbill replica export --dir DIR --output FILE [--snapshot NAME] [--skip-corrupt]
      Writes the volume (or one snapshot) as a sparse raw image: the last-resort recovery
      of a volume from a single replica. --skip-corrupt writes zeros for blocks that fail
      their checksum and lists them (exit 3) instead of stopping.
Both open the folder themselves: stop the process serving the replica first.`;

export async function replicaCommand(argv: string[], print: (text: string) => void): Promise<number> {
  const [subcommand, ...rest] = argv;
  if (subcommand?.startsWith('--') === true && subcommand !== '--help') return replicaServe(argv);
  switch (subcommand) {
    case 'inspect':
      return inspect(rest, print);
    case 'export':
      return exportCommand(rest, print);
    case undefined:
    case 'help':
    case '--help':
      print(`${REPLICA_SERVE_USAGE}\n${USAGE.replace('Usage:\n', '')}\n`);
      return subcommand === undefined ? ExitCode.USAGE : ExitCode.OK;
    default:
      throw new HornbillError('CLI_USAGE', `unknown replica command ${JSON.stringify(subcommand)}\n${USAGE}`);
  }
}

function parse<T extends ParseArgsOptionsConfig>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (error) {
    throw new HornbillError('CLI_USAGE', `${(error as Error).message}\n${USAGE}`);
  }
}

function requireString(value: unknown, flag: string): string {
  if (typeof value !== 'string' || value === '')
    throw new HornbillError('CLI_USAGE', `${flag} is required\n${USAGE}`);
  return value;
}

async function inspect(argv: string[], print: (text: string) => void): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: 'string' },
    'no-verify': { type: 'boolean' },
    output: { type: 'string', short: 'o' },
  });
  const directory = requireString(values.dir, '--dir');
  if (values.output !== undefined && values.output !== 'json') {
    throw new HornbillError('CLI_USAGE', `-o accepts json, not ${JSON.stringify(values.output)}`);
  }
  const store = ReplicaStore.open(directory);
  try {
    const chain = store.listChain();
    const report = values['no-verify'] === true ? null : store.verify();
    const summary = {
      directory,
      sizeBytes: store.sizeBytes,
      revisionCounter: store.revisionCounter,
      rebuilding: store.rebuilding,
      allocatedBytes: store.allocatedBytes(),
      layers: chain,
      verify: report,
    };
    if (values.output === 'json') {
      print(`${JSON.stringify(summary, null, 2)}\n`);
    } else {
      print(
        [
          `Replica           ${directory}`,
          `Volume size       ${formatBytes(store.sizeBytes)} (${store.sizeBytes} bytes)`,
          `Revision counter  ${store.revisionCounter}`,
          `Rebuilding        ${store.rebuilding ? 'yes' : 'no'}`,
          `On disk           ${formatBytes(summary.allocatedBytes)}`,
          '',
          formatTable(
            ['NAME', 'PARENT', 'CREATED', 'USER', 'REMOVED', 'DATA', 'LIVE', 'LABELS'],
            chain.map((layer) => [
              layer.name,
              layer.parent ?? '-',
              layer.createdAt,
              layer.userCreated ? 'yes' : 'no',
              layer.removed ? 'yes' : 'no',
              formatBytes(layer.dataBytes),
              layer.inLiveChain ? 'yes' : 'no',
              Object.entries(layer.labels)
                .map(([key, value]) => `${key}=${value}`)
                .join(',') || '-',
            ]),
          ),
          '',
          report === null
            ? 'Verify            skipped'
            : `Verify            ${report.blocksChecked} blocks in ${report.layersChecked} layers, ${report.badBlockCount} bad`,
          ...(report?.badBlocks ?? []).map(
            (bad) => `  bad block ${bad.block} (offset ${bad.offsetBytes}) in layer ${bad.layerName}`,
          ),
          '',
        ].join('\n'),
      );
    }
    return report !== null && report.badBlockCount > 0 ? ExitCode.PROBLEM_FOUND : ExitCode.OK;
  } finally {
    store.close();
  }
}

async function exportCommand(argv: string[], print: (text: string) => void): Promise<number> {
  const { values } = parse(argv, {
    dir: { type: 'string' },
    output: { type: 'string' },
    snapshot: { type: 'string' },
    'skip-corrupt': { type: 'boolean' },
  });
  const directory = requireString(values.dir, '--dir');
  const outputPath = requireString(values.output, '--output');
  const store = ReplicaStore.open(directory);
  try {
    const snapshot = typeof values.snapshot === 'string' ? values.snapshot : undefined;
    const report = store.exportImage({ outputPath, snapshot, skipCorrupt: values['skip-corrupt'] === true });
    print(
      `exported ${snapshot === undefined ? 'the volume' : `snapshot ${snapshot}`} to ${outputPath}: ` +
        `${formatBytes(report.sizeBytes)}, ${formatBytes(report.dataBytes)} of data\n`,
    );
    for (const bad of report.corruptBlocks) {
      print(`  block ${bad.block} of layer ${bad.layerName} failed its checksum; written as zeros\n`);
    }
    return report.corruptBlocks.length > 0 ? ExitCode.PROBLEM_FOUND : ExitCode.OK;
  } finally {
    store.close();
  }
}
