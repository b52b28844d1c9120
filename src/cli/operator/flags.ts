/**
 * Command-line parsing shared by the operator commands: node:util parseArgs (strict, with
 * positionals) plus the flags every one of them takes — `--server`, `--token`,
 * `-o/--output` and `-h/--help` — and helpers for `k=v` labels, `on|off` switches and
 * comma lists. A bad command line is CLI_USAGE (exit code 2) with the command's usage.
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { HornbillError } from '../../errors.ts';
import { OUTPUT_FORMATS, type OutputFormat } from './format.ts';

/** The flags every operator command takes. */
export const COMMON_OPTIONS = {
  server: { type: 'string' },
  token: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsOptionsConfig;

export const COMMON_USAGE = `Common flags:
  --server URL      the manager (default $HORNBILL_SERVER, else http://127.0.0.1:9500)
  --token TOKEN     the API bearer token (default $HORNBILL_TOKEN, else ~/.config/hornbill/token)
  -o, --output F    table (default), wide, json or yaml
  -h, --help        this text`;

export interface ParsedCommand {
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  positionals: string[];
  output: OutputFormat;
}

/** A string flag's value, or undefined. */
export function stringFlag(parsed: ParsedCommand, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === 'string' ? value : undefined;
}

/** Parses `argv` with the common flags and `options`; checks the positional count. */
export function parseCommand(
  argv: string[],
  options: ParseArgsOptionsConfig,
  usage: string,
  positionals: { min: number; max: number; names: string },
  /** false: -o/--output is free text (support-bundle's output file), not a print format. */
  outputIsFormat = true,
): ParsedCommand {
  let parsed: Pick<ParsedCommand, 'values' | 'positionals'>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...COMMON_OPTIONS, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new HornbillError('CLI_USAGE', `${(error as Error).message}\n${usage}`);
  }
  if (parsed.values.help === true) return { ...parsed, output: 'table' };
  const count = parsed.positionals.length;
  if (count < positionals.min || count > positionals.max) {
    const expected = positionals.names === '' ? 'no arguments' : positionals.names;
    throw new HornbillError(
      'CLI_USAGE',
      `expected ${expected}, got ${count === 0 ? 'none' : parsed.positionals.join(' ')}\n${usage}`,
    );
  }
  const output = (parsed.values.output ?? 'table') as string;
  if (!outputIsFormat) return { ...parsed, output: 'table' };
  if (!(OUTPUT_FORMATS as readonly string[]).includes(output)) {
    throw new HornbillError(
      'CLI_USAGE',
      `-o must be one of ${OUTPUT_FORMATS.join(', ')}, not ${JSON.stringify(output)}\n${usage}`,
    );
  }
  return { ...parsed, output: output as OutputFormat };
}

/** "on" | "off" (also true/false, yes/no) → boolean; undefined when the flag is absent. */
export function parseSwitch(value: unknown, flag: string): boolean | undefined {
  if (value === undefined) return undefined;
  const text = String(value).toLowerCase();
  if (['on', 'true', 'yes'].includes(text)) return true;
  if (['off', 'false', 'no'].includes(text)) return false;
  throw new HornbillError('CLI_USAGE', `${flag} must be on or off, not ${JSON.stringify(value)}`);
}

/** "a,b , c" → ["a","b","c"]; "" → [] (clears a list). */
export function parseList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** Repeated `--label k=v` → [{key, value}]. */
export function parseLabels(values: unknown, flag = '--label'): { key: string; value: string }[] {
  const list = values === undefined ? [] : Array.isArray(values) ? values : [values];
  return list.map((text) => {
    const match = /^([^=\s]+)=(.*)$/.exec(String(text));
    if (match === null)
      throw new HornbillError('CLI_USAGE', `${flag} must be KEY=VALUE, not ${JSON.stringify(text)}`);
    return { key: match[1], value: match[2] };
  });
}

/** A positive whole number flag; undefined when absent. */
export function parseCount(value: unknown, flag: string, maximum: number): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 1 || number > maximum) {
    throw new HornbillError(
      'CLI_USAGE',
      `${flag} must be a whole number from 1 to ${maximum}, not ${JSON.stringify(value)}`,
    );
  }
  return number;
}

/** An enum flag: the value upper-cased (GraphQL enum style) once checked against `allowed`. */
export function parseChoice(value: unknown, flag: string, allowed: readonly string[]): string | undefined {
  if (value === undefined) return undefined;
  const text = String(value).toLowerCase();
  if (!allowed.includes(text)) {
    throw new HornbillError(
      'CLI_USAGE',
      `${flag} must be one of ${allowed.join(', ')}, not ${JSON.stringify(value)}`,
    );
  }
  return text.toUpperCase().replaceAll('-', '_');
}
