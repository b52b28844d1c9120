import { setImmediate as yieldToIo } from 'node:timers/promises';
import { HornbillError } from '../../errors.ts';
import type { Logger } from '../../logging.ts';
import type { PurgeJob } from '../../storage/purge.ts';
import type { LayerInfo, ReplicaStore, VerifyReport } from '../../storage/replica-store.ts';
import { parsePullRequest, RangePuller } from './range-pull.ts';

/**
 * The control methods of a replica, carried by CONTROL frames on the data connection (so a
 * snapshot is ordered after the writes sent before it on that connection). Parameters come
 * from the network and are validated here; long jobs (purge, verify) run in steps and let
 * I/O through between steps.
 */

export interface ReplicaInfo {
  sizeBytes: number;
  revisionCounter: number;
  rebuilding: boolean;
  chain: LayerInfo[];
}

type Params = Record<string, unknown>;

function field<T>(
  params: Params,
  name: string,
  type: 'string' | 'number' | 'boolean' | 'object',
  optional = false,
): T {
  const value = params[name];
  if (value === undefined && optional) return undefined as T;
  const ok =
    type === 'object'
      ? typeof value === 'object' && value !== null && !Array.isArray(value)
      : typeof value === type;
  if (!ok)
    throw new HornbillError('INVALID_ARGUMENT', `parameter ${name} must be a ${type}`, { parameter: name });
  return value as T;
}

export class ReplicaControl {
  private readonly store: ReplicaStore;
  private readonly puller: RangePuller;
  private purgeRun: Promise<{ purgedLayers: number; copiedBytes: number }> | undefined;

  constructor(store: ReplicaStore, log: Logger) {
    this.store = store;
    this.puller = new RangePuller(store, log);
  }

  /** Closes the connections a rebuild opened to its sources. */
  close(): void {
    this.puller.closeAll();
  }

  info(): ReplicaInfo {
    const store = this.store;
    return {
      sizeBytes: store.sizeBytes,
      revisionCounter: store.revisionCounter,
      rebuilding: store.rebuilding,
      chain: store.listChain(),
    };
  }

  /**
   * Runs one control method; the result is JSON-serializable. `cancelled` tells a long
   * method (pullRange) that whoever asked is gone.
   */
  async call(method: unknown, rawParams: unknown, cancelled: () => boolean = () => false): Promise<unknown> {
    const params: Params =
      rawParams === undefined ? {} : field<Params>({ params: rawParams }, 'params', 'object');
    const store = this.store;
    switch (method) {
      case 'info':
        return this.info();
      case 'listChain':
        return store.listChain();
      case 'snapshot':
        return store.snapshot(field(params, 'name', 'string'), {
          labels: field(params, 'labels', 'object', true),
          userCreated: field(params, 'userCreated', 'boolean', true),
        });
      case 'deleteSnapshot':
        store.deleteSnapshot(field(params, 'name', 'string'));
        return null;
      case 'revert':
        store.revert(field(params, 'name', 'string'));
        return this.info();
      case 'expand':
        store.expand(field(params, 'sizeBytes', 'number'));
        return this.info();
      case 'hashSnapshot':
        return { hash: store.hashSnapshot(field(params, 'name', 'string')) };
      case 'setRebuilding': {
        const rebuilding = field<boolean>(params, 'rebuilding', 'boolean');
        store.setRebuilding(rebuilding);
        if (!rebuilding) this.puller.closeAll();
        return null;
      }
      case 'pullRange':
        return this.puller.pull(parsePullRequest(params), cancelled);
      case 'setRevisionCounter':
        store.setRevisionCounter(field(params, 'revisionCounter', 'number'));
        return null;
      case 'createLayer':
        return store.createLayer({
          name: field(params, 'name', 'string'),
          parent: params.parent === null ? null : field(params, 'parent', 'string'),
          createdAt: field(params, 'createdAt', 'string', true),
          userCreated: field(params, 'userCreated', 'boolean', true),
          removed: field(params, 'removed', 'boolean', true),
          labels: field(params, 'labels', 'object', true),
        });
      case 'setLayerParent':
        store.setLayerParent(
          field(params, 'name', 'string'),
          params.parent === null ? null : field(params, 'parent', 'string'),
        );
        return null;
      case 'setLayerMetadata':
        store.setLayerMetadata(field(params, 'name', 'string'), {
          createdAt: field(params, 'createdAt', 'string', true),
          userCreated: field(params, 'userCreated', 'boolean', true),
          removed: field(params, 'removed', 'boolean', true),
          labels: field(params, 'labels', 'object', true),
        });
        return null;
      case 'deleteLayerNow':
        store.deleteLayerNow(field(params, 'name', 'string'));
        return null;
      case 'setHeadParent':
        store.setHeadParent(params.parent === null ? null : field(params, 'parent', 'string'));
        return null;
      case 'mappingStatus':
        return store.mappingStatus(
          field(params, 'offsetBytes', 'number'),
          field(params, 'lengthBytes', 'number'),
        );
      case 'purge':
        return this.purge();
      case 'verify':
        return this.verify();
      default:
        throw new HornbillError('INVALID_ARGUMENT', `unknown control method ${JSON.stringify(method)}`, {
          method,
        });
    }
  }

  /** One purge at a time; a second request waits for the running one. */
  private purge(): Promise<{ purgedLayers: number; copiedBytes: number }> {
    this.purgeRun ??= (async () => {
      const job: PurgeJob = this.store.startPurge();
      try {
        while (!job.step()) await yieldToIo();
        return { purgedLayers: job.purgedLayers, copiedBytes: job.copiedBytes };
      } finally {
        this.purgeRun = undefined;
      }
    })();
    return this.purgeRun;
  }

  private async verify(): Promise<VerifyReport> {
    const steps = this.store.verifySteps();
    for (;;) {
      const next = steps.next();
      if (next.done) return next.value;
      await yieldToIo();
    }
  }
}
