/**
 * The settings registry: every cluster-wide setting with its type, default and valid range
 * (Longhorn's names and defaults where Longhorn has the setting). A Setting resource is
 * named after its setting and holds the value as text in `spec.value`, as Longhorn stores
 * it; a setting without a resource has its default.
 *
 * ```ts
 * const values = resolveSettings((await store.list('Setting', { namespace })).items);
 * if (values['replica-soft-anti-affinity']) …
 * ```
 */
import { HornbillError } from '../errors.ts';

export type SettingCategory = 'general' | 'scheduling' | 'replica' | 'snapshot' | 'backup' | 'node';

interface SettingBase {
  category: SettingCategory;
  description: string;
}
export interface BooleanSetting extends SettingBase {
  type: 'boolean';
  default: boolean;
}
export interface IntegerSetting extends SettingBase {
  type: 'integer';
  default: number;
  minimum: number;
  maximum: number;
  unit?: 'seconds' | 'minutes' | 'percent' | 'replicas' | 'MiB/s' | 'count';
}
export interface EnumSetting extends SettingBase {
  type: 'enum';
  default: string;
  options: readonly string[];
}
export interface StringSetting extends SettingBase {
  type: 'string';
  default: string;
  pattern: RegExp;
  /** What the pattern means, for the error message. */
  patternDescription: string;
}
export type SettingDefinition = BooleanSetting | IntegerSetting | EnumSetting | StringSetting;

const MAX = Number.MAX_SAFE_INTEGER;

