/**
 * Instance manager discovery in Kubernetes mode, the pure part: which instance managers the
 * controllers are given, from the pods of the instance-manager DaemonSet
 * (deploy/instance-manager.yaml), and whether a new list needs the controllers restarted.
 * The client-node side (list and watch of the pods) is instance-manager-pods.ts.
 *
 * One endpoint per node (`spec.nodeName`):
 * - gRPC at the pod IP and the container port named `grpc` (default 8500); the pods run on
 *   the host network, so the pod IP is the node's address, where replicas and frontends
 *   listen, and it is the endpoint's `address`;
 * - disks from the pod annotation `hornbill.io/disks` (absolute paths, comma-separated;
 *   normalized, duplicates dropped), else `/var/lib/hornbill` (the DaemonSet's `--disk`).
 *
 * Of several pods on one node (a pod being replaced), a running pod that is not being
 * deleted wins, then the newest. A node is never dropped: when its pod is gone or has no IP
 * yet, the node keeps the endpoint it had (`previous`). The controllers treat a node that is
 * missing from their list as down at once, while a listed node whose instance manager does
 * not answer is only marked down after `node-down-timeout` — the behaviour wanted while a
 * pod restarts.
 *
 * ```ts
 * const { endpoints } = endpointsFromPods(pods, { previous: current });
 * if (compareInstanceManagers(current, endpoints).restartNeeded) restartControllers(endpoints);
 * ```
 */
import path from 'node:path';
import type { InstanceManagerEndpoint } from './manager.ts';

/** The label selector of the instance-manager DaemonSet's pods. */
export const DEFAULT_INSTANCE_MANAGER_SELECTOR = 'app.kubernetes.io/name=hornbill-instance-manager';
/** Pod annotation listing the node's disk paths, comma-separated. */
export const DISKS_ANNOTATION = 'hornbill.io/disks';
/** The disk of a pod without the annotation (the DaemonSet's `--disk` and hostPath). */
export const DEFAULT_INSTANCE_MANAGER_DISK = '/var/lib/hornbill';
/** The gRPC port when no container port is named `grpc`. */
export const DEFAULT_INSTANCE_MANAGER_GRPC_PORT = 8500;
/** Disks per node taken from an annotation; more are reported and left out. */
export const MAX_DISKS_PER_NODE = 64;

/** The fields of a core/v1 Pod that discovery reads (client-node's V1Pod fits). */
export interface PodView {
  metadata?: {
    name?: string;
    annotations?: Record<string, string>;
    creationTimestamp?: Date | string;
    deletionTimestamp?: Date | string;
  };
  spec?: {
    nodeName?: string;
    containers?: ReadonlyArray<{ ports?: ReadonlyArray<{ name?: string; containerPort?: number }> }>;
  };
  status?: { podIP?: string; phase?: string };
}

export interface DiscoveryOptions {
  /** The endpoints known so far: nodes without a usable pod keep theirs. */
  previous?: readonly InstanceManagerEndpoint[];
  /** Default `/var/lib/hornbill`. */
  defaultDisks?: readonly string[];
}

export interface Discovered {
  /** Sorted by node. */
  endpoints: InstanceManagerEndpoint[];
  /** Pods that could not be used, each with why (for the log). */
  problems: string[];
}

const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function timeOf(value: Date | string | undefined): number {
  if (value === undefined) return 0;
  const milliseconds = value instanceof Date ? value.getTime() : Date.parse(value);
  return Number.isNaN(milliseconds) ? 0 : milliseconds;
}

/** Higher is better: running and not being deleted first, then the newest. */
function podRank(pod: PodView): [number, number] {
  const running = pod.status?.phase === 'Running' ? 2 : 0;
  const alive = pod.metadata?.deletionTimestamp === undefined ? 1 : 0;
  return [running + alive, timeOf(pod.metadata?.creationTimestamp)];
}

function better(candidate: PodView, current: PodView | undefined): boolean {
  if (current === undefined) return true;
  const [a, b] = [podRank(candidate), podRank(current)];
  return a[0] !== b[0] ? a[0] > b[0] : a[1] > b[1];
}

function grpcPortOf(pod: PodView): number {
  for (const container of pod.spec?.containers ?? [])
    for (const port of container.ports ?? [])
      if (port.name === 'grpc' && Number.isInteger(port.containerPort)) return port.containerPort as number;
  return DEFAULT_INSTANCE_MANAGER_GRPC_PORT;
}

