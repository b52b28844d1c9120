/**
 * The host conditions of a Node — RequiredPackages, NFSClientInstalled, Multipathd — as the
 * node's CSI plugin reports them (src/csi/host/node-report.ts), and what they allow: pure
 * helpers for whoever places work on a node (CSI ControllerPublishVolume, the share manager
 * placement).
 *
 * The node plugin owns these three conditions in `status.conditions`; the node controller
 * owns the others (Ready, Schedulable) and keeps whatever else is there when it writes.
 *
 * ```ts
 * const verdict = nodeCanServe(node, 'block');
 * if (!verdict.serves) throw new HornbillError('CSI_NODE_REQUIREMENTS_MISSING', verdict.condition.message);
 * ```
 */
import type { Condition, ConditionStatus } from '../resources/api.ts';
import { type ConditionInput, setCondition } from '../resources/conditions.ts';
import type { Node } from '../resources/kinds/node.ts';

/** The Node conditions the CSI node plugin writes (Longhorn's names). */
export const HOST_CONDITION_TYPES = ['RequiredPackages', 'NFSClientInstalled', 'Multipathd'] as const;
export type HostConditionType = (typeof HOST_CONDITION_TYPES)[number];

/**
 * What a node is asked to do: `block` attaches an iSCSI device (iscsiadm, mkfs …: condition
 * RequiredPackages), `nfs-client` mounts an RWX volume's NFS share (NFSClientInstalled).
 */
export type NodeService = 'block' | 'nfs-client';

const CONDITION_OF_SERVICE: Record<NodeService, HostConditionType> = {
  block: 'RequiredPackages',
  'nfs-client': 'NFSClientInstalled',
};

export type NodeServeVerdict =
  | { serves: true }
  | { serves: false; condition: Condition; node: string; missing: HostConditionType };

/**
 * Whether the node can serve `service`: refused only when its plugin reported the condition
 * False. A condition not reported yet (no plugin, or an older one) or Unknown does not
 * refuse: the node service's own check at stage time still stands.
 */
export function nodeCanServe(node: Node, service: NodeService): NodeServeVerdict {
  const type = CONDITION_OF_SERVICE[service];
  const condition = node.status?.conditions?.find((entry) => entry.type === type);
  if (condition?.status !== 'False') return { serves: true };
  return { serves: false, condition, node: node.metadata.name, missing: type };
}

/** Whether multipathd runs on the node (condition Multipathd True: a warning, not a refusal). */
export function multipathdRunning(node: Node): boolean {
  return node.status?.conditions?.find((entry) => entry.type === 'Multipathd')?.status === 'True';
}

export interface HostConditionInput {
  type: HostConditionType;
  status: ConditionStatus;
  reason: string;
  message: string;
}

/**
 * `conditions` with the host conditions set (lastTransitionTime kept while a status stays,
 * as every condition); the others untouched. `changed` lists the types whose status, reason
 * or message moved.
 */
export function withHostConditions(
  conditions: readonly Condition[] | undefined,
  host: readonly HostConditionInput[],
  nowMilliseconds: number = Date.now(),
): { conditions: Condition[]; changed: HostConditionType[] } {
  let next = [...(conditions ?? [])];
  const changed: HostConditionType[] = [];
  for (const input of host) {
    const previous = next.find((entry) => entry.type === input.type);
    if (
      previous === undefined ||
      previous.status !== input.status ||
      previous.reason !== input.reason ||
      previous.message !== input.message
    )
      changed.push(input.type);
    const condition: ConditionInput = {
      type: input.type,
      status: input.status,
      reason: input.reason,
      message: input.message,
    };
    next = setCondition(next, condition, nowMilliseconds);
  }
  return { conditions: next, changed };
}
