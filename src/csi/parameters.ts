/**
 * StorageClass parameters: what CreateVolume accepts in `parameters`, checked before
 * anything is created. Volume settings go into the Volume spec; filesystem and NFS settings
 * go into the volume context, which kubelet hands to NodeStageVolume.
 *
 * ```yaml
 * parameters:
 *   numberOfReplicas: "3"
 *   staleReplicaTimeout: "2880"   # minutes
 *   dataLocality: best-effort     # disabled | best-effort | strict-local
 *   diskSelector: "ssd,fast"      # tags, comma-separated
 *   fsType: ext4                  # ext4 | xfs
 *   mkfsParams: "-O ^metadata_csum"
 * ```
 *
 * Unknown keys are refused (CSI_PARAMETER_INVALID) so that a typo in a StorageClass fails at
 * the first PVC instead of being ignored, except the `csi.storage.k8s.io/` keys the
 * external-provisioner adds (PVC and PV names, which become annotations).
 */
import { HornbillError } from '../errors.ts';
import {
  DATA_LOCALITIES,
  type DataLocality,
  MAX_REPLICA_COUNT,
  SETTING_OVERRIDES,
  type SettingOverride,
} from '../resources/kinds/volume.ts';
import { parseByteQuantity } from '../resources/quantity.ts';

export const FILESYSTEM_TYPES = ['ext4', 'xfs'] as const;
export type FilesystemType = (typeof FILESYSTEM_TYPES)[number];

/** Longhorn's NFS client options for RWX mounts; `nfsOptions` replaces them. */
export const DEFAULT_NFS_OPTIONS = 'vers=4.1,noresvport,timeo=600,retrans=5,softerr';

/** What the provisioner's --extra-create-metadata adds. */
export const PROVISIONER_PARAMETER_PREFIX = 'csi.storage.k8s.io/';

export interface VolumeParameters {
  /** Fields of the Volume spec; absent ones take the schema defaults. */
  spec: {
    numberOfReplicas?: number;
    staleReplicaTimeout?: number;
    dataLocality?: DataLocality;
    diskSelector?: string[];
    nodeSelector?: string[];
    replicaSoftAntiAffinity?: SettingOverride;
    replicaZoneSoftAntiAffinity?: SettingOverride;
    replicaDiskSoftAntiAffinity?: SettingOverride;
    fromBackup?: string;
    snapshotMaxCount?: number;
    snapshotMaxSize?: string;
    replicaRebuildingBandwidthLimit?: number;
  };
  /** Handed to the node service through the PV's volume context. */
  context: { fsType?: FilesystemType; mkfsParams?: string; nfsOptions?: string };
  /** pvc/name, pvc/namespace, pv/name from the provisioner. */
  kubernetes: { pvcName?: string; pvcNamespace?: string; pvName?: string };
}

type Parser = (value: string, key: string, into: VolumeParameters) => void;

function invalid(key: string, value: string, expected: string): HornbillError {
  return new HornbillError(
    'CSI_PARAMETER_INVALID',
    `StorageClass parameter ${key}: ${JSON.stringify(value)} is not ${expected}`,
    { parameter: key, value },
  );
}

function integer(minimum: number, maximum: number) {
  return (value: string, key: string): number => {
    if (!/^\d{1,9}$/.test(value.trim()))
      throw invalid(key, value, `an integer from ${minimum} to ${maximum}`);
    const number = Number(value.trim());
    if (number < minimum || number > maximum)
      throw invalid(key, value, `an integer from ${minimum} to ${maximum}`);
    return number;
  };
}

function oneOf<T extends string>(choices: readonly T[]) {
  return (value: string, key: string): T => {
    if (!(choices as readonly string[]).includes(value))
      throw invalid(key, value, `one of ${choices.join(', ')}`);
    return value as T;
  };
}

/** "a,b" or "a, b" → ['a', 'b']; '' → []. */
function tags(value: string, key: string): string[] {
  const list = value
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
  for (const tag of list)
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(tag))
      throw invalid(key, value, 'a comma-separated list of tags');
  if (list.length > 64) throw invalid(key, value, 'at most 64 tags');
  return [...new Set(list)];
}

/** A boolean as Longhorn writes anti-affinity overrides ("true"/"false"), or the override names. */
function override(value: string, key: string): SettingOverride {
  if (value === 'true') return 'enabled';
  if (value === 'false') return 'disabled';
  return oneOf(SETTING_OVERRIDES)(value, key);
}

function hasControlCharacter(text: string): boolean {
  for (let index = 0; index < text.length; index++) if (text.charCodeAt(index) < 0x20) return true;
  return false;
}

function freeText(maximum: number) {
  return (value: string, key: string): string => {
    if (value.length > maximum || hasControlCharacter(value))
      throw invalid(key, value, `text of at most ${maximum} characters`);
    return value;
  };
}

