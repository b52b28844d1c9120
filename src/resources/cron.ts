/**
 * Cron expressions for recurring jobs, as Longhorn takes them (robfig/cron's standard
 * parser): five fields — minute, hour, day of month, month, day of week — each `*`, a
 * value, a range `a-b`, a list `a,b`, with an optional step `/n`; month and weekday names
 * (JAN, MON); or a descriptor (@yearly, @annually, @monthly, @weekly, @daily, @midnight,
 * @hourly, @every <duration>).
 */

export interface CronSchedule {
  minutes: ReadonlySet<number>;
  hours: ReadonlySet<number>;
  daysOfMonth: ReadonlySet<number>;
  months: ReadonlySet<number>;
  /** 0 = Sunday; 7 is accepted and folded into 0. */
  daysOfWeek: ReadonlySet<number>;
}

export type ParsedCron = { schedule: CronSchedule } | { everySeconds: number } | { problem: string };

const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

interface FieldRule {
  name: string;
  minimum: number;
  maximum: number;
  names?: string[];
  /** The index of names[0]. */
  nameBase?: number;
}

const FIELDS: FieldRule[] = [
  { name: 'minute', minimum: 0, maximum: 59 },
  { name: 'hour', minimum: 0, maximum: 23 },
  { name: 'day of month', minimum: 1, maximum: 31 },
  { name: 'month', minimum: 1, maximum: 12, names: MONTH_NAMES, nameBase: 1 },
  { name: 'day of week', minimum: 0, maximum: 7, names: DAY_NAMES, nameBase: 0 },
];

const DESCRIPTORS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

/** Go duration units that @every accepts. */
const DURATION_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

function parseNumber(text: string, rule: FieldRule): number | undefined {
  if (/^\d{1,2}$/.test(text)) return Number(text);
  const index = rule.names?.indexOf(text.toUpperCase()) ?? -1;
  return index < 0 ? undefined : index + (rule.nameBase ?? 0);
}

function parseField(text: string, rule: FieldRule): Set<number> | string {
  const values = new Set<number>();
  for (const item of text.split(',')) {
    const [range, stepText, extra] = item.split('/');
    if (extra !== undefined) return `${rule.name}: ${JSON.stringify(item)} has more than one step`;
    let step = 1;
    if (stepText !== undefined) {
      if (!/^\d{1,2}$/.test(stepText) || Number(stepText) === 0) {
        return `${rule.name}: step ${JSON.stringify(stepText)} must be a number from 1 to 99`;
      }
      step = Number(stepText);
    }
    let low = rule.minimum;
    let high = rule.maximum === 7 ? 6 : rule.maximum;
    if (range !== '*' && range !== '?') {
      const bounds = range.split('-');
      if (bounds.length > 2) return `${rule.name}: ${JSON.stringify(range)} is not a value or a range`;
      const first = parseNumber(bounds[0], rule);
      const last = bounds.length === 2 ? parseNumber(bounds[1], rule) : stepText === undefined ? first : high;
      if (first === undefined || last === undefined) {
        return `${rule.name}: ${JSON.stringify(range)} is not a value or a range`;
      }
      if (first < rule.minimum || last > rule.maximum || first > last) {
        return `${rule.name}: ${JSON.stringify(range)} is outside ${rule.minimum}-${rule.maximum}`;
      }
      low = first;
      high = last;
    }
    for (let value = low; value <= high; value += step)
      values.add(rule.maximum === 7 && value === 7 ? 0 : value);
  }
  return values;
}

function parseEvery(text: string): number | undefined {
  let rest = text;
  let seconds = 0;
  while (rest.length > 0) {
    const match = /^(\d+)([smh])/.exec(rest);
    if (match === null) return undefined;
    seconds += Number(match[1]) * DURATION_UNITS[match[2]];
    rest = rest.slice(match[0].length);
  }
  return seconds > 0 ? seconds : undefined;
}

export function parseCron(expression: string): ParsedCron {
  const text = expression.trim();
  if (text.length === 0 || text.length > 256) return { problem: 'must be 1 to 256 characters' };
  if (text.startsWith('@every ')) {
    const everySeconds = parseEvery(text.slice('@every '.length).trim());
    return everySeconds === undefined
      ? { problem: '@every needs a duration such as 90s, 15m or 1h30m' }
      : { everySeconds };
  }
  const expanded = DESCRIPTORS[text] ?? text;
  if (expanded.startsWith('@')) return { problem: `unknown descriptor ${JSON.stringify(text)}` };
  const fields = expanded.split(/\s+/);
  if (fields.length !== 5) {
    return {
      problem: `must have 5 fields (minute hour day-of-month month day-of-week), not ${fields.length}`,
    };
  }
  const sets: Set<number>[] = [];
  for (const [index, field] of fields.entries()) {
    const parsed = parseField(field, FIELDS[index]);
    if (typeof parsed === 'string') return { problem: parsed };
    sets.push(parsed);
  }
  const [minutes, hours, daysOfMonth, months, daysOfWeek] = sets;
  return { schedule: { minutes, hours, daysOfMonth, months, daysOfWeek } };
}

/** The reason `expression` is not a valid cron expression, or undefined. */
export function cronProblem(expression: string): string | undefined {
  const parsed = parseCron(expression);
  return 'problem' in parsed ? parsed.problem : undefined;
}
