import fs from 'node:fs';
import { buildJobs, readJobFile } from '../bench/job-file.ts';
import {
  applyJobOption,
  canonicalOptionName,
  checkJob,
  defaultJobOptions,
  type JobOptions,
} from '../bench/options.ts';
import { benchJson } from '../bench/report-json.ts';
import { errorLines, normalReport, startBanner, verifyLines } from '../bench/report-normal.ts';
import { BenchRun } from '../bench/run.ts';
import { parseTarget, resolveVolume, type TargetAddress } from '../bench/target.ts';
import { HornbillError } from '../errors.ts';
import { resolveConnection } from './operator/client.ts';
import { ExitCode } from './output.ts';

export const BENCH_USAGE = `Usage:
  hornbill bench --target URL | --volume NAME  [fio job options]  [--profile FILE [--section NAME]]
                 [--output-format normal|json] [--output FILE] [--progress]
      A load generator that speaks fio's vocabulary (docs/bench.md).

  Target (one of):
    --target iscsi://HOST:PORT/IQN/LUN    an iSCSI LUN, through Hornbill's initiator
    --target nbd://HOST:PORT/EXPORT       an NBD export, through Hornbill's NBD client
    --volume NAME, --target engine:NAME   a volume of the running cluster, attached with a
                                          frontend: its endpoint from the manager's GraphQL API
                                          ([--server URL] [--token T], as hornbill volume …)

  Job options (fio's names and values; --opt VALUE or --opt=VALUE):
    --rw read|write|randread|randwrite|randrw|readwrite    (default read)
    --bs 4k | 4k-64k | 4k,64k (read,write)                 (default 4k)
    --iodepth N  --numjobs N  --size SIZE  --offset SIZE  --offset_increment SIZE
    --runtime TIME  --time_based  --ramp_time TIME  --rwmixread PERCENT
    --verify crc32c [--do_verify=0] [--verify_fatal=1]
    --continue_on_error none|read|write|io|verify|all  --group_reporting  --name NAME
    --direct=1   accepted for fio compatibility; meaningless over the network
  With --profile, the command line's job options are defaults that the file's [global]
  and job sections override (as in fio).

  Output: fio's normal text or fio's JSON (--output-format json); a progress line on
  stderr when it is a terminal or with --progress. Exit status: 0, 1 when the target
  failed I/O, 2 for a bad command line, 3 when --verify found corrupted blocks.`;

/** Job options written as a bare flag (--time_based); a value needs "=" (--time_based=0). */
const FLAG_OPTIONS = new Set([
  'time_based',
  'direct',
  'group_reporting',
  'stonewall',
  'wait_for_previous',
  'new_group',
  'thread',
  'norandommap',
  'randrepeat',
  'buffered',
  'invalidate',
  'do_verify',
  'verify_fatal',
]);

interface BenchCommandLine {
  target: string | null;
  volume: string | null;
  /** The manager and token for --volume (as the operator CLI takes them). */
  server: string | null;
  token: string | null;
  profile: string | null;
  section: string | null;
  outputFormat: 'normal' | 'json';
  output: string | null;
  progress: boolean;
  help: boolean;
  /** Job options in the order given. */
  jobOptions: [string, string][];
}

export function parseBenchArguments(argv: string[]): BenchCommandLine {
  const line: BenchCommandLine = {
    target: null,
    volume: null,
    server: null,
    token: null,
    profile: null,
    section: null,
    outputFormat: 'normal',
    output: null,
    progress: false,
    help: false,
    jobOptions: [],
  };
  for (let index = 0; index < argv.length; index++) {
    const argument = argv[index];
    if (argument === '-h' || argument === '--help') {
      line.help = true;
      continue;
    }
    if (!argument.startsWith('--'))
      throw new HornbillError(
        'CLI_USAGE',
        `unexpected argument ${JSON.stringify(argument)} (job files go in --profile)`,
      );
    const equals = argument.indexOf('=');
    const name = canonicalOptionName(argument.slice(2, equals < 0 ? undefined : equals));
    let value: string | undefined = equals < 0 ? undefined : argument.slice(equals + 1);
    if (name === 'progress') {
      line.progress = value === undefined || value === '1';
      continue;
    }
    if (value === undefined && FLAG_OPTIONS.has(name)) value = '1';
    if (value === undefined) {
      if (index + 1 >= argv.length) throw new HornbillError('CLI_USAGE', `--${name} needs a value`);
      value = argv[++index];
    }
    switch (name) {
      case 'target':
        line.target = value;
        break;
      case 'volume':
        line.volume = value;
        break;
      case 'server':
        line.server = value;
        break;
      case 'token':
        line.token = value;
        break;
      case 'profile':
        line.profile = value;
        break;
      case 'section':
        line.section = value;
        break;
      case 'output_format':
        if (value !== 'normal' && value !== 'json')
          throw new HornbillError(
            'CLI_USAGE',
            `--output-format must be normal or json, not ${JSON.stringify(value)}`,
          );
        line.outputFormat = value;
        break;
      case 'output':
        line.output = value;
        break;
      default:
        line.jobOptions.push([name, value]);
    }
  }
  return line;
}

