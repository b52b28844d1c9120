/**
 * What every CSI handler is given: the ResourceStore (the only way the controller service
 * acts — controllers in src/controllers/ do the work), the namespace of Hornbill's
 * resources, this node's identity and the host operations (node service), and the timing
 * of waits. Plus the helpers the controller handlers share: reading a volume, its CSI
 * view, and waiting for a state within the call's deadline.
 */
import { HornbillError } from '../errors.ts';
import type { Logger } from '../logging.ts';
import type { Volume } from '../resources/kinds/volume.ts';
import type { VolumeAttachment } from '../resources/kinds/volume-attachment.ts';
import { parseByteQuantity } from '../resources/quantity.ts';
import { findResource } from '../resources/store/helpers.ts';
import type { ResourceStore } from '../resources/store/types.ts';
import type { HostOperations } from './host/types.ts';
import { DRIVER_NAME } from './names.ts';

export interface CsiDriverOptions {
  /** Absent in a node-only plugin that cannot reach the manager (stats then report no condition). */
  store?: ResourceStore;
  namespace: string;
  nodeId: string;
  driverName?: string;
  version: string;
  host: HostOperations;
  log: Logger;
  /** Topology segments this node reports besides its hostname. */
  zone?: string;
  region?: string;
  /** How long ControllerPublish/Unpublish wait for the volume at most (default 60 s; the call deadline wins). */
  attachWaitMs?: number;
  /** How often the waits re-read the volume (default 250 ms). */
  pollIntervalMs?: number;
}

export interface CsiDriverContext {
  readonly store: ResourceStore | undefined;
  readonly namespace: string;
  readonly nodeId: string;
  readonly driverName: string;
  readonly version: string;
  readonly host: HostOperations;
  readonly log: Logger;
  readonly zone: string | undefined;
  readonly region: string | undefined;
  readonly attachWaitMs: number;
  readonly pollIntervalMs: number;
}

export function driverContext(options: CsiDriverOptions): CsiDriverContext {
  return {
    store: options.store,
    namespace: options.namespace,
    nodeId: options.nodeId,
    driverName: options.driverName ?? DRIVER_NAME,
    version: options.version,
    host: options.host,
    log: options.log,
    zone: options.zone,
    region: options.region,
    attachWaitMs: options.attachWaitMs ?? 60_000,
    pollIntervalMs: options.pollIntervalMs ?? 250,
  };
}

/** The store, or INTERNAL: a controller service always has one (the server checks at start). */
export function storeOf(context: CsiDriverContext): ResourceStore {
  if (context.store === undefined)
    throw new HornbillError('INTERNAL', 'this CSI plugin was started without a resource store (--store)');
  return context.store;
}

export function findVolume(context: CsiDriverContext, name: string): Promise<Volume | undefined> {
  return findResource(storeOf(context), { kind: 'Volume', namespace: context.namespace, name });
}

export function findAttachment(
  context: CsiDriverContext,
  volume: string,
): Promise<VolumeAttachment | undefined> {
  return findResource(storeOf(context), {
    kind: 'VolumeAttachment',
    namespace: context.namespace,
    name: volume,
  });
}

export function volumeSizeBytes(volume: Volume): number {
  return parseByteQuantity(volume.spec.size) ?? 0;
}

/** The csi.v1.Volume message of a Volume resource. */
export function volumeMessage(volume: Volume) {
  const context: Record<string, string> = { ...readContextAnnotation(volume) };
  const source = volume.spec.dataSource;
  return {
    capacity_bytes: volumeSizeBytes(volume),
    volume_id: volume.metadata.name,
    volume_context: context,
    content_source:
      source === undefined
        ? null
        : source.startsWith('snap://')
          ? { snapshot: { snapshot_id: source } }
          : { volume: { volume_id: source.slice('vol://'.length) } },
    accessible_topology: [],
  };
}

/** The volume context stored at creation (annotation), so every call reports the same one. */
export const VOLUME_CONTEXT_ANNOTATION = 'csi.hornbill.io/volume-context';

function readContextAnnotation(volume: Volume): Record<string, string> {
  const text = volume.metadata.annotations?.[VOLUME_CONTEXT_ANNOTATION];
  if (text === undefined) return { accessMode: volume.spec.accessMode };
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed))
      return Object.fromEntries(Object.entries(parsed).filter(([, value]) => typeof value === 'string'));
  } catch {
    // A damaged annotation: fall back to what the spec says.
  }
  return { accessMode: volume.spec.accessMode };
}

/** csi.v1.VolumeCondition from the volume's robustness. */
export function volumeCondition(volume: Volume): { abnormal: boolean; message: string } {
  const robustness = volume.status?.robustness;
  if (robustness === 'faulted')
    return {
      abnormal: true,
      message: 'the volume is faulted: no healthy replica; see docs/controllers.md (Salvage)',
    };
  if (robustness === 'degraded')
    return {
      abnormal: true,
      message: 'the volume is degraded: fewer healthy replicas than numberOfReplicas; a rebuild is due',
    };
  return {
    abnormal: false,
    message: `the volume is ${volume.status?.state ?? 'creating'}, ${robustness ?? 'unknown'}`,
  };
}

/** The nodes with a csi-attacher ticket (where Kubernetes published the volume). */
export function publishedNodes(attachment: VolumeAttachment | undefined): string[] {
  if (attachment === undefined) return [];
  const nodes = Object.values(attachment.spec.attachmentTickets)
    .filter((ticket) => ticket.type === 'csi-attacher')
    .map((ticket) => ticket.nodeID);
  return [...new Set(nodes)].sort();
}

/** Milliseconds since the epoch when a server call must have answered (Infinity: none). */
export type CallDeadline = number;

/**
 * Re-reads until `check` returns a value, within `waitMs` and the call's deadline (less a
 * 200 ms margin to answer in); then CSI_OPERATION_TIMEOUT (DEADLINE_EXCEEDED).
 */
export async function waitUntil<T>(
  context: CsiDriverContext,
  deadline: CallDeadline,
  what: string,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const end = Math.min(Date.now() + context.attachWaitMs, deadline - 200);
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() + context.pollIntervalMs > end)
      throw new HornbillError(
        'CSI_OPERATION_TIMEOUT',
        `timed out waiting for ${what}; the call can be retried`,
        { what },
      );
    await new Promise((resolve) => setTimeout(resolve, context.pollIntervalMs));
  }
}
