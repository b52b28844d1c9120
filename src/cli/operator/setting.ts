/**
 * `hornbill setting get [NAME]` and `hornbill setting set NAME VALUE` (scope admin):
 * every setting with its value, whether it was set, its default and its allowed values.
 */
import { HornbillError } from '../../errors.ts';
import { type CommandIO, clientFor, dispatch, printUsage } from './command.ts';
import { COMMON_USAGE, parseCommand } from './flags.ts';
import { cell, document, table } from './format.ts';

const USAGE = `Usage: hornbill setting <command>

Commands:
  get [NAME]        settings: NAME VALUE SET DEFAULT (wide: + TYPE ALLOWED APPLIED DESCRIPTION)
  set NAME VALUE    change a setting (scope admin); the value is checked against its type and range

${COMMON_USAGE}`;

interface SettingView {
  name: string;
  value: string;
  default: string;
  isSet: boolean;
  type: string;
  options: string[];
  minimum: string | null;
  maximum: string | null;
  unit: string | null;
  applied: boolean | null;
  category: string;
  description: string;
}

const SETTING_FIELDS =
  'name value default isSet type options minimum maximum unit applied category description';

/** The allowed values of a setting: its options, or its integer range with the unit. */
export function allowedValues(setting: SettingView): string {
  if (setting.options.length > 0) return setting.options.join('|');
  if (setting.minimum !== null || setting.maximum !== null) {
    return `${setting.minimum ?? ''}..${setting.maximum ?? ''}${setting.unit ? ` ${setting.unit}` : ''}`;
  }
  return setting.type;
}

function settingRows(settings: SettingView[], wide: boolean): string[][] {
  return settings.map((setting) => [
    setting.name,
    cell(setting.value),
    setting.isSet ? 'yes' : 'no',
    cell(setting.default),
    ...(wide
      ? [
          setting.type,
          allowedValues(setting),
          setting.applied === null ? '-' : String(setting.applied),
          setting.description,
        ]
      : []),
  ]);
}

async function get(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 0, max: 1, names: '[NAME]' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name] = parsed.positionals;
  const client = clientFor(parsed);
  let settings: SettingView[];
  if (name === undefined) {
    settings = (await client.query<{ settings: SettingView[] }>(`{ settings { ${SETTING_FIELDS} } }`))
      .settings;
  } else {
    const { setting } = await client.query<{ setting: SettingView | null }>(
      `query($name: String!) { setting(name: $name) { ${SETTING_FIELDS} } }`,
      { name },
    );
    if (setting === null) throw new HornbillError('RESOURCE_NOT_FOUND', `setting ${name} not found`);
    settings = [setting];
  }
  if (parsed.output === 'json' || parsed.output === 'yaml') {
    io.print(document(name === undefined ? { kind: 'List', items: settings } : settings[0], parsed.output));
    return 0;
  }
  const wide = parsed.output === 'wide';
  const header = [
    'NAME',
    'VALUE',
    'SET',
    'DEFAULT',
    ...(wide ? ['TYPE', 'ALLOWED', 'APPLIED', 'DESCRIPTION'] : []),
  ];
  io.print(table(header, settingRows(settings, wide)));
  return 0;
}

async function set(argv: string[], io: CommandIO): Promise<number> {
  const parsed = parseCommand(argv, {}, USAGE, { min: 2, max: 2, names: 'NAME VALUE' });
  if (parsed.values.help) return printUsage(io, USAGE);
  const [name, value] = parsed.positionals;
  const payload = await clientFor(parsed).mutate<{ setting: SettingView; errors: [] }>(
    `mutation($name: String!, $value: String!) { updateSetting(name: $name, value: $value) { setting { ${SETTING_FIELDS} } errors { code message field } } }`,
    { name, value },
    'updateSetting',
  );
  if (parsed.output === 'json' || parsed.output === 'yaml')
    io.print(document(payload.setting, parsed.output));
  else io.print(`setting/${name} set to ${JSON.stringify(payload.setting.value)}\n`);
  return 0;
}

export function settingCommand(argv: string[], io: CommandIO): Promise<number> {
  return dispatch('setting', argv, { get, ls: get, list: get, set }, USAGE, io);
}