export const SETTINGS = {
  'default-replica-count': {
    category: 'general',
    type: 'integer',
    default: 3,
    minimum: 1,
    maximum: 20,
    unit: 'replicas',
    description: 'Replicas of a volume whose spec does not say.',
  },
  'default-data-locality': {
    category: 'general',
    type: 'enum',
    default: 'disabled',
    options: ['disabled', 'best-effort', 'strict-local'],
    description: 'Data locality of a volume whose spec does not say.',
  },
  'api-anonymous-read': {
    category: 'general',
    type: 'boolean',
    default: false,
    description:
      'Answer GraphQL queries and subscriptions without a bearer token (mutations always need one).',
  },
  'default-data-path': {
    category: 'node',
    type: 'string',
    default: '/var/lib/hornbill/',
    pattern: /^\/[^\0]{0,4095}$/,
    patternDescription: 'an absolute path',
    description: 'Where the default disk of a new node lives.',
  },
  'create-default-disk-labeled-nodes': {
    category: 'node',
    type: 'boolean',
    default: false,
    description: 'Create the default disk only on nodes labelled node.hornbill.io/create-default-disk=true.',
  },
  'replica-soft-anti-affinity': {
    category: 'scheduling',
    type: 'boolean',
    default: false,
    description: 'Allow two replicas of a volume on one node when no other node fits.',
  },
  'replica-zone-soft-anti-affinity': {
    category: 'scheduling',
    type: 'boolean',
    default: true,
    description: 'Allow two replicas of a volume in one zone when no other zone fits.',
  },
  'replica-disk-soft-anti-affinity': {
    category: 'scheduling',
    type: 'boolean',
    default: true,
    description: 'Allow two replicas of a volume on one disk when no other disk fits.',
  },
  'replica-auto-balance': {
    category: 'scheduling',
    type: 'enum',
    default: 'disabled',
    options: ['disabled', 'least-effort', 'best-effort'],
    description: 'Move replicas to spread them evenly over nodes and zones.',
  },
  'storage-over-provisioning-percentage': {
    category: 'scheduling',
    type: 'integer',
    default: 100,
    minimum: 0,
    maximum: 10_000,
    unit: 'percent',
    description: 'Scheduled size may reach this share of (maximum - reserved) storage of a disk.',
  },
  'storage-minimal-available-percentage': {
    category: 'scheduling',
    type: 'integer',
    default: 25,
    minimum: 0,
    maximum: 100,
    unit: 'percent',
    description: 'A disk with less available space than this share of its maximum takes no new replica.',
  },
  'storage-reserved-percentage-for-default-disk': {
    category: 'scheduling',
    type: 'integer',
    default: 30,
    minimum: 0,
    maximum: 100,
    unit: 'percent',
    description: 'Space of the default disk reserved for other uses.',
  },
  'disable-scheduling-on-cordoned-node': {
    category: 'scheduling',
    type: 'boolean',
    default: true,
    description: 'Schedule no replica on a cordoned Kubernetes node.',
  },
  'allow-volume-creation-with-degraded-availability': {
    category: 'scheduling',
    type: 'boolean',
    default: true,
    description: 'Create and attach a volume even when fewer replicas than requested can be scheduled.',
  },
  'auto-salvage': {
    category: 'replica',
    type: 'boolean',
    default: true,
    description: 'When every replica has failed, bring the volume back from the newest replicas.',
  },
  'replica-replenishment-wait-interval': {
    category: 'replica',
    type: 'integer',
    default: 600,
    minimum: 0,
    maximum: MAX,
    unit: 'seconds',
    description:
      'How long a degraded volume waits for a failed replica to come back before building a new one.',
  },
  'concurrent-replica-rebuild-per-node-limit': {
    category: 'replica',
    type: 'integer',
    default: 5,
    minimum: 0,
    maximum: 100,
    unit: 'count',
    description: 'Rebuilds running at once on one node; 0 stops new rebuilds.',
  },
  'replica-rebuilding-bandwidth-limit': {
    category: 'replica',
    type: 'integer',
    default: 0,
    minimum: 0,
    maximum: 100_000,
    unit: 'MiB/s',
    description: 'Bandwidth of one replica rebuild; 0 is unlimited.',
  },
  'fast-replica-rebuild-enabled': {
    category: 'replica',
    type: 'boolean',
    default: true,
    description: 'Skip the ranges whose checksums already match when a returning replica re-syncs.',
  },
  'engine-replica-timeout': {
    category: 'replica',
    type: 'integer',
    default: 8,
    minimum: 8,
    maximum: 30,
    unit: 'seconds',
    description: 'An engine drops a replica that does not answer within this time.',
  },
  'node-down-timeout': {
    category: 'node',
    type: 'integer',
    default: 30,
    minimum: 5,
    maximum: 3600,
    unit: 'seconds',
    description: 'A node whose instance manager is unreachable this long is marked down.',
  },
  'node-down-pod-deletion-policy': {
    category: 'node',
    type: 'enum',
    default: 'do-nothing',
    options: [
      'do-nothing',
      'delete-statefulset-pod',
      'delete-deployment-pod',
      'delete-both-statefulset-and-deployment-pod',
    ],
    description: 'Which terminating pods on a down node are force-deleted so their volumes can move.',
  },
  'auto-delete-pod-when-volume-detached-unexpectedly': {
    category: 'node',
    type: 'boolean',
    default: true,
    description: 'Delete a workload pod whose volume was detached under it, so that it is remounted.',
  },
  'rwx-volume-fast-failover': {
    category: 'node',
    type: 'boolean',
    default: false,
    description: 'Move a share manager off a failed node quickly, guided by its Lease.',
  },
  'snapshot-data-integrity': {
    category: 'snapshot',
    type: 'enum',
    default: 'disabled',
    options: ['disabled', 'enabled', 'fast-check'],
    description: 'Hash snapshots and check them periodically.',
  },
  'snapshot-max-count': {
    category: 'snapshot',
    type: 'integer',
    default: 250,
    minimum: 2,
    maximum: 250,
    unit: 'count',
    description: 'Snapshots a volume may hold before TooManySnapshots is reported.',
  },
  'auto-cleanup-system-generated-snapshot': {
    category: 'snapshot',
    type: 'boolean',
    default: true,
    description: 'Delete the snapshots Hornbill made for rebuilds once they are no longer needed.',
  },
  'backupstore-poll-interval': {
    category: 'backup',
    type: 'integer',
    default: 300,
    minimum: 0,
    maximum: MAX,
    unit: 'seconds',
    description: 'How often backup targets are read for new backups; 0 turns polling off.',
  },
  'backup-compression-method': {
    category: 'backup',
    type: 'enum',
    default: 'lz4',
    options: ['none', 'lz4', 'gzip'],
    description: 'Compression of backup blocks.',
  },
  'failed-backup-ttl': {
    category: 'backup',
    type: 'integer',
    default: 1440,
    minimum: 0,
    maximum: MAX,
    unit: 'minutes',
    description: 'Failed backups are deleted after this time; 0 keeps them.',
  },
} as const satisfies Record<string, SettingDefinition>;

