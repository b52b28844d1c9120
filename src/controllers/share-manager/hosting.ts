/**
 * Where and how a share manager process runs: the controller's one narrow launcher interface
 * (docs/rwx.md, "Hosting"), chosen by the manager's mode as the lease backend and the stable
 * address are, so that reconcile.ts, placement.ts and teardown.ts do not know which one runs:
 *
 * - `instanceManagerHosting` (embedded mode, and Kubernetes mode when no Pod hosting is
 *   given): a child process of the node's instance manager — CreateShareManager,
 *   ListShareManagers, DeleteShareManager over gRPC, exactly as before this interface existed;
 * - `kubernetesPodHosting` (kubernetes-pods.ts, loaded only in Kubernetes mode): a Pod
 *   `share-manager-<volume>` of its own on the chosen node.
 *
 * Both take the same CreateShareManager request (`ShareManagerWorld.createRequest`) and report
 * a share manager as the instance manager's ShareManagerInstance message does (`state`,
 * `node_name`, `address`, `port`, `endpoint`, `source`, `device`, `export_path`).
 *
 * ```ts
 * const hosting = instanceManagerHosting((node) => clients.get(node));
 * const probe = await hosting.probe('vol', 'node-1');       // reachable? its state there
 * const instance = await hosting.start('node-1', request, shareManager); // idempotent; running or starting
 * await hosting.stop('vol', 'node-1', { removeData: false, deadlineMs: 2_000 });
 * ```
 */
import type { GrpcMessage, InstanceManagerClient } from '../../dataplane/instance-manager/grpc-client.ts';
import type { ShareManager } from '../../resources/index.ts';
import { shareManagerInstanceName } from './world.ts';

// biome-ignore lint/suspicious/noExplicitAny: a ShareManagerInstance message
export type ShareManagerInstanceMessage = Record<string, any>;

export interface ShareManagerProbe {
  /** Whether its node's host (instance manager, or the kubelet through the Pod) can be seen. */
  reachable: boolean;
  /** The share manager there; undefined when there is none on that node. */
  instance?: ShareManagerInstanceMessage;
  /** Whether a share manager there can export the volume's block device (source `device`). */
  canAttachDevices: boolean;
}

export interface ShareManagerHosting {
  readonly mode: 'instance-manager' | 'pod';
  /** How the share manager of `volume` is on `node` (2 s deadline). */
  probe(volume: string, node: string): Promise<ShareManagerProbe>;
  /**
   * Starts it on `node` from a CreateShareManager request (idempotent: a running one is
   * returned; one elsewhere or failed is replaced). The instance manager answers once it
   * serves (state running); a Pod is reported `starting` until it is Ready.
   */
  start(node: string, request: GrpcMessage, owner: ShareManager): Promise<ShareManagerInstanceMessage>;
  /**
   * Stops and removes the share manager of `volume` on `node` (nothing there: done).
   * `removeData`: its state and export folders too (the volume is gone). `fenced`: its lease
   * has expired (it moved away), so it may be removed without waiting for its node.
   */
  stop(
    volume: string,
    node: string,
    options: { removeData: boolean; deadlineMs: number; fenced?: boolean },
  ): Promise<void>;
}

const PROBE_DEADLINE_MS = 2_000;
const START_DEADLINE_MS = 150_000;

/** Today's hosting: a child process of the node's instance manager (gRPC). */
export function instanceManagerHosting(
  clientOf: (node: string) => InstanceManagerClient | undefined,
): ShareManagerHosting {
  return {
    mode: 'instance-manager',
    async probe(volume, node) {
      const client = clientOf(node);
      if (client === undefined) return { reachable: false, canAttachDevices: false };
      const name = shareManagerInstanceName(volume);
      try {
        const list = await client.call('ListShareManagers', {}, { deadlineMs: PROBE_DEADLINE_MS });
        const instance = ((list.share_managers ?? []) as ShareManagerInstanceMessage[]).find(
          (entry) => entry.name === name,
        );
        return { reachable: true, instance, canAttachDevices: list.can_attach_devices === true };
      } catch {
        return { reachable: false, canAttachDevices: false };
      }
    },
    start: (node, request) =>
      // Undefined client: reconcile only starts on a node it probed as reachable.
      clientOf(node)!.call('CreateShareManager', request, { deadlineMs: START_DEADLINE_MS }),
    async stop(volume, node, options) {
      await clientOf(node)?.call(
        'DeleteShareManager',
        { name: shareManagerInstanceName(volume), ...(options.removeData ? { remove_data: true } : {}) },
        { deadlineMs: options.deadlineMs },
      );
    },
  };
}
