/**
 * What the ShareManager reconcile tests share: fake instance managers that answer from memory
 * (or not at all), and the kubelet-free ways to mark a Node ready and a Volume attached.
 */
import type { InstanceManagerClient } from '../../../../src/dataplane/instance-manager/grpc-client.ts';
import { HornbillError } from '../../../../src/errors.ts';
import { type ResourceStore, setCondition } from '../../../../src/resources/index.ts';

export const namespace = 'hornbill-system';

/** An instance manager that answers from memory, or not at all. */
export class FakeInstanceManager {
  reachable = true;
  readonly shares = new Map<string, Record<string, unknown>>();
  readonly calls: string[] = [];
  readonly requests: Record<string, unknown>[] = [];
  readonly node: string;

  constructor(node: string) {
    this.node = node;
  }

  client(): InstanceManagerClient {
    return {
      call: async (method: string, request: Record<string, unknown> = {}) => {
        this.calls.push(method);
        if (!this.reachable) throw new HornbillError('INSTANCE_MANAGER_UNREACHABLE', `${this.node} is gone`);
        const name = String(request.name);
        if (method === 'ListShareManagers')
          return { share_managers: [...this.shares.values()], can_attach_devices: false };
        if (method === 'CreateShareManager') {
          this.requests.push(request);
          const instance = {
            name,
            state: 'running',
            node_name: this.node,
            source: 'directory',
            export_path: `/disk/${this.node}/share-exports/${request.volume_name}`,
            address: request.address,
            port: request.port,
            endpoint: `nfs://${request.address}:${request.port}/${request.volume_name}`,
          };
          this.shares.set(name, instance);
          return instance;
        }
        if (method === 'DeleteShareManager') return { found: this.shares.delete(name), data_removed: false };
        throw new Error(`unexpected call ${method}`);
      },
    } as unknown as InstanceManagerClient;
  }
}

export async function setNodeReady(store: ResourceStore, name: string, status: 'True' | 'False') {
  const node = await store.get({ kind: 'Node', namespace, name });
  let conditions = setCondition(node.status?.conditions, {
    type: 'Ready',
    status,
    reason: 'Test',
    message: '',
  });
  conditions = setCondition(conditions, { type: 'Schedulable', status, reason: 'Test', message: '' });
  await store.updateStatus({ ...node, status: { ...node.status, conditions } });
}

export async function setAttached(store: ResourceStore, nodeID: string, endpoint = `nbd://${nodeID}:1/vol`) {
  const volume = await store.get({ kind: 'Volume', namespace, name: 'vol' });
  await store.updateStatus({
    ...volume,
    status: { ...volume.status, state: 'attached', currentNodeID: nodeID, endpoint },
  });
}
