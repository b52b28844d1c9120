/**
 * Volume capabilities and capacity ranges: what a request asks for, checked against what
 * Hornbill serves, before anything is done.
 *
 * - Block access: single-node modes only (rwo, or rwop for SINGLE_NODE_SINGLE_WRITER).
 * - Mount access: ext4 or xfs ('' is ext4) on a single node; multi-node modes are RWX,
 *   served over NFS by a share manager (the filesystem type is the share manager's).
 * - Sizes are rounded up to 2 MiB (Longhorn's rule) and must fit the capacity range.
 */
import { HornbillError } from '../errors.ts';
import type { AccessMode } from '../resources/kinds/volume.ts';
import { MAX_VOLUME_BYTES } from '../storage/constants.ts';
import { FILESYSTEM_TYPES } from './parameters.ts';

export const SIZE_ALIGNMENT_BYTES = 2 * 1024 * 1024;
/** The size of a volume created without a capacity range. */
export const DEFAULT_VOLUME_BYTES = 2 * 1024 ** 3;
/** The largest size, a multiple of 2 MiB. */
export const MAX_CSI_VOLUME_BYTES = MAX_VOLUME_BYTES - (MAX_VOLUME_BYTES % SIZE_ALIGNMENT_BYTES);

const SINGLE_NODE_MODES = [
  'SINGLE_NODE_WRITER',
  'SINGLE_NODE_READER_ONLY',
  'SINGLE_NODE_SINGLE_WRITER',
  'SINGLE_NODE_MULTI_WRITER',
];
const MULTI_NODE_MODES = ['MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER'];

/** A decoded csi.v1.VolumeCapability. */
export interface VolumeCapabilityMessage {
  access_type?: 'block' | 'mount';
  block?: object | null;
  mount?: { fs_type: string; mount_flags: string[]; volume_mount_group: string } | null;
  access_mode?: { mode: string } | null;
}

export interface CheckedCapability {
  block: boolean;
  /** '' for block. */
  fsType: string;
  mountFlags: string[];
  accessMode: AccessMode;
  readOnlyMode: boolean;
}

function unsupported(message: string, details: Record<string, unknown> = {}): HornbillError {
  return new HornbillError('CSI_CAPABILITY_UNSUPPORTED', message, details);
}

/** One capability, or INVALID_ARGUMENT / CSI_CAPABILITY_UNSUPPORTED (both INVALID_ARGUMENT). */
export function checkCapability(
  capability: VolumeCapabilityMessage | null | undefined,
  field: string,
): CheckedCapability {
  if (capability === null || capability === undefined)
    throw new HornbillError('INVALID_ARGUMENT', `${field} is required`, { field });
  const mode = capability.access_mode?.mode ?? 'UNKNOWN';
  if (mode === 'UNKNOWN' || capability.access_mode === null)
    throw new HornbillError('INVALID_ARGUMENT', `${field}.access_mode is required`, { field });
  const block =
    capability.access_type === 'block' || (capability.block !== null && capability.block !== undefined);
  const mount =
    capability.access_type === 'mount' || (capability.mount !== null && capability.mount !== undefined);
  if (block === mount)
    throw new HornbillError('INVALID_ARGUMENT', `${field} must have either block or mount access`, { field });
  const multiNode = MULTI_NODE_MODES.includes(mode);
  if (!multiNode && !SINGLE_NODE_MODES.includes(mode))
    throw unsupported(`access mode ${mode} is not known`, { mode });
  if (multiNode && block)
    throw unsupported(`access mode ${mode} is served over NFS and needs mount access, not block`, { mode });
  const fsType = block ? '' : (capability.mount?.fs_type ?? '');
  if (!multiNode && fsType !== '' && !(FILESYSTEM_TYPES as readonly string[]).includes(fsType))
    throw unsupported(`filesystem ${JSON.stringify(fsType)} is not ext4 or xfs`, { fsType });
  const mountFlags = block ? [] : (capability.mount?.mount_flags ?? []);
  for (const flag of mountFlags) {
    if (!/^[A-Za-z0-9_.=,:/+-]{1,256}$/.test(flag))
      throw new HornbillError(
        'INVALID_ARGUMENT',
        `mount flag ${JSON.stringify(flag)} is not a mount option`,
        { field },
      );
  }
  return {
    block,
    fsType,
    mountFlags,
    accessMode: multiNode ? 'rwx' : mode === 'SINGLE_NODE_SINGLE_WRITER' ? 'rwop' : 'rwo',
    readOnlyMode: mode.endsWith('READER_ONLY'),
  };
}

