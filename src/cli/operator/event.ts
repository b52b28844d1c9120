/**
 * `hornbill event ls [--object KIND/NAME] [--limit N]`: Events newest first, in the
 * columns of `kubectl get events` — LAST SEEN TYPE REASON OBJECT MESSAGE (wide: + COUNT,
 * FIRST SEEN, COMPONENT).
 */
import { HornbillError } from '../../errors.ts';
import { type CommandIO, clientFor, dispatch, printUsage } from './command.ts';
import { COMMON_USAGE, parseCommand, parseCount, stringFlag } from './flags.ts';
import { ageOf, cell, document, table } from './format.ts';

const USAGE = `Usage: hornbill event ls [--object KIND[/NAME]] [--limit N]

  Events, newest first (default limit 100, at most 500).
  --object volume/vol1, node/node-1, replica/NAME, or a kind alone (volume)

${COMMON_USAGE}`;

export interface EventView {
  type: string;
  reason: string;
  message: string;
  count: number;
  firstTimestamp: string;
  lastTimestamp: string;
  component: string;
  involvedObject: { kind: string; name: string };
}

export const EVENT_FIELDS =
  'type reason message count firstTimestamp lastTimestamp component host involvedObject { kind name }';

/** The kinds that Events name, by their lower-case spelling. */
const KINDS = [
  'Volume',
  'Engine',
  'Replica',
  'Node',
  'InstanceManager',
  'ShareManager',
  'Snapshot',
  'Backup',
  'BackupTarget',
  'Setting',
  'RecurringJob',
  'VolumeAttachment',
];

/** "volume/vol1" → { kind: 'Volume', name: 'vol1' }; "node" → { kind: 'Node' }. */
export function parseObject(text: string): { kind: string; name?: string } {
  const [kindText, name, ...rest] = text.split('/');
  const kind = KINDS.find((known) => known.toLowerCase() === kindText.toLowerCase().replace(/s$/, ''));
  if (kind === undefined || rest.length > 0 || name === '') {
    throw new HornbillError(
      'CLI_USAGE',
      `--object must be KIND[/NAME] with KIND one of ${KINDS.map((known) => known.toLowerCase()).join(', ')}; not ${JSON.stringify(text)}`,
    );
  }
  return name === undefined ? { kind } : { kind, name };
}

export function eventRows(events: EventView[], wide: boolean, nowMs: number): string[][] {
  return events.map((event) => [
    ageOf(event.lastTimestamp, nowMs),
    event.type,
    event.reason,
    `${event.involvedObject.kind.toLowerCase()}/${event.involvedObject.name}`,
    ...(wide ? [String(event.count), ageOf(event.firstTimestamp, nowMs), cell(event.component)] : []),
    event.message.replace(/\s*\n\s*/g, ' '),
  ]);
}

async function list(argv: string[], io: CommandIO): Promise<number> {
  const options = { object: { type: 'string' }, limit: { type: 'string' } } as const;
  const parsed = parseCommand(argv, options, USAGE, { min: 0, max: 0, names: '' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const objectText = stringFlag(parsed, 'object');
  const object = objectText === undefined ? {} : parseObject(objectText);
  const first = parseCount(parsed.values.limit, '--limit', 500) ?? 100;
  const { events } = await clientFor(parsed).query<{ events: EventView[] }>(
    `query($kind: String, $name: String, $first: Int) { events(kind: $kind, name: $name, first: $first) { ${EVENT_FIELDS} } }`,
    { ...object, first },
  );
  if (parsed.output === 'json' || parsed.output === 'yaml') {
    io.print(document({ kind: 'List', items: events }, parsed.output));
    return 0;
  }
  const wide = parsed.output === 'wide';
  const header = [
    'LAST SEEN',
    'TYPE',
    'REASON',
    'OBJECT',
    ...(wide ? ['COUNT', 'FIRST SEEN', 'COMPONENT'] : []),
    'MESSAGE',
  ];
  io.print(table(header, eventRows(events, wide, Date.now()), 'No events found.'));
  return 0;
}

export function eventCommand(argv: string[], io: CommandIO): Promise<number> {
  return dispatch('event', argv, { ls: list, list }, USAGE, io);
}
