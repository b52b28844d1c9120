/**
 * The scheduler's rules that need no view of the cluster: how strong each anti-affinity is
 * for a volume, whether a disk has room for a replica, and whether tags cover a selector.
 *
 * Anti-affinity (Longhorn's settings and per-volume overrides): for each failure domain —
 * node, zone, disk — the volume's `spec.replica{,Zone,Disk}SoftAntiAffinity` says `enabled`
 * (soft: prefer not to share, share when nothing else fits), `disabled` (hard: never share),
 * or `ignored` (follow the setting `replica{,-zone,-disk}-soft-anti-affinity`; true is soft).
 *
 * Space (Longhorn's `IsSchedulableToDisk`), in exact integer arithmetic:
 * - the disk reports a capacity (`storageMaximum > 0`) and some free space;
 * - over-provisioning: `scheduled + size ≤ (maximum − reserved) × over-provisioning % / 100`,
 *   where `scheduled` is the sum of `spec.volumeSize` of the replicas on the disk and `size`
 *   the volume's size (what the disk promises, whether or not it is written);
 * - minimal available: `available − actual > maximum × minimal-available % / 100`, where
 *   `actual` is the volume's `status.actualSize` (0 for a new volume): the data a rebuild
 *   copies onto the disk now must leave the required share of the disk free.
 */
import type { VolumeSpec } from '../../resources/kinds/volume.ts';
import type { SettingValues } from '../../resources/settings.ts';

export type AntiAffinityStrength = 'hard' | 'soft';

export interface AntiAffinityPolicy {
  node: AntiAffinityStrength;
  zone: AntiAffinityStrength;
  disk: AntiAffinityStrength;
}

/** The anti-affinity of a volume: its overrides, else the settings. */
export function antiAffinityPolicy(
  volume: Pick<
    VolumeSpec,
    'replicaSoftAntiAffinity' | 'replicaZoneSoftAntiAffinity' | 'replicaDiskSoftAntiAffinity'
  >,
  settings: Pick<
    SettingValues,
    'replica-soft-anti-affinity' | 'replica-zone-soft-anti-affinity' | 'replica-disk-soft-anti-affinity'
  >,
): AntiAffinityPolicy {
  return {
    node: strength(volume.replicaSoftAntiAffinity, settings['replica-soft-anti-affinity']),
    zone: strength(volume.replicaZoneSoftAntiAffinity, settings['replica-zone-soft-anti-affinity']),
    disk: strength(volume.replicaDiskSoftAntiAffinity, settings['replica-disk-soft-anti-affinity']),
  };
}

function strength(override: VolumeSpec['replicaSoftAntiAffinity'], softBySetting: boolean) {
  if (override === 'enabled') return 'soft';
  if (override === 'disabled') return 'hard';
  return softBySetting ? 'soft' : 'hard';
}

/** What the space rules need to know about one disk, in bytes. */
export interface DiskSpace {
  maximumBytes: number;
  availableBytes: number;
  reservedBytes: number;
  /** Sum of the volume sizes of the replicas already on the disk. */
  scheduledBytes: number;
}

export interface SpaceLimits {
  overProvisioningPercent: number;
  minimalAvailablePercent: number;
}

/**
 * Why a replica of a `sizeBytes` volume holding `actualBytes` of data does not fit on the
 * disk, or undefined when it fits.
 */
export function spaceProblem(
  space: DiskSpace,
  replica: { sizeBytes: number; actualBytes: number },
  limits: SpaceLimits,
): string | undefined {
  const { maximumBytes, availableBytes, reservedBytes, scheduledBytes } = space;
  if (maximumBytes <= 0) return 'insufficient storage (the disk reports no capacity: storageMaximum 0)';
  if (availableBytes <= 0) return 'insufficient storage (the disk reports no available space)';
  const usable = BigInt(maximumBytes) - BigInt(reservedBytes);
  const allowedTimes100 = usable * BigInt(limits.overProvisioningPercent);
  const promisedTimes100 = (BigInt(scheduledBytes) + BigInt(replica.sizeBytes)) * 100n;
  if (promisedTimes100 > allowedTimes100) {
    const allowedBytes = allowedTimes100 <= 0n ? 0 : Number(allowedTimes100 / 100n);
    const reserved =
      reservedBytes > 0 ? ` of ${formatBytes(maximumBytes)} − ${formatBytes(reservedBytes)} reserved` : '';
    return (
      `insufficient storage (scheduled ${formatBytes(scheduledBytes)} + ${formatBytes(replica.sizeBytes)} > ` +
      `${formatBytes(allowedBytes)} allowed at ${limits.overProvisioningPercent} % over-provisioning${reserved})`
    );
  }
  const leftTimes100 = (BigInt(availableBytes) - BigInt(replica.actualBytes)) * 100n;
  const keepFreeTimes100 = BigInt(maximumBytes) * BigInt(limits.minimalAvailablePercent);
  if (leftTimes100 <= keepFreeTimes100) {
    const keepFreeBytes = Number(keepFreeTimes100 / 100n);
    const data = replica.actualBytes > 0 ? ` − ${formatBytes(replica.actualBytes)} of data` : '';
    return (
      `insufficient storage (available ${formatBytes(availableBytes)}${data} is not more than the ` +
      `${formatBytes(keepFreeBytes)} to keep free at ${limits.minimalAvailablePercent} % minimal available ` +
      `of ${formatBytes(maximumBytes)})`
    );
  }
  return undefined;
}

/** The selector's tags that `tags` lacks (empty when every one is there). */
export function missingTags(tags: readonly string[], selector: readonly string[]): string[] {
  const present = new Set(tags);
  return [...new Set(selector)].filter((tag) => !present.has(tag)).sort();
}

/** Why tags do not cover a selector, or undefined ("missing tags ssd, fast (has: hdd)"). */
export function tagProblem(tags: readonly string[], selector: readonly string[]): string | undefined {
  const missing = missingTags(tags, selector);
  if (missing.length === 0) return undefined;
  const has = tags.length === 0 ? 'has none' : `has: ${[...tags].sort().join(', ')}`;
  return `missing tag${missing.length === 1 ? '' : 's'} ${missing.join(', ')} (${has})`;
}

const BINARY_UNITS: [string, number][] = [
  ['PiB', 1024 ** 5],
  ['TiB', 1024 ** 4],
  ['GiB', 1024 ** 3],
  ['MiB', 1024 ** 2],
  ['KiB', 1024],
];

/** `30 GiB`, `1.50 GiB`, `512 B`: whole units exactly, others to two decimals. */
export function formatBytes(bytes: number): string {
  const magnitude = Math.abs(bytes);
  for (const [unit, size] of BINARY_UNITS) {
    if (magnitude >= size) {
      const value = bytes / size;
      return `${Number.isInteger(value) ? value : value.toFixed(2)} ${unit}`;
    }
  }
  return `${bytes} B`;
}
