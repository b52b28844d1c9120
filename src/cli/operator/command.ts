/**
 * What every operator command shares: the output sinks, the error report (`hornbill:
 * CODE: message (field)` on stderr, never a stack trace) with the exit code scripts match
 * on, sub-command dispatch, and waiting for Ctrl-C during `--watch`.
 */
import { HornbillError } from '../../errors.ts';
import { exitCodeFor, GraphQLClient, OperatorExitCode, resolveConnection } from './client.ts';
import { type ParsedCommand, stringFlag } from './flags.ts';

export interface CommandIO {
  /** stdout. */
  print(text: string): void;
  /** stderr. */
  error(text: string): void;
}

export const processIO: CommandIO = {
  print: (text) => process.stdout.write(text),
  error: (text) => process.stderr.write(text),
};

/** A client for the connection the flags (or the environment, or the token file) name. */
export function clientFor(parsed: ParsedCommand): GraphQLClient {
  return new GraphQLClient(
    resolveConnection({ server: stringFlag(parsed, 'server'), token: stringFlag(parsed, 'token') }),
  );
}

/** Prints an error as every hornbill command does, without a stack; returns its exit code. */
export function reportOperatorError(error: unknown, io: CommandIO): number {
  if (error instanceof HornbillError) io.error(`hornbill: ${error.code}: ${error.message}\n`);
  else io.error(`hornbill: INTERNAL: ${(error as Error)?.message ?? String(error)}\n`);
  return exitCodeFor(error);
}

export type Subcommand = (argv: string[], io: CommandIO) => Promise<number>;

/** Runs `hornbill <group> <sub> …`: finds the sub-command, prints usage, maps errors to exit codes. */
export async function dispatch(
  group: string,
  argv: string[],
  subcommands: Record<string, Subcommand>,
  usage: string,
  io: CommandIO,
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    (name === undefined ? io.error : io.print)(`${usage}\n`);
    return name === undefined ? OperatorExitCode.USAGE : OperatorExitCode.OK;
  }
  const subcommand = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (subcommand === undefined) {
    io.error(`hornbill: CLI_USAGE: unknown command "${group} ${name}"\n\n${usage}\n`);
    return OperatorExitCode.USAGE;
  }
  try {
    return await subcommand(rest, io);
  } catch (error) {
    return reportOperatorError(error, io);
  }
}

/** An AbortSignal that fires on Ctrl-C (SIGINT) or SIGTERM; `release` removes the handlers. */
export function interruptSignal(): { signal: AbortSignal; release: () => void } {
  const controller = new AbortController();
  const abort = () => controller.abort();
  process.once('SIGINT', abort);
  process.once('SIGTERM', abort);
  return {
    signal: controller.signal,
    release: () => {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    },
  };
}

/** Polls `check` every 500 ms until it returns true; CLI_WAIT_TIMEOUT after `timeoutMs`. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new HornbillError(
        'CLI_WAIT_TIMEOUT',
        `${what} did not happen within ${Math.round(timeoutMs / 1000)} s`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** Prints a command's usage on stdout (asked for with --help); exit code 0. */
export function printUsage(io: CommandIO, usage: string): number {
  io.print(`${usage}\n`);
  return 0;
}