function disksOf(pod: PodView, defaults: readonly string[], problems: string[]): string[] {
  const text = pod.metadata?.annotations?.[DISKS_ANNOTATION];
  if (text === undefined || text.trim() === '') return [...defaults];
  const disks: string[] = [];
  for (const entry of text.split(',').map((item) => item.trim())) {
    if (entry === '') continue;
    if (!path.isAbsolute(entry)) {
      problems.push(
        `pod ${pod.metadata?.name}: ${DISKS_ANNOTATION} entry ${JSON.stringify(entry)} is not absolute`,
      );
    } else if (disks.length >= MAX_DISKS_PER_NODE) {
      problems.push(
        `pod ${pod.metadata?.name}: more than ${MAX_DISKS_PER_NODE} disks; the rest are left out`,
      );
      break;
    } else if (!disks.includes(path.resolve(entry))) disks.push(path.resolve(entry)); // no trailing slash
  }
  return disks.length > 0 ? disks : [...defaults];
}

/** host:port, with an IPv6 host in brackets. */
function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The endpoints the pods give, merged over `previous` (see the file comment). */
export function endpointsFromPods(pods: readonly PodView[], options: DiscoveryOptions = {}): Discovered {
  const defaults = options.defaultDisks ?? [DEFAULT_INSTANCE_MANAGER_DISK];
  const problems: string[] = [];
  const chosen = new Map<string, PodView>();
  for (const pod of pods) {
    const node = pod.spec?.nodeName;
    if (node === undefined || node === '') continue; // not scheduled yet
    if (!NODE_NAME.test(node) || node.length > 253) {
      problems.push(`pod ${pod.metadata?.name}: node name ${JSON.stringify(node)} is not a DNS subdomain`);
      continue;
    }
    if (pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded') continue;
    if (pod.status?.podIP === undefined || pod.status.podIP === '') continue; // no address yet
    if (better(pod, chosen.get(node))) chosen.set(node, pod);
  }
  const byNode = new Map<string, InstanceManagerEndpoint>();
  for (const endpoint of options.previous ?? []) byNode.set(endpoint.nodeID, endpoint);
  for (const [nodeID, pod] of chosen) {
    const address = pod.status?.podIP as string;
    byNode.set(nodeID, {
      nodeID,
      grpcAddress: joinHostPort(address, grpcPortOf(pod)),
      address,
      disks: disksOf(pod, defaults, problems),
    });
  }
  const endpoints = [...byNode.values()].sort((a, b) =>
    a.nodeID < b.nodeID ? -1 : a.nodeID > b.nodeID ? 1 : 0,
  );
  return { endpoints, problems };
}

export interface InstanceManagerChanges {
  added: string[];
  removed: string[];
  /** Nodes whose gRPC address, address or disks differ. */
  changed: string[];
  /** The controllers take their list at start: any difference needs a stop and a start. */
  restartNeeded: boolean;
}

function sameEndpoint(a: InstanceManagerEndpoint, b: InstanceManagerEndpoint): boolean {
  return (
    a.grpcAddress === b.grpcAddress &&
    a.address === b.address &&
    a.disks.length === b.disks.length &&
    a.disks.every((disk, index) => disk === b.disks[index])
  );
}

/** What differs between the list the controllers run with and a new one (nodes by name, sorted). */
export function compareInstanceManagers(
  before: readonly InstanceManagerEndpoint[],
  after: readonly InstanceManagerEndpoint[],
): InstanceManagerChanges {
  const old = new Map(before.map((endpoint) => [endpoint.nodeID, endpoint]));
  const next = new Map(after.map((endpoint) => [endpoint.nodeID, endpoint]));
  const added = [...next.keys()].filter((node) => !old.has(node)).sort();
  const removed = [...old.keys()].filter((node) => !next.has(node)).sort();
  const changed = [...next.keys()]
    .filter(
      (node) =>
        old.has(node) &&
        !sameEndpoint(old.get(node) as InstanceManagerEndpoint, next.get(node) as InstanceManagerEndpoint),
    )
    .sort();
  return { added, removed, changed, restartNeeded: added.length + removed.length + changed.length > 0 };
}