const PARSERS: Record<string, Parser> = {
  numberOfReplicas: (value, key, into) => {
    into.spec.numberOfReplicas = integer(1, MAX_REPLICA_COUNT)(value, key);
  },
  staleReplicaTimeout: (value, key, into) => {
    into.spec.staleReplicaTimeout = integer(1, 525_600)(value, key);
  },
  dataLocality: (value, key, into) => {
    into.spec.dataLocality = oneOf(DATA_LOCALITIES)(value, key);
  },
  diskSelector: (value, key, into) => {
    into.spec.diskSelector = tags(value, key);
  },
  nodeSelector: (value, key, into) => {
    into.spec.nodeSelector = tags(value, key);
  },
  replicaSoftAntiAffinity: (value, key, into) => {
    into.spec.replicaSoftAntiAffinity = override(value, key);
  },
  replicaZoneSoftAntiAffinity: (value, key, into) => {
    into.spec.replicaZoneSoftAntiAffinity = override(value, key);
  },
  replicaDiskSoftAntiAffinity: (value, key, into) => {
    into.spec.replicaDiskSoftAntiAffinity = override(value, key);
  },
  fromBackup: (value, key, into) => {
    if (value === '') return;
    if (!/^[a-z0-9]+:\/\/.+$/.test(value) || value.length > 4096) throw invalid(key, value, 'a backup URL');
    into.spec.fromBackup = value;
  },
  snapshotMaxCount: (value, key, into) => {
    into.spec.snapshotMaxCount = integer(2, 250)(value, key);
  },
  snapshotMaxSize: (value, key, into) => {
    if (parseByteQuantity(value) === undefined) throw invalid(key, value, 'a size such as 0 or 20Gi');
    into.spec.snapshotMaxSize = value;
  },
  replicaRebuildingBandwidthLimit: (value, key, into) => {
    into.spec.replicaRebuildingBandwidthLimit = integer(0, 100_000)(value, key);
  },
  fsType: (value, key, into) => {
    if (value !== '') into.context.fsType = oneOf(FILESYSTEM_TYPES)(value, key);
  },
  mkfsParams: (value, key, into) => {
    const text = freeText(1024)(value, key);
    // Options and their values only: a path (`/dev/sda`, `-d /etc`) could make mkfs write
    // somewhere else than the volume's device.
    for (const argument of splitArguments(text))
      if (!/^[-A-Za-z0-9_.=,:^+]+$/.test(argument))
        throw invalid(key, value, 'mkfs options without paths (letters, digits and - _ . = , : ^ +)');
    if (text !== '') into.context.mkfsParams = text;
  },
  nfsOptions: (value, key, into) => {
    const text = freeText(1024)(value, key);
    if (text !== '' && !/^[A-Za-z0-9_.=,:/-]+$/.test(text))
      throw invalid(key, value, 'comma-separated mount options');
    if (text !== '') into.context.nfsOptions = text;
  },
};

/** The StorageClass parameter names the driver accepts (besides csi.storage.k8s.io/ ones). */
export const STORAGE_CLASS_PARAMETERS: readonly string[] = Object.keys(PARSERS);

/** Parses every parameter; the first bad one is CSI_PARAMETER_INVALID naming it. */
export function parseStorageClassParameters(parameters: Readonly<Record<string, string>>): VolumeParameters {
  const result: VolumeParameters = { spec: {}, context: {}, kubernetes: {} };
  for (const [key, value] of Object.entries(parameters)) {
    if (key.startsWith(PROVISIONER_PARAMETER_PREFIX)) {
      const rest = key.slice(PROVISIONER_PARAMETER_PREFIX.length);
      if (rest === 'pvc/name') result.kubernetes.pvcName = value;
      else if (rest === 'pvc/namespace') result.kubernetes.pvcNamespace = value;
      else if (rest === 'pv/name') result.kubernetes.pvName = value;
      continue;
    }
    const parse = PARSERS[key];
    if (parse === undefined) {
      throw new HornbillError(
        'CSI_PARAMETER_INVALID',
        `StorageClass parameter ${JSON.stringify(key)} is not one the driver knows (${STORAGE_CLASS_PARAMETERS.join(', ')})`,
        { parameter: key },
      );
    }
    if (typeof value !== 'string') throw invalid(key, String(value), 'text');
    parse(value, key, result);
  }
  if (result.spec.dataLocality === 'strict-local' && (result.spec.numberOfReplicas ?? 3) !== 1) {
    throw new HornbillError(
      'CSI_PARAMETER_INVALID',
      'StorageClass parameter dataLocality strict-local needs numberOfReplicas "1"',
      { parameter: 'dataLocality' },
    );
  }
  return result;
}

/** `-O ^metadata_csum -E lazy_itable_init=0` → arguments (whitespace-separated, quotes honoured). */
export function splitArguments(text: string): string[] {
  const parts: string[] = [];
  for (const match of text.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g))
    parts.push(match[1] ?? match[2] ?? match[3]);
  return parts;
}

/**
 * The node's view of a volume context: the keys the node service uses, checked as the
 * StorageClass parameters are (a static PV's attributes are as untrusted as a StorageClass).
 */
export function nodeContextOf(
  context: Readonly<Record<string, string>> | undefined,
): VolumeParameters['context'] {
  const picked: Record<string, string> = {};
  for (const key of ['fsType', 'mkfsParams', 'nfsOptions'])
    if (typeof context?.[key] === 'string') picked[key] = context[key];
  return parseStorageClassParameters(picked).context;
}

/** The volume context kubelet passes back to the node service, as strings. */
export function volumeContextOf(parameters: VolumeParameters, accessMode: string): Record<string, string> {
  const context: Record<string, string> = { accessMode };
  for (const [key, value] of Object.entries(parameters.context))
    if (value !== undefined) context[key] = value;
  return context;
}
