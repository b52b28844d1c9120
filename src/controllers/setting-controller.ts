/**
 * The setting controller (key: setting name). Makes sure every setting of the registry
 * (src/resources/settings.ts) exists as a Setting resource holding its default, and marks
 * each one `applied` (controllers read settings afresh on every reconcile, so a stored
 * value is in effect at once). The store validates values on write; a stored value that
 * does not validate (data from an older version) is reported with a Warning event and
 * condition Valid False, and the default is used in its place.
 */
import {
  SETTING_NAMES,
  type SettingName,
  settingDefaultText,
  settingValueProblem,
} from '../resources/index.ts';
import { type ControllerContext, getOrUndefined, withCondition } from './context.ts';
import type { ReconcileResult } from './work-queue.ts';

const COMPONENT = 'hornbill-setting-controller';

export function settingKeys(): readonly SettingName[] {
  return SETTING_NAMES;
}

export async function reconcileSetting(context: ControllerContext, name: string): Promise<ReconcileResult> {
  if (!(SETTING_NAMES as readonly string[]).includes(name)) return {};
  let setting = await getOrUndefined(context.store, 'Setting', context.namespace, name);
  if (setting === undefined) {
    try {
      setting = await context.store.create({
        kind: 'Setting',
        metadata: { name, namespace: context.namespace },
        spec: { value: settingDefaultText(name as SettingName) },
      });
    } catch (error) {
      setting = await getOrUndefined(context.store, 'Setting', context.namespace, name);
      if (setting === undefined) throw error;
    }
  }
  const problem = settingValueProblem(name, setting.spec.value);
  const { conditions, changed } = withCondition(setting.status?.conditions, {
    type: 'Valid',
    status: problem === undefined ? 'True' : 'False',
    reason: problem === undefined ? 'ValueValid' : 'ValueInvalid',
    message: problem ?? `value ${JSON.stringify(setting.spec.value)} is in effect`,
    observedGeneration: setting.metadata.generation,
  });
  const applied = problem === undefined;
  if (
    !changed &&
    setting.status?.applied === applied &&
    setting.status.observedGeneration === setting.metadata.generation
  )
    return {};
  await context.store.updateStatus({
    ...setting,
    status: { ...setting.status, conditions, applied, observedGeneration: setting.metadata.generation },
  });
  if (changed && setting.status !== undefined) {
    await context.event(
      setting,
      problem === undefined ? 'Normal' : 'Warning',
      problem === undefined ? 'SettingApplied' : 'SettingInvalid',
      problem === undefined ? `${name} = ${setting.spec.value}` : `${name}: ${problem}; the default is used`,
      COMPONENT,
    );
  }
  return {};
}