export type SettingName = keyof typeof SETTINGS;

/** The TypeScript type of a setting's value. */
export type SettingValue<N extends SettingName> = (typeof SETTINGS)[N]['type'] extends 'boolean'
  ? boolean
  : (typeof SETTINGS)[N]['type'] extends 'integer'
    ? number
    : string;

export type SettingValues = { [N in SettingName]: SettingValue<N> };

export const SETTING_NAMES = Object.keys(SETTINGS) as SettingName[];

export function isSettingName(name: string): name is SettingName {
  return Object.hasOwn(SETTINGS, name);
}

/** The reason `value` is not valid for setting `name`, or undefined. */
export function settingValueProblem(name: string, value: string): string | undefined {
  if (!isSettingName(name)) return `${JSON.stringify(name)} is not a known setting`;
  const definition: SettingDefinition = SETTINGS[name];
  switch (definition.type) {
    case 'boolean':
      return value === 'true' || value === 'false'
        ? undefined
        : `must be "true" or "false", not ${JSON.stringify(value)}`;
    case 'integer': {
      if (!/^-?\d{1,16}$/.test(value)) return `must be an integer, not ${JSON.stringify(value)}`;
      const number = Number(value);
      if (number < definition.minimum || number > definition.maximum) {
        return `must be from ${definition.minimum} to ${definition.maximum}, not ${value}`;
      }
      return undefined;
    }
    case 'enum':
      return definition.options.includes(value)
        ? undefined
        : `must be one of ${definition.options.join(', ')}, not ${JSON.stringify(value)}`;
    case 'string':
      return definition.pattern.test(value)
        ? undefined
        : `must be ${definition.patternDescription}, not ${JSON.stringify(value)}`;
  }
}

/** The typed value of setting `name` from its text; bad text is a RESOURCE_INVALID error. */
export function parseSettingValue<N extends SettingName>(name: N, value: string): SettingValue<N> {
  const problem = settingValueProblem(name, value);
  if (problem !== undefined) {
    throw new HornbillError('RESOURCE_INVALID', `setting ${name}: ${problem}`, {
      kind: 'Setting',
      name,
      field: 'spec.value',
      reason: problem,
    });
  }
  const definition: SettingDefinition = SETTINGS[name];
  const typed =
    definition.type === 'boolean' ? value === 'true' : definition.type === 'integer' ? Number(value) : value;
  return typed as SettingValue<N>;
}

/** The default of setting `name` as text (what a Setting resource would hold). */
export function settingDefaultText(name: SettingName): string {
  return String(SETTINGS[name].default);
}

/**
 * Every setting's value: from the Setting resources given (by metadata.name), the default
 * where there is none. Resources whose value is not valid are ignored (validation keeps them
 * out of the store; this guards against older data).
 */
export function resolveSettings(
  settings: readonly { metadata: { name: string }; spec: { value: string } }[],
): SettingValues {
  const values = {} as Record<SettingName, unknown>;
  for (const name of SETTING_NAMES) values[name] = SETTINGS[name].default;
  for (const setting of settings) {
    const name = setting.metadata.name;
    if (isSettingName(name) && settingValueProblem(name, setting.spec.value) === undefined) {
      values[name] = parseSettingValue(name, setting.spec.value);
    }
  }
  return values as SettingValues;
}