/** The jobs a command line describes, and fio's "global options" when a job file is used. */
export function jobsFromCommandLine(line: BenchCommandLine): {
  jobs: JobOptions[];
  globalOptions: Record<string, string> | null;
} {
  const base = defaultJobOptions('bench');
  for (const [key, value] of line.jobOptions) applyJobOption(base, key, value, 'command line');
  if (line.profile !== null) {
    const set = buildJobs(readJobFile(line.profile), line.profile, base, line.section);
    return { jobs: set.jobs, globalOptions: set.globalOptions };
  }
  if (line.section !== null) throw new HornbillError('CLI_USAGE', '--section needs --profile');
  checkJob(base, 'command line');
  // As fio: options before --name are global options (reported apart), the rest the job's.
  const nameAt = line.jobOptions.findIndex(([key]) => key === 'name');
  const globals = nameAt < 0 ? [] : line.jobOptions.slice(0, nameAt);
  const given: Record<string, string> = { name: base.name };
  for (const [key, value] of line.jobOptions.slice(Math.max(0, nameAt)))
    if (key !== 'name') given[key] = value;
  base.given = given;
  return { jobs: [base], globalOptions: globals.length === 0 ? null : Object.fromEntries(globals) };
}

async function targetOf(line: BenchCommandLine): Promise<TargetAddress> {
  if ((line.target === null) === (line.volume === null))
    throw new HornbillError('CLI_USAGE', `give one of --target or --volume\n${BENCH_USAGE}`);
  const address =
    line.volume !== null ? ({ kind: 'volume', name: line.volume } as const) : parseTarget(line.target!);
  // A volume name resolves before any job starts, so that a lookup failure is the only output.
  return address.kind === 'volume'
    ? resolveVolume(
        address.name,
        resolveConnection({ server: line.server ?? undefined, token: line.token ?? undefined }),
      )
    : address;
}

export async function benchCommand(
  argv: string[],
  print: (text: string) => void = (text) => process.stdout.write(text),
  printError: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  const line = parseBenchArguments(argv);
  if (line.help) {
    print(`${BENCH_USAGE}\n`);
    return ExitCode.OK;
  }
  const { jobs, globalOptions } = jobsFromCommandLine(line);
  const target = await targetOf(line);
  const engine = target.kind === 'iscsi' ? 'hornbill-iscsi' : 'hornbill-nbd';
  const write = line.output === null ? print : (text: string) => fs.appendFileSync(line.output!, text);
  if (line.output !== null) fs.writeFileSync(line.output, '');
  if (line.outputFormat === 'normal') write(`${startBanner(jobs, engine)}\n`);

  const terminal = process.stderr.isTTY === true;
  let progressShown = false;
  const onProgress =
    terminal || line.progress
      ? (text: string) => {
          progressShown = true;
          printError(terminal ? `\r${text}\u001b[K` : `${text}\n`);
        }
      : null;
  const run = new BenchRun({ jobs, target, onProgress });
  const interrupt = () => run.stop();
  process.on('SIGINT', interrupt);
  let result: Awaited<ReturnType<BenchRun['run']>>;
  try {
    result = await run.run();
  } finally {
    process.off('SIGINT', interrupt);
    if (progressShown && terminal) printError('\n');
  }

  if (line.outputFormat === 'json') {
    write(`${JSON.stringify(benchJson(result, globalOptions), null, 2)}\n`);
    const details = [...verifyLines(result), ...errorLines(result)];
    if (details.length > 0)
      printError(`${details.map((detail) => `hornbill bench: ${detail}`).join('\n')}\n`);
  } else {
    write(normalReport(result));
  }
  const ioErrors = result.reports.some((report) => report.stats.errors.ioErrors > 0);
  const corrupted = result.verify.some(({ state }) => state.corruptedUnits > 0);
  return ioErrors ? ExitCode.FAILED : corrupted ? ExitCode.PROBLEM_FOUND : ExitCode.OK;
}
