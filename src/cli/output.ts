import { HornbillError, isHornbillError } from '../errors.ts';

/** Exit codes that scripts can rely on. */
export const ExitCode = {
  OK: 0,
  /** The command ran and failed (the coded error is printed). */
  FAILED: 1,
  /** The command line was wrong. */
  USAGE: 2,
  /** The command ran and found a problem it reports (for example bad blocks). */
  PROBLEM_FOUND: 3,
} as const;

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${value} B`
    : `${value.toFixed(value >= 100 ? 0 : value >= 10 ? 1 : 2)} ${UNITS[unit]}`;
}

/** "10Gi", "512Mi", "4096", "1T" → bytes. Binary suffixes, as Kubernetes quantities. */
export function parseBytes(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(|k|ki|m|mi|g|gi|t|ti|p|pi)(?:b)?$/i.exec(text.trim());
  if (match === null)
    throw new HornbillError('CLI_USAGE', `not a size: ${JSON.stringify(text)} (examples: 10Gi, 512Mi, 4096)`);
  const power = ['', 'k', 'm', 'g', 't', 'p'].indexOf(match[2].toLowerCase().replace('i', ''));
  const bytes = Number(match[1]) * 1024 ** power;
  if (!Number.isSafeInteger(bytes))
    throw new HornbillError('CLI_USAGE', `size ${text} is not a whole number of bytes`);
  return bytes;
}

/** A plain-text table with columns padded to their widest cell, as kubectl prints. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Prints an error the way every hornbill command does and returns the exit code. */
export function reportError(
  error: unknown,
  write: (text: string) => void = (text) => process.stderr.write(text),
): number {
  if (isHornbillError(error)) {
    write(`hornbill: ${error.code}: ${error.message}\n`);
    return error.code === 'CLI_USAGE' ? ExitCode.USAGE : ExitCode.FAILED;
  }
  write(`hornbill: INTERNAL: ${(error as Error)?.stack ?? String(error)}\n`);
  return ExitCode.FAILED;
}
