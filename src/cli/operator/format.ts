/**
 * How the operator commands print: kubectl's AGE (`humanAge`), padded tables (the
 * columns of `kubectl get volumes.longhorn.io`), `-o json|yaml` documents, lower-case
 * enum values and `<none>` for absent cells.
 */
import { toYaml } from '../../resources/yaml.ts';
import { formatBytes, formatTable } from '../output.ts';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The gap between columns, as kubectl's tabwriter pads. */
const COLUMN_GAP = '   ';

/**
 * A duration as kubectl prints AGE (k8s.io/apimachinery duration.HumanDuration): exact
 * seconds under 2 minutes, minutes and seconds under 10 minutes, minutes under 3 hours,
 * hours and minutes under 8 hours, hours under 2 days, days and hours under 8 days, days
 * under 2 years, years and days under 8 years, then years.
 */
export function humanAge(durationMs: number): string {
  const seconds = Math.trunc(durationMs / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 60 * 2) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const remainder = seconds % 60;
    return remainder === 0 ? `${minutes}m` : `${minutes}m${remainder}s`;
  }
  if (minutes < 60 * 3) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const remainder = minutes % 60;
    return remainder === 0 ? `${hours}h` : `${hours}h${remainder}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const remainder = hours % 24;
    return remainder === 0 ? `${Math.trunc(hours / 24)}d` : `${Math.trunc(hours / 24)}d${remainder}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  const years = Math.trunc(hours / 24 / 365);
  if (hours < 24 * 365 * 8) {
    const days = Math.trunc(hours / 24) % 365;
    return days === 0 ? `${years}y` : `${years}y${days}d`;
  }
  return `${years}y`;
}

/** The AGE of an object created at `timestamp` (RFC 3339), seen at `nowMs`; `<unknown>` when absent. */
export function ageOf(timestamp: string | null | undefined, nowMs: number = Date.now()): string {
  if (!timestamp) return '<unknown>';
  const createdMs = Date.parse(timestamp);
  return Number.isNaN(createdMs) ? '<unknown>' : humanAge(nowMs - createdMs);
}

/** An enum value as kubectl shows the resource's field: ATTACHED → attached, BEST_EFFORT → best-effort. */
export function lower(value: string | null | undefined): string {
  return value ? value.toLowerCase().replaceAll('_', '-') : '<none>';
}

/** A cell: the text, or `<none>` when empty. */
export function cell(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '<none>' : String(value);
}

/** A decimal byte string ("2147483648") as "2.00 GiB"; `<none>` when absent. */
export function bytesCell(value: string | null | undefined): string {
  if (value === null || value === undefined || value === '') return '<none>';
  const bytes = Number(value);
  return Number.isFinite(bytes) ? formatBytes(bytes) : value;
}

/** A padded table; an empty list prints kubectl's "No resources found." line instead. */
export function table(header: string[], rows: string[][], empty = 'No resources found.'): string {
  return rows.length === 0 ? `${empty}\n` : `${formatTable(header, rows)}\n`;
}

/** The column widths of a table, so that rows printed later (--watch) line up with it. */
export function columnWidths(header: string[], rows: string[][]): number[] {
  return header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
}

/** One row padded to `widths` (a cell wider than its column pushes the rest right). */
export function formatRow(cells: string[], widths: number[]): string {
  return cells
    .map((text, column) => (column === cells.length - 1 ? text : text.padEnd(widths[column] ?? 0)))
    .join(COLUMN_GAP)
    .trimEnd();
}

/** A JSON (two-space indent) or YAML document of `value`, ending with a newline. */
export function document(value: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${JSON.stringify(value, null, 2)}\n`;
  const yaml = toYaml(value);
  return yaml.endsWith('\n') ? yaml : `${yaml}\n`;
}

/** Labels as `k=v,k2=v2`; `<none>` when empty. */
export function labelsCell(labels: { key: string; value: string }[] | undefined): string {
  if (labels === undefined || labels.length === 0) return '<none>';
  return labels.map(({ key, value }) => `${key}=${value}`).join(',');
}
