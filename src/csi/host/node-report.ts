/**
 * The node plugin's host check, written to its Node resource: the three host conditions
 * (RequiredPackages, NFSClientInstalled, Multipathd — `hostConditions`) set in
 * `status.conditions`, nothing else touched, with the resourceVersion the plugin read (a
 * conflict with the node controller's own status write is read again and retried). The
 * node controller owns Ready and Schedulable and keeps the other conditions when it writes,
 * so neither undoes the other.
 *
 * The Node resource is the manager's (its node controller creates it for each instance
 * manager): until it exists the report waits, re-reading with a growing pause, until the
 * plugin stops. Multipathd True is also recorded as a Warning Event on the Node.
 *
 * ```ts
 * const report = await writeHostReport({ store, namespace, nodeId, conditions, log, signal });
 * ```
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type HostConditionType, withHostConditions } from '../../controllers/node-conditions.ts';
import { isHornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import type { Node } from '../../resources/kinds/node.ts';
import { findResource } from '../../resources/store/helpers.ts';
import type { ResourceStore } from '../../resources/store/types.ts';
import type { HostCondition } from './requirements.ts';

export const HOST_REPORT_COMPONENT = 'hornbill-csi-plugin';

export interface HostReportOptions {
  store: ResourceStore;
  namespace: string;
  nodeId: string;
  conditions: readonly HostCondition[];
  log: Logger;
  /** Stops the wait for the Node resource (the plugin stops). */
  signal?: AbortSignal;
  /** The first pause before reading a missing Node again (default 1 s; doubles up to 60 s). */
  retryMs?: number;
}

export interface HostReportResult {
  node: Node;
  /** The conditions whose status, reason or message this report changed (none: nothing written). */
  changed: HostConditionType[];
}

const MAXIMUM_RETRY_MS = 60_000;

/** Writes the conditions; undefined when the signal stopped it before the Node was there. */
export async function writeHostReport(options: HostReportOptions): Promise<HostReportResult | undefined> {
  const { store, namespace, nodeId, log, signal } = options;
  let pauseMs = options.retryMs ?? 1000;
  let waitingLogged = false;
  while (signal?.aborted !== true) {
    let node: Node | undefined;
    try {
      node = await findResource(store, { kind: 'Node', namespace, name: nodeId });
      if (node === undefined) {
        if (!waitingLogged)
          log('info', 'no Node resource for this node yet: the host report waits for it', { node: nodeId });
        waitingLogged = true;
      } else {
        const result = await writeOnce(store, node, options.conditions);
        if (result !== undefined) {
          await warnAboutMultipathd(options, result.node);
          log('info', 'host conditions written to the Node', { node: nodeId, changed: result.changed });
          return result;
        }
        // A conflict: read again after a breath.
        if (!(await pause(20, signal))) break;
        continue;
      }
    } catch (error) {
      log('warn', 'writing the host conditions to the Node failed; retrying', {
        node: nodeId,
        error: String(error),
      });
    }
    if (!(await pause(pauseMs, signal))) break;
    pauseMs = Math.min(pauseMs * 2, MAXIMUM_RETRY_MS);
  }
  return undefined;
}

/** undefined on RESOURCE_CONFLICT (someone wrote the Node since it was read). */
async function writeOnce(
  store: ResourceStore,
  node: Node,
  host: readonly HostCondition[],
): Promise<HostReportResult | undefined> {
  const { conditions, changed } = withHostConditions(node.status?.conditions, host);
  if (changed.length === 0) return { node, changed };
  try {
    const written = await store.updateStatus({ ...node, status: { ...node.status, conditions } });
    return { node: written, changed };
  } catch (error) {
    if (isHornbillError(error, 'RESOURCE_CONFLICT')) return undefined;
    throw error;
  }
}

async function warnAboutMultipathd(options: HostReportOptions, node: Node): Promise<void> {
  const multipathd = options.conditions.find((condition) => condition.type === 'Multipathd');
  if (multipathd?.status !== 'True') return;
  try {
    await options.store.recordEvent({
      involvedObject: {
        apiVersion: node.apiVersion,
        kind: 'Node',
        namespace: node.metadata.namespace,
        name: node.metadata.name,
        uid: node.metadata.uid,
      },
      type: 'Warning',
      reason: multipathd.reason,
      message: `node ${node.metadata.name}: ${multipathd.message}`,
      component: HOST_REPORT_COMPONENT,
      host: node.metadata.name,
    });
  } catch (error) {
    options.log('warn', 'recording the Multipathd event failed', {
      node: node.metadata.name,
      error: String(error),
    });
  }
}

/** false when the signal aborted the pause. */
async function pause(milliseconds: number, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await sleep(milliseconds, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}