/** Every capability of a request (at least one); the access mode of the volume they ask for. */
export function checkCapabilities(
  capabilities: readonly VolumeCapabilityMessage[] | null | undefined,
  field = 'volume_capabilities',
): { checked: CheckedCapability[]; accessMode: AccessMode } {
  if (!capabilities || capabilities.length === 0)
    throw new HornbillError('INVALID_ARGUMENT', `${field} is required`, { field });
  const checked = capabilities.map((capability, index) => checkCapability(capability, `${field}[${index}]`));
  const accessMode: AccessMode = checked.some((item) => item.accessMode === 'rwx')
    ? 'rwx'
    : checked.every((item) => item.accessMode === 'rwop')
      ? 'rwop'
      : 'rwo';
  return { checked, accessMode };
}

/** Whether a volume of `accessMode` serves the capability (NFS volumes: mount only). */
export function volumeServes(accessMode: AccessMode, capability: CheckedCapability): boolean {
  if (accessMode === 'rwx') return !capability.block;
  return capability.accessMode !== 'rwx';
}

export interface CapacityRangeMessage {
  required_bytes: number;
  limit_bytes: number;
}

export function roundUpToAlignment(bytes: number): number {
  return Math.ceil(bytes / SIZE_ALIGNMENT_BYTES) * SIZE_ALIGNMENT_BYTES;
}

/**
 * The size to create or expand to: required_bytes rounded up to 2 MiB (or `fallbackBytes`,
 * capped by the limit), at least `minimumBytes` (a source's size).
 */
export function sizeForRange(
  range: CapacityRangeMessage | null | undefined,
  options: { fallbackBytes: number; minimumBytes?: number },
): number {
  const required = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  for (const [name, value] of [
    ['required_bytes', required],
    ['limit_bytes', limit],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0)
      throw new HornbillError('INVALID_ARGUMENT', `capacity_range.${name} must be a non-negative integer`, {
        field: `capacity_range.${name}`,
      });
  }
  if (limit > 0 && required > limit)
    throw new HornbillError(
      'CSI_CAPACITY_OUT_OF_RANGE',
      `required_bytes ${required} is above limit_bytes ${limit}`,
      {
        required,
        limit,
      },
    );
  const minimum = options.minimumBytes ?? 0;
  let wanted =
    required > 0 ? required : limit > 0 ? Math.min(options.fallbackBytes, limit) : options.fallbackBytes;
  wanted = Math.max(wanted, minimum, 1);
  const size = roundUpToAlignment(wanted);
  if (limit > 0 && size > limit) {
    // The limit is below the next 2 MiB boundary: the largest aligned size within it still
    // satisfies required_bytes when that is below it.
    const down = limit - (limit % SIZE_ALIGNMENT_BYTES);
    if (down >= Math.max(required, minimum, 1)) return down;
    throw new HornbillError(
      'CSI_CAPACITY_OUT_OF_RANGE',
      `no size in [${required}, ${limit}] is a multiple of 2 MiB${minimum > 0 ? ` and at least the source's ${minimum}` : ''}`,
      { required, limit, minimum },
    );
  }
  if (size > MAX_CSI_VOLUME_BYTES)
    throw new HornbillError(
      'CSI_CAPACITY_OUT_OF_RANGE',
      `${size} bytes is above the largest volume (${MAX_CSI_VOLUME_BYTES})`,
      {
        size,
        maximum: MAX_CSI_VOLUME_BYTES,
      },
    );
  return size;
}

/** Whether an existing size satisfies the range (for idempotent CreateVolume). */
export function sizeFitsRange(size: number, range: CapacityRangeMessage | null | undefined): boolean {
  const required = range?.required_bytes ?? 0;
  const limit = range?.limit_bytes ?? 0;
  return size >= required && (limit === 0 || size <= limit);
}
