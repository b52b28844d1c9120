/** Setting: one cluster-wide setting, named after it (src/resources/settings.ts holds the registry). */
import type { Resource, StatusBase } from '../api.ts';
import { Schema } from '../schema.ts';
import { settingValueProblem } from '../settings.ts';
import { AGE_COLUMN, type KindDefinition, statusBaseProperties } from './common.ts';

export interface SettingSpec {
  /** The value as text, as Longhorn stores it: "true", "3", "best-effort". */
  value: string;
}

export interface SettingStatus extends StatusBase {
  /** The controllers have taken the value into account. */
  applied?: boolean;
}

export type Setting = Resource<'Setting', SettingSpec, SettingStatus>;

export const settingDefinition: KindDefinition = {
  kind: 'Setting',
  plural: 'settings',
  singular: 'setting',
  shortNames: ['hbs'],
  description: 'A cluster-wide setting; the resource name is the setting name.',
  nameRule: 'dns-subdomain',
  spec: Schema.object({ value: Schema.string({ maxLength: 4096 }) }, { required: ['value'] }),
  status: Schema.object({ ...statusBaseProperties, applied: Schema.boolean() }),
  printerColumns: [
    { name: 'Value', type: 'string', jsonPath: '.spec.value' },
    { name: 'Applied', type: 'boolean', jsonPath: '.status.applied' },
    AGE_COLUMN,
  ],
  validate(object) {
    const problem = settingValueProblem(object.metadata.name, (object.spec as SettingSpec).value);
    if (problem === undefined) return [];
    const unknownName = problem.endsWith('is not a known setting');
    return [{ field: unknownName ? 'metadata.name' : 'spec.value', reason: problem }];
  },
};
