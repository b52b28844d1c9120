/**
 * The ShareManager controller's pure decisions (docs/rwx.md), kept apart so that they are
 * tested without processes: the stable service address of a volume, the node a share manager
 * goes to, and whether a share manager that cannot be seen is waited for, restarted in place
 * or moved.
 */
import { createHash } from 'node:crypto';
import { HornbillError } from '../../errors.ts';

// ── service addresses ────────────────────────────────────────────────────────────────────

/** An IPv4 network `a.b.c.d/prefix` as numbers. */
export interface ServiceNetwork {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefixLength: number;
}

/** 127.200.0.0/16: loopback, so any node's process on this machine can bind any of them. */
export const DEFAULT_SERVICE_NETWORK = '127.200.0.0/16';
const PREFIX_LENGTH_MIN = 8;
const PREFIX_LENGTH_MAX = 30;

function addressToNumber(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((part) => !/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255))
    return undefined;
  return parts.reduce((value, part) => value * 256 + Number(part), 0);
}

export function numberToAddress(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Parses `a.b.c.d/prefix` (prefix 8-30, host bits zero); INVALID_ARGUMENT otherwise. */
export function parseServiceNetwork(text: string): ServiceNetwork {
  const [address, prefix, extra] = text.split('/');
  const base = addressToNumber(address ?? '');
  const prefixLength = /^\d{1,2}$/.test(prefix ?? '') ? Number(prefix) : Number.NaN;
  const valid =
    extra === undefined &&
    base !== undefined &&
    prefixLength >= PREFIX_LENGTH_MIN &&
    prefixLength <= PREFIX_LENGTH_MAX &&
    base % 2 ** (32 - prefixLength) === 0;
  if (!valid)
    throw new HornbillError(
      'INVALID_ARGUMENT',
      `service network ${JSON.stringify(text)} must be A.B.C.D/${PREFIX_LENGTH_MIN}-${PREFIX_LENGTH_MAX} with the host bits zero`,
      { field: 'serviceNetwork', value: text },
    );
  return { base: base as number, prefixLength };
}

/** Whether `address` lies in the network (its network and broadcast addresses excluded). */
export function inServiceNetwork(network: ServiceNetwork, address: string): boolean {
  const value = addressToNumber(address);
  const size = 2 ** (32 - network.prefixLength);
  return value !== undefined && value > network.base && value < network.base + size - 1;
}

/**
 * The stable service address of a volume (a Kubernetes Service's ClusterIP): a host address
 * of the network chosen by a hash of the volume name, then the next free one when another
 * ShareManager holds it (`taken`). The same name and the same taken set give the same
 * address; SHARE_MANAGER_ADDRESS_EXHAUSTED when every host address is taken.
 */
export function serviceAddressFor(
  volume: string,
  network: ServiceNetwork,
  taken: ReadonlySet<string>,
): string {
  const hosts = 2 ** (32 - network.prefixLength) - 2;
  const start = createHash('sha256').update(volume).digest().readUInt32BE(0) % hosts;
  for (let step = 0; step < hosts; step++) {
    const candidate = numberToAddress(network.base + 1 + ((start + step) % hosts));
    if (!taken.has(candidate)) return candidate;
  }
  throw new HornbillError(
    'SHARE_MANAGER_ADDRESS_EXHAUSTED',
    `all ${hosts} service addresses of ${numberToAddress(network.base)}/${network.prefixLength} are taken`,
    { volume, hosts },
  );
}

// ── node choice ──────────────────────────────────────────────────────────────────────────

export interface NodeCandidate {
  name: string;
  /** Node condition Ready True. */
  ready: boolean;
  /** Node condition Schedulable True (ready and allowScheduling). */
  schedulable: boolean;
}

/**
 * Where the share manager goes: a ready, schedulable node not in `exclude` (the node it fails
 * over from); preferring the node the volume is attached to now (no detach and attach), then
 * a node holding one of its usable replicas (data locality for the engine), then by name.
 */
export function chooseShareManagerNode(options: {
  nodes: readonly NodeCandidate[];
  replicaNodes: ReadonlySet<string>;
  attachedNode?: string;
  exclude?: ReadonlySet<string>;
}): string | undefined {
  const rank = (name: string) => (name === options.attachedNode ? 0 : options.replicaNodes.has(name) ? 1 : 2);
  const candidates = options.nodes
    .filter((node) => node.ready && node.schedulable && !(options.exclude?.has(node.name) ?? false))
    .map((node) => node.name)
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return candidates[0];
}

// ── failover ─────────────────────────────────────────────────────────────────────────────

export interface HealthObservation {
  /** The share manager's node: its instance manager answered the last probe. */
  instanceManagerReachable: boolean;
  /** Node condition Ready: True, Unknown (unreachable for less than node-down-timeout), False (down). */
  nodeReady: 'True' | 'Unknown' | 'False';
  /** The share manager as its instance manager reports it; undefined when it has none (or unreachable). */
  instanceState: string | undefined;
  /** The lease as the controller sees it; undefined when there is no lease record. */
  lease: { expired: boolean; remainingMs: number } | undefined;
}

export type HealthDecision =
  | { action: 'keep' }
  | { action: 'start-in-place'; reason: string }
  | { action: 'wait-for-lease'; retryAfterMs: number; reason: string }
  | { action: 'move'; reason: string };

/**
 * What to do about the share manager on its node. Its instance manager answers: keep a running
 * one, start one that is missing, stopped or failed in place (the volume stays attached there).
 * It does not answer (a dead or partitioned node): the share manager may still serve, so it
 * is moved only once its lease has expired — the lease is the fence (a live holder that lost
 * it stops serving by itself); until then, wait for the lease.
 */
export function healthDecision(observation: HealthObservation): HealthDecision {
  if (observation.instanceManagerReachable && observation.nodeReady !== 'False') {
    if (observation.instanceState === 'running' || observation.instanceState === 'starting')
      return { action: 'keep' };
    return {
      action: 'start-in-place',
      reason:
        observation.instanceState === undefined
          ? 'its instance manager runs no share manager for the volume'
          : `the share manager is ${observation.instanceState}`,
    };
  }
  const why = observation.instanceManagerReachable
    ? 'the node is down'
    : `the node's instance manager does not answer (node Ready ${observation.nodeReady})`;
  if (observation.lease === undefined || observation.lease.expired)
    return { action: 'move', reason: `${why}; the share manager's lease has expired` };
  return {
    action: 'wait-for-lease',
    retryAfterMs: Math.max(100, observation.lease.remainingMs + 50),
    reason: `${why}; waiting ${Math.ceil(observation.lease.remainingMs / 1000)} s for its lease to expire`,
  };
}
