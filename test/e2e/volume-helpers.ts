/**
 * What the e2e tests of volumes share: waiting for a volume to reach a state, reading and
 * writing it through its NBD endpoint with the project's own NBD client, and looking at
 * what the instance managers run.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { NbdClient } from '../../src/bench/nbd-client.ts';
import { InstanceManagerClient } from '../../src/dataplane/instance-manager/grpc-client.ts';
import type { HornbillError } from '../../src/errors.ts';
import type { Replica, ResourceStore, Volume } from '../../src/resources/index.ts';
import type { Cluster } from './helpers/cluster.ts';

/** Polls the volume until `check` returns true (the last volume seen is in the failure message). */
export async function waitForVolume(
  cluster: Cluster,
  name: string,
  what: string,
  check: (volume: Volume, replicas: Replica[]) => boolean,
  timeoutMs = 90_000,
): Promise<{ volume: Volume; replicas: Replica[] }> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const volume = await cluster.store.get({ kind: 'Volume', namespace: cluster.namespace, name });
      const replicas = await volumeReplicas(cluster.store, cluster.namespace, name);
      last = {
        status: volume.status,
        replicas: replicas.map((replica) => ({
          name: replica.metadata.name,
          spec: replica.spec,
          status: replica.status,
        })),
      };
      if (check(volume, replicas)) return { volume, replicas };
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      assert.fail(`volume ${name}: gave up waiting for ${what}; last seen: ${JSON.stringify(last, null, 1)}`);
    await sleep(250);
  }
}

export async function volumeReplicas(
  store: ResourceStore,
  namespace: string,
  volume: string,
): Promise<Replica[]> {
  const { items } = await store.list('Replica', { namespace });
  return items.filter(
    (replica) => replica.spec.volumeName === volume && replica.metadata.deletionTimestamp === undefined,
  );
}

export function isAttached(volume: Volume, nodeID: string): boolean {
  return (
    volume.status?.state === 'attached' &&
    volume.status.currentNodeID === nodeID &&
    (volume.status.endpoint ?? '') !== ''
  );
}

/** Opens the volume's NBD endpoint (`nbd://host:port/export`). */
export async function openNbd(endpoint: string): Promise<NbdClient> {
  const url = new URL(endpoint);
  assert.equal(url.protocol, 'nbd:', `endpoint ${endpoint} is NBD`);
  return NbdClient.open(
    { host: url.hostname, port: Number(url.port), exportName: decodeURIComponent(url.pathname.slice(1)) },
    16,
  );
}

function io(client: NbdClient, kind: 'read' | 'write', offsetBytes: number, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    client[kind](offsetBytes, data, {
      transportState: undefined,
      complete: (error: HornbillError | null) => (error === null ? resolve() : reject(error)),
    });
  });
}

export function writeBlock(client: NbdClient, offsetBytes: number, data: Buffer): Promise<void> {
  return io(client, 'write', offsetBytes, data);
}

export async function readBlock(client: NbdClient, offsetBytes: number, length: number): Promise<Buffer> {
  const data = Buffer.alloc(length);
  await io(client, 'read', offsetBytes, data);
  return data;
}

/** Bytes that tell offset and generation apart. */
export function pattern(seed: number, length: number): Buffer {
  const data = Buffer.alloc(length);
  let state = (seed * 2654435761 + 12345) >>> 0 || 1;
  for (let index = 0; index < length; index += 4) {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    data.writeUInt32LE(state, index);
  }
  return data;
}

interface InstanceSummary {
  name: string;
  kind: string;
  volume_name: string;
  engine?: { lane_host_replica?: string } | null;
}

/** Every engine and replica instance each running instance manager reports, by node. */
export async function instancesByNode(cluster: Cluster): Promise<Map<string, InstanceSummary[]>> {
  const result = new Map<string, InstanceSummary[]>();
  for (const node of cluster.nodes) {
    if (!node.running) continue;
    const client = new InstanceManagerClient(node.grpcAddress, { deadlineMs: 10_000 });
    try {
      const { instances } = await client.call('ListInstances', {});
      result.set(node.name, instances ?? []);
    } finally {
      client.close();
    }
  }
  return result;
}

/** Sets fields of a volume's spec (read, change, update; retried on conflict). */
export async function patchVolumeSpec(
  cluster: Cluster,
  name: string,
  spec: Partial<Volume['spec']>,
): Promise<Volume> {
  for (let attempt = 0; ; attempt++) {
    const volume = await cluster.store.get({ kind: 'Volume', namespace: cluster.namespace, name });
    try {
      return await cluster.store.update({ ...volume, spec: { ...volume.spec, ...spec } });
    } catch (error) {
      if (attempt > 10 || (error as HornbillError).code !== 'RESOURCE_CONFLICT') throw error;
    }
  }
}
